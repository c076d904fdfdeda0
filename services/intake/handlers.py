"""Intake's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import domain, repository
from shared import outbox
from shared.contract.consultation import ConsultationSubmitted, ConsultationWithdrawn, WithdrawalReason


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
) -> tuple[uuid.UUID, bool]:
    """Store the consultation and stage `ConsultationSubmitted`. With an idempotency key already
    used at this hub for the same request, nothing is written and the first consultation's id is
    returned (False); for another request, `IdempotencyKeyReused` is raised."""
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
    await outbox.stage(session, submitted, hub=submitted.hub, correlation_id=correlation_id)
    return submitted.consultation_id, True


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
