"""Intake's HTTP routes: the public submission API and the staff command API."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import domain, handlers
from services.intake.record import request_model
from services.intake.submissions import Submissions, current_correlation
from shared.auth import PublicKey, StaffPrincipal
from shared.contract.consultation import WithdrawalReason
from shared.contract.vocabulary import Channel
from shared.http import Problem, not_found, problems, staff_principal


class Accepted(BaseModel):
    consultation_id: uuid.UUID
    status: str


class Submitted(Accepted):
    reference: str | None = Field(description="受付番号: what the applicant quotes to the hub")
    applicant_page: str = Field(
        description="The applicant's own page (secret link: status, more information, withdrawal); expires"
    )


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: WithdrawalReason = "applicant_request"


def applicant_page(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/portal/my/{token}"


def create_router(
    submissions: Submissions,
    *,
    sessions: async_sessionmaker[AsyncSession],
    auth_key: PublicKey,
    public_url: str,
) -> APIRouter:
    router = APIRouter(prefix="/v1/hubs/{hub}/consultations", tags=["consultations"])
    staff = staff_principal(auth_key)
    Request = request_model(list(submissions.hubs))  # a model class, named as one

    def known_hub(hub: str) -> str:
        if hub not in submissions.hubs:
            raise not_found("Hub '%(hub)s' not found", hub=hub)
        return hub

    @router.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Submitted,
        summary="Submit a consultation (public)",
        responses=problems(400, 404, 413, 422),
    )
    async def submit(
        hub: Annotated[str, Depends(known_hub)],
        request: Request,  # type: ignore[valid-type]
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Submitted:
        try:
            receipt = await submissions.submit(request, hub=hub, channel=Channel.API, idempotency_key=idempotency_key)
        except handlers.IdempotencyKeyReused as error:
            raise Problem(
                422, "idempotency_key_reused", "This Idempotency-Key was already used with a different request"
            ) from error
        return Submitted(
            consultation_id=receipt.consultation_id,
            status="submitted",
            reference=receipt.reference,
            applicant_page=applicant_page(public_url, receipt.link_token),
        )

    @router.post(
        "/{consultation_id}/withdrawal",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Record that a consultation is withdrawn (staff)",
        responses=problems(400, 401, 404, 409, 413, 422),
    )
    async def withdraw(
        hub: Annotated[str, Depends(known_hub)],
        consultation_id: uuid.UUID,
        body: WithdrawalRequest,
        principal: Annotated[StaffPrincipal, Depends(staff)],
    ) -> Accepted:
        if principal.hub != hub:
            raise not_found("Consultation not found")
        try:
            async with sessions.begin() as session:
                withdrawn = await handlers.withdraw_consultation(
                    session,
                    hub=hub,
                    consultation_id=consultation_id,
                    reason=body.reason,
                    recorded_by=principal.subject,
                    correlation_id=current_correlation(),
                )
        except domain.AlreadyWithdrawn as error:
            raise Problem(409, "already_withdrawn", "This consultation is already withdrawn") from error
        if withdrawn is None:
            raise not_found("Consultation not found")
        submissions.on_commit()
        return Accepted(consultation_id=consultation_id, status=withdrawn.status.value)

    return router
