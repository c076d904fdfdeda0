# One image for every hubnet service; the command picks the service: `services.<name> serve|migrate`.
# Build: docker build -t hubnet .   Run: docker run hubnet services.intake serve

# The browser-side libraries the console serves itself (htmx), from the npm lock: never from a CDN.
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

# Builder: a virtual environment from the hash-pinned lock, then the project itself (no deps: all locked).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hubnet
ENV PATH=/opt/hubnet/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
RUN pip install --no-deps . && python -m compileall -q /opt/hubnet

# Runtime: the environment only (sources, migrations and templates are inside its site-packages), run as a
# fixed non-root uid so Kubernetes can verify runAsNonRoot; nothing is written to the image's filesystem.
FROM python:3.11-slim
ENV PATH=/opt/hubnet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HUBNET_HOST=0.0.0.0 \
    HUBNET_LOG_JSON=true
RUN groupadd --system --gid 10001 hubnet \
    && useradd --system --uid 10001 --gid hubnet --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hubnet
COPY --from=build /opt/hubnet /opt/hubnet
COPY --from=web /web/node_modules /opt/hubnet/web/node_modules
ENV HUBNET_REPORTING_VENDOR_DIR=/opt/hubnet/web/node_modules/htmx.org/dist
WORKDIR /app
USER 10001:10001
EXPOSE 8001 8002 8003 8004
ENTRYPOINT ["python", "-m"]
