"""Intake's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import domain, repository
from shared import outbox
from shared.contract.consultation import (
    APPLICANT,
    Attachment,
    Consents,
    ConsentsChanged,
    ConsultationSubmitted,
    ConsultationSupplemented,
    ConsultationWithdrawn,
    SupplementPersonal,
    WithdrawalReason,
)


def new_link_token() -> str:
    """The secret of an applicant's page: 256 random bits, URL-safe. Intake keeps only its SHA-256."""
    return secrets.token_urlsafe(32)


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's Idempotency-Key and the SHA-256 of the request it came with."""

    key: str
    request_sha256: str


class IdempotencyKeyReused(Exception):
    """The key was first used at this hub with a different request."""


async def submit_consultation(
    session: AsyncSession,
    submitted: ConsultationSubmitted,
    *,
    correlation_id: uuid.UUID,
    idempotency_key: IdempotencyKey | None,
    link_ttl: timedelta,
) -> tuple[uuid.UUID, bool]:
    """Store the consultation, its attachments' metadata and its applicant link (the event's token, valid
    `link_ttl`), and stage `ConsultationSubmitted`. With an idempotency key already used at this hub for
    the same request, nothing is written and the first consultation's id is returned (False); for
    another request, `IdempotencyKeyReused` is raised."""
    if idempotency_key is not None:
        earlier = await earlier_submission(session, submitted.hub, idempotency_key)
        if earlier is not None:
            return earlier, False
    await repository.save_submitted(
        session,
        submitted,
        idempotency_key=idempotency_key.key if idempotency_key else None,
        request_sha256=idempotency_key.request_sha256 if idempotency_key else None,
    )
    await repository.save_attachments(
        session,
        submitted.consultation_id,
        submitted.attachments,
        at=submitted.submitted_at,
        by=submitted.entered_by or APPLICANT,
    )
    token = submitted.personal.applicant_link_token
    if token is not None:
        await repository.save_link(
            session,
            submitted.consultation_id,
            link_digest(token),
            issued_at=submitted.submitted_at,
            expires_at=submitted.submitted_at + link_ttl,
        )
    await outbox.stage(session, submitted, hub=submitted.hub, correlation_id=correlation_id)
    return submitted.consultation_id, True


async def issue_link(session: AsyncSession, consultation_id: uuid.UUID, *, ttl: timedelta) -> str:
    """A further link to a consultation's page (the answer to a repeated submission, say): its token."""
    token = new_link_token()
    now = datetime.now(UTC)
    await repository.save_link(session, consultation_id, link_digest(token), issued_at=now, expires_at=now + ttl)
    return token


async def reference_of(session: AsyncSession, consultation_id: uuid.UUID) -> str | None:
    return await repository.reference_of(session, consultation_id)


async def earlier_submission(session: AsyncSession, hub: str, idempotency_key: IdempotencyKey) -> uuid.UUID | None:
    """The consultation first submitted at the hub with this key, if any; `IdempotencyKeyReused` when
    it came with another request. A consultation stored before requests were hashed matches any."""
    earlier = await repository.get_by_idempotency_key(session, hub, idempotency_key.key)
    if earlier is None:
        return None
    consultation_id, request_sha256 = earlier
    if request_sha256 is not None and request_sha256 != idempotency_key.request_sha256:
        raise IdempotencyKeyReused(idempotency_key.key)
    return consultation_id


async def withdraw_consultation(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    reason: WithdrawalReason,
    recorded_by: str,
    correlation_id: uuid.UUID,
) -> domain.Consultation | None:
    """None when the hub has no such consultation; raises `domain.AlreadyWithdrawn`."""
    consultation = await repository.get_for_update(session, hub, consultation_id)
    if consultation is None:
        return None
    withdrawn = domain.withdraw(consultation, datetime.now(UTC))
    await repository.save_status(session, withdrawn)
    assert withdrawn.withdrawn_at is not None
    event = ConsultationWithdrawn(
        consultation_id=consultation_id,
        withdrawn_at=withdrawn.withdrawn_at,
        reason=reason,
        recorded_by=recorded_by,
    )
    await outbox.stage(session, event, hub=hub, correlation_id=correlation_id)
    return withdrawn


async def supplement_consultation(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    note: str | None,
    attachments: Sequence[Attachment],
    correlation_id: uuid.UUID,
) -> None:
    """The applicant added information or files: their metadata stored, `ConsultationSupplemented` staged.
    Raises `domain.AlreadyWithdrawn` for a withdrawn consultation."""
    consultation = await repository.get_for_update(session, hub, consultation_id)
    if consultation is None:
        raise LookupError(consultation_id)
    domain.check_open(consultation)
    now = datetime.now(UTC)
    await repository.save_attachments(session, consultation_id, attachments, at=now, by=APPLICANT)
    event = ConsultationSupplemented(
        consultation_id=consultation_id,
        supplemented_at=now,
        attachments=tuple(attachments),
        personal=SupplementPersonal(note=note),
    )
    await outbox.stage(session, event, hub=hub, correlation_id=correlation_id)


async def change_consents(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    consents: Consents,
    changed_by: str,
    correlation_id: uuid.UUID,
) -> bool:
    """Replace what the applicant agreed to; False when nothing changed (no event)."""
    current = await repository.consents_for_update(session, hub, consultation_id)
    if current is None:
        raise LookupError(consultation_id)
    if current == consents:
        return False
    await repository.save_consents(session, consultation_id, consents)
    event = ConsentsChanged(
        consultation_id=consultation_id, changed_at=datetime.now(UTC), consents=consents, changed_by=changed_by
    )
    await outbox.stage(session, event, hub=hub, correlation_id=correlation_id)
    return True
