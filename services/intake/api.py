"""Intake's HTTP routes: the public submission API and the staff command API."""

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import domain, handlers
from shared.auth import PublicKey, StaffPrincipal
from shared.contract.consultation import ApplicantPersonal, ConsultationSubmitted, WithdrawalReason
from shared.contract.vocabulary import (
    ApplicantKind,
    Channel,
    DevelopmentStage,
    Language,
    ProductKind,
    SupportField,
)
from shared.http import EmailInput, MultiLineText, Problem, SingleLineText, not_found, problems, staff_principal
from shared.hubs import Hub
from shared.observability import correlation_id


class ConsultationRequest(BaseModel):
    """What an applicant sends; the hub comes from the path, the id and time from intake."""

    model_config = ConfigDict(extra="forbid")

    language: Language = Language.JA
    applicant_kind: ApplicantKind
    organization: SingleLineText = Field(min_length=1, max_length=300)
    title: SingleLineText = Field(min_length=1, max_length=300)
    product_kind: ProductKind
    development_stage: DevelopmentStage
    topics: list[SupportField] = Field(min_length=1, max_length=len(SupportField))
    consent_to_share: StrictBool = False
    contact_name: SingleLineText = Field(min_length=1, max_length=200)
    email: EmailInput
    phone: SingleLineText | None = Field(default=None, max_length=40)
    body: MultiLineText = Field(min_length=1, max_length=20_000)


class Accepted(BaseModel):
    consultation_id: uuid.UUID
    status: str


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: WithdrawalReason = "applicant_request"


def _sha256(request: ConsultationRequest) -> str:
    # Of the validated request, serialised field by field: the same submission hashes alike whatever
    # its JSON spacing or key order.
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def _correlation() -> uuid.UUID:
    value = correlation_id.get()
    try:
        return uuid.UUID(value) if value else uuid.uuid4()
    except ValueError:
        return uuid.uuid4()


def create_router(
    sessions: async_sessionmaker[AsyncSession],
    hubs: dict[str, Hub],
    *,
    auth_key: PublicKey,
    on_commit: Callable[[], None],
) -> APIRouter:
    router = APIRouter(prefix="/v1/hubs/{hub}/consultations", tags=["consultations"])
    staff = staff_principal(auth_key)

    def known_hub(hub: str) -> str:
        if hub not in hubs:
            raise not_found("Hub '%(hub)s' not found", hub=hub)
        return hub

    async def store(submitted: ConsultationSubmitted, key: handlers.IdempotencyKey | None) -> tuple[uuid.UUID, bool]:
        try:
            async with sessions.begin() as session:
                return await handlers.submit_consultation(
                    session, submitted, correlation_id=_correlation(), idempotency_key=key
                )
        except IntegrityError:
            # A concurrent request with the same key committed first: answer as it was answered.
            if key is None:
                raise
            async with sessions() as session:
                earlier = await handlers.earlier_submission(session, submitted.hub, key)
            if earlier is None:
                raise
            return earlier, False

    @router.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Submit a consultation (public)",
        responses=problems(400, 404, 413, 422),
    )
    async def submit(
        hub: Annotated[str, Depends(known_hub)],
        request: ConsultationRequest,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        submitted = ConsultationSubmitted(
            consultation_id=uuid.uuid4(),
            hub=hub,
            submitted_at=datetime.now(UTC),
            channel=Channel.API,
            language=request.language,
            applicant_kind=request.applicant_kind,
            organization=request.organization,
            title=request.title,
            product_kind=request.product_kind,
            development_stage=request.development_stage,
            topics=tuple(dict.fromkeys(request.topics)),
            consent_to_share=request.consent_to_share,
            personal=ApplicantPersonal(
                contact_name=request.contact_name, email=request.email, phone=request.phone, body=request.body
            ),
        )
        key = None if idempotency_key is None else handlers.IdempotencyKey(idempotency_key, _sha256(request))
        try:
            consultation_id, created = await store(submitted, key)
        except handlers.IdempotencyKeyReused as error:
            raise Problem(
                422, "idempotency_key_reused", "This Idempotency-Key was already used with a different request"
            ) from error
        if created:
            on_commit()
        return Accepted(consultation_id=consultation_id, status="submitted")

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
                    correlation_id=_correlation(),
                )
        except domain.AlreadyWithdrawn as error:
            raise Problem(409, "already_withdrawn", "This consultation is already withdrawn") from error
        if withdrawn is None:
            raise not_found("Consultation not found")
        on_commit()
        return Accepted(consultation_id=consultation_id, status=withdrawn.status.value)

    return router
