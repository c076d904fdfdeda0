"""Intake's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import domain, repository
from shared import outbox
from shared.contract.consultation import ConsultationSubmitted, ConsultationWithdrawn, WithdrawalReason


async def submit_consultation(
    session: AsyncSession,
    submitted: ConsultationSubmitted,
    *,
    correlation_id: uuid.UUID,
    idempotency_key: str | None,
) -> tuple[uuid.UUID, bool]:
    """Store the consultation and stage `ConsultationSubmitted`. With an idempotency key already
    used at this hub, nothing is written and the first consultation's id is returned (False)."""
    if idempotency_key is not None:
        existing = await repository.get_by_idempotency_key(session, submitted.hub, idempotency_key)
        if existing is not None:
            return existing.id, False
    await repository.save_submitted(session, submitted, idempotency_key)
    await outbox.stage(session, submitted, hub=submitted.hub, correlation_id=correlation_id)
    return submitted.consultation_id, True


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
