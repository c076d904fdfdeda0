"""The open-loop benchmark's baseline: a FastAPI route that validates the same request as intake's public
submission (the same model, the same error handling) and answers as it does, writing nothing.

`uvicorn tests.bench.validation_app:app` — one process, as intake runs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import FastAPI, Header, status

from services.intake.api import Submitted
from services.intake.record import ConsultationRequest, request_model
from shared.http import install_error_handlers
from shared.hubs import load_hubs

app = FastAPI(title="bench: validation only")
install_error_handlers(app)
Request = request_model(list(load_hubs()), ConsultationRequest)


@app.post("/v1/hubs/{hub}/consultations", status_code=status.HTTP_202_ACCEPTED, response_model=Submitted)
async def submit(
    hub: str,
    request: Request,  # type: ignore[valid-type]
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Submitted:
    return Submitted(
        consultation_id=uuid.uuid4(),
        status="submitted",
        reference=f"{hub.upper()}-00000-00000",
        applicant_page="http://127.0.0.1/portal/my/validation-only",
    )
