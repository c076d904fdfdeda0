"""Intake's HTTP routes: the public submission API, staff sign-in, and the staff commands.

Every staff route names the action it performs (`shared.auth.Action`); `shared.auth.PERMISSIONS` says which
roles may, and another hub's token gets 404 on every one of them, learning nothing.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import domain, handlers, staff
from services.intake.record import ConsultationRequest, StaffEntryRequest, request_model
from services.intake.submissions import Submissions, current_correlation
from shared import auth
from shared.auth import Action, PublicKey, StaffPrincipal, StaffRole
from shared.contract.consultation import WithdrawalReason
from shared.contract.vocabulary import Channel, Outcome, OutOfScopeReason, ScreeningDecision
from shared.http import EmailInput, MultiLineText, Problem, SingleLineText, not_found, problems, staff_may
from shared.i18n import N_

# What a refused command is told, by `domain.NotAllowed.code` (409).
_NOT_ALLOWED = {
    "already_withdrawn": N_("This consultation is already withdrawn"),
    "already_screened": N_("This consultation has already been screened"),
    "not_screened": N_("Screen this consultation before closing it"),
    "closed": N_("This consultation is closed"),
}


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


class ScreeningRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"decision": {"const": "out_of_scope"}}},
            "then": {"required": ["reason"], "properties": {"reason": {"type": "string"}}},
        },
    )

    decision: ScreeningDecision
    reason: OutOfScopeReason | None = Field(default=None, description="Required when the decision is out_of_scope")


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: MultiLineText = Field(min_length=1, max_length=20_000)
    awaits_applicant: StrictBool = Field(
        default=False, description="The note asks the applicant for something: the consultation waits on them"
    )


class LinksRevoked(BaseModel):
    consultation_id: uuid.UUID
    revoked: int = Field(description="How many live links stopped working")


class NoteAccepted(BaseModel):
    consultation_id: uuid.UUID
    note_id: uuid.UUID


class ClosureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome


class SignInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub: SingleLineText = Field(min_length=1, max_length=40)
    email: SingleLineText = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class SignedIn(BaseModel):
    token: str
    token_type: str = "Bearer"
    expires_at: datetime
    roles: list[StaffRole]
    display_name: str


class NewStaffAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailInput
    display_name: SingleLineText = Field(min_length=1, max_length=200)
    roles: list[StaffRole] = Field(min_length=1, max_length=len(StaffRole))
    password: str = Field(min_length=staff.MIN_PASSWORD, max_length=1024)


class StaffAccountView(BaseModel):
    id: uuid.UUID
    hub: str
    email: str
    display_name: str
    roles: list[StaffRole]


def applicant_page(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/portal/my/{token}"


def create_router(
    submissions: Submissions,
    *,
    sessions: async_sessionmaker[AsyncSession],
    auth_key: PublicKey,
    signing_key: auth.PrivateKey,
    token_ttl: timedelta,
    public_url: str,
) -> APIRouter:
    router = APIRouter(tags=["consultations"])
    Request = request_model(list(submissions.hubs), ConsultationRequest)  # model classes, named as such
    Entry = request_model(list(submissions.hubs), StaffEntryRequest)

    async def known_hub(hub: str) -> str:
        if hub not in submissions.hubs:
            raise not_found("Hub '%(hub)s' not found", hub=hub)
        return hub

    def allowed(action: Action) -> Callable[..., Awaitable[StaffPrincipal]]:
        return staff_may(auth_key, action)

    def submitted(receipt_id: uuid.UUID, reference: str | None, token: str) -> Submitted:
        return Submitted(
            consultation_id=receipt_id,
            status=domain.Status.SUBMITTED.value,
            reference=reference,
            applicant_page=applicant_page(public_url, token),
        )

    @router.post(
        "/v1/hubs/{hub}/consultations",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Submitted,
        summary="Submit a consultation (public; the gateway limits each client address)",
        responses=problems(400, 404, 413, 422, 429),
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
        return submitted(receipt.consultation_id, receipt.reference, receipt.link_token)

    @router.post(
        "/v1/hubs/{hub}/entries",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Submitted,
        summary="Enter a consultation received by phone, email, at an event or for Open Hours (staff)",
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def enter(
        hub: Annotated[str, Depends(known_hub)],
        entry: Entry,  # type: ignore[valid-type]
        principal: Annotated[StaffPrincipal, Depends(allowed(Action.ENTER))],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Submitted:
        details = cast(StaffEntryRequest, entry)  # `Entry` is StaffEntryRequest with the hubs named
        try:
            receipt = await submissions.submit(
                details,
                hub=hub,
                channel=details.channel,
                idempotency_key=idempotency_key,
                entered_by=principal.subject,
                open_hours_slot=details.open_hours_slot,
            )
        except handlers.IdempotencyKeyReused as error:
            raise Problem(
                422, "idempotency_key_reused", "This Idempotency-Key was already used with a different request"
            ) from error
        except handlers.SlotTaken as error:
            raise Problem(409, "slot_taken", "This Open Hours slot is already booked at this hub") from error
        return submitted(receipt.consultation_id, receipt.reference, receipt.link_token)

    async def command(apply: Callable[[AsyncSession], Awaitable[domain.Consultation | None]]) -> domain.Consultation:
        try:
            async with sessions.begin() as session:
                changed = await apply(session)
        except domain.NotAllowed as refused:
            raise Problem(409, refused.code, _NOT_ALLOWED[refused.code]) from refused
        if changed is None:
            raise not_found("Consultation not found")
        submissions.on_commit()
        return changed

    @router.post(
        "/v1/hubs/{hub}/consultations/{consultation_id}/screening",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Screen a consultation: accept it for handling, or out of scope with a reason code (staff)",
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def screen(
        hub: str,
        consultation_id: uuid.UUID,
        body: ScreeningRequest,
        principal: Annotated[StaffPrincipal, Depends(allowed(Action.SCREEN))],
    ) -> Accepted:
        if body.decision is ScreeningDecision.OUT_OF_SCOPE and body.reason is None:
            raise Problem(422, "reason_required", "Give a reason code when a consultation is out of scope")
        changed = await command(
            lambda session: handlers.screen_consultation(
                session,
                hub=hub,
                consultation_id=consultation_id,
                decision=body.decision,
                reason=body.reason,
                recorded_by=principal.subject,
                correlation_id=current_correlation(),
            )
        )
        return Accepted(consultation_id=consultation_id, status=changed.status.value)

    @router.post(
        "/v1/hubs/{hub}/consultations/{consultation_id}/notes",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=NoteAccepted,
        summary="Add a note to a consultation's record (staff)",
        responses=problems(400, 401, 403, 404, 413, 422),
    )
    async def note(
        hub: str,
        consultation_id: uuid.UUID,
        body: NoteRequest,
        principal: Annotated[StaffPrincipal, Depends(allowed(Action.NOTE))],
    ) -> NoteAccepted:
        async with sessions.begin() as session:
            note_id = await handlers.add_note(
                session,
                hub=hub,
                consultation_id=consultation_id,
                text=body.text,
                awaits_applicant=body.awaits_applicant,
                recorded_by=principal.subject,
                correlation_id=current_correlation(),
            )
        if note_id is None:
            raise not_found("Consultation not found")
        submissions.on_commit()
        return NoteAccepted(consultation_id=consultation_id, note_id=note_id)

    @router.post(
        "/v1/hubs/{hub}/consultations/{consultation_id}/closure",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Close a consultation with its outcome (staff)",
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def close(
        hub: str,
        consultation_id: uuid.UUID,
        body: ClosureRequest,
        principal: Annotated[StaffPrincipal, Depends(allowed(Action.CLOSE))],
    ) -> Accepted:
        changed = await command(
            lambda session: handlers.close_consultation(
                session,
                hub=hub,
                consultation_id=consultation_id,
                outcome=body.outcome,
                recorded_by=principal.subject,
                correlation_id=current_correlation(),
            )
        )
        return Accepted(consultation_id=consultation_id, status=changed.status.value)

    @router.post(
        "/v1/hubs/{hub}/consultations/{consultation_id}/withdrawal",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Record that a consultation is withdrawn at the applicant's request (staff)",
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def withdraw(
        hub: str,
        consultation_id: uuid.UUID,
        body: WithdrawalRequest,
        principal: Annotated[StaffPrincipal, Depends(allowed(Action.WITHDRAW))],
    ) -> Accepted:
        changed = await command(
            lambda session: handlers.withdraw_consultation(
                session,
                hub=hub,
                consultation_id=consultation_id,
                reason=body.reason,
                recorded_by=principal.subject,
                correlation_id=current_correlation(),
            )
        )
        return Accepted(consultation_id=consultation_id, status=changed.status.value)

    @router.post(
        "/v1/hubs/{hub}/consultations/{consultation_id}/applicant-links/revocation",
        response_model=LinksRevoked,
        summary="Revoke the applicant's secret links, when one has leaked (staff)",
        responses=problems(400, 401, 403, 404, 413, 422),
    )
    async def revoke_links(
        hub: str,
        consultation_id: uuid.UUID,
        _: Annotated[StaffPrincipal, Depends(allowed(Action.REVOKE_LINKS))],
    ) -> LinksRevoked:
        async with sessions.begin() as session:
            revoked = await handlers.revoke_links(session, hub=hub, consultation_id=consultation_id)
        if revoked is None:
            raise not_found("Consultation not found")
        return LinksRevoked(consultation_id=consultation_id, revoked=revoked)

    @router.post(
        "/v1/staff/sessions",
        response_model=SignedIn,
        summary="Sign in with a staff account: a staff token naming the hub and the account's roles",
        responses=problems(400, 401, 413, 422, 429),
        tags=["staff"],
    )
    async def sign_in(body: SignInRequest) -> SignedIn:
        try:
            signed = await staff.sign_in(
                sessions, hub=body.hub, email=body.email, password=body.password, key=signing_key, ttl=token_ttl
            )
        except staff.SignInRefused as refused:
            raise Problem(
                401,
                "sign_in_refused",
                "The email address or password is not correct. After %(attempts)s failures in a row, an account "
                "is locked for %(minutes)s minutes.",
                attempts=staff.LOCK_AFTER,
                minutes=int(staff.LOCKED_FOR.total_seconds() // 60),
            ) from refused
        return SignedIn(
            token=signed.token,
            expires_at=signed.expires_at,
            roles=sorted(signed.roles),
            display_name=signed.display_name,
        )

    @router.post(
        "/v1/hubs/{hub}/staff",
        status_code=status.HTTP_201_CREATED,
        response_model=StaffAccountView,
        summary="Open a staff account at the hub (hub admin)",
        responses=problems(400, 401, 403, 404, 409, 413, 422),
        tags=["staff"],
    )
    async def open_account(
        hub: str,
        body: NewStaffAccount,
        _: Annotated[StaffPrincipal, Depends(allowed(Action.MANAGE_STAFF))],
    ) -> StaffAccountView:
        try:
            async with sessions.begin() as session:
                account = await staff.create_account(
                    session,
                    hub=hub,
                    email=body.email,
                    display_name=body.display_name,
                    roles=body.roles,
                    password=body.password,
                )
        except staff.AccountExists as error:
            raise Problem(409, "account_exists", "This hub already has an account for this email address") from error
        return StaffAccountView(
            id=account.id,
            hub=account.hub,
            email=account.email,
            display_name=account.display_name,
            roles=[StaffRole(role) for role in account.roles],
        )

    return router
