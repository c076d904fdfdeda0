# One image for every hubnet service; the command picks the service: `services.<name> serve|migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HUBNET_HOST=0.0.0.0 HUBNET_LOG_JSON=true

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --require-hashes -r requirements.lock
COPY shared ./shared
COPY services ./services
COPY deploy/__init__.py ./deploy/__init__.py
COPY deploy/local ./deploy/local
RUN pip install --no-deps . && useradd --system --uid 10001 hubnet

USER 10001
ENTRYPOINT ["python", "-m"]
CMD ["services.intake", "serve"]
