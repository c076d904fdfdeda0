"""Reporting's projections: one use case per event type, each applying a whole batch with set-based SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import domain, repository
from shared.contract import Event
from shared.contract.consultation import (
    ConsultationEvent,
    ConsultationSubmitted,
    ConsultationWithdrawn,
    DeliveryFailed,
    MatchProposed,
    NotificationSent,
)

ACKNOWLEDGEMENT = "consultation.acknowledged"


async def _project(
    session: AsyncSession,
    events: Sequence[Event[Any]],
    status: domain.Status | None,
    values: Callable[[Any], dict[str, Any]],
) -> None:
    """Fold a batch of one event type into the consultation views (one read, one upsert) and the
    timeline (one insert). Statuses only advance (`domain.advance`); `None` leaves them as they are."""
    current = await repository.lock_statuses(session, {event.data.consultation_id for event in events})
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    now = datetime.now(UTC)
    for event in events:
        data: ConsultationEvent = event.data
        before = current.get(data.consultation_id)
        after = domain.advance(before, status) if status is not None else before or domain.Status.SUBMITTED
        current[data.consultation_id] = after
        row = rows.setdefault(data.consultation_id, {"id": data.consultation_id, "hub": event.envelope.hub})
        row.update(values(data), status=after.value, updated_at=now)
    await repository.save_views(session, list(rows.values()))
    await repository.add_to_timeline(session, [event.envelope for event in events])


async def record_submissions(session: AsyncSession, events: Sequence[Event[ConsultationSubmitted]]) -> None:
    def values(data: ConsultationSubmitted) -> dict[str, Any]:
        return {
            "submitted_at": data.submitted_at,
            "language": data.language.value,
            "channel": data.channel.value,
            "applicant_kind": data.applicant_kind.value,
            "organization": data.organization,
            "title": data.title,
            "product_kind": data.product_kind.value,
            "development_stage": data.development_stage.value,
            "topics": [t.value for t in data.topics],
            "contact_name": data.personal.contact_name,
            "email": str(data.personal.email),
            "body": data.personal.body,
        }

    await _project(session, events, domain.Status.SUBMITTED, values)


async def record_match_proposals(session: AsyncSession, events: Sequence[Event[MatchProposed]]) -> None:
    def values(data: MatchProposed) -> dict[str, Any]:
        return {
            "match_candidates": [c.model_dump(mode="json") for c in data.candidates],
            "match_proposed_at": data.proposed_at,
        }

    await _project(session, events, domain.Status.SCREENING, values)


async def record_notifications(session: AsyncSession, events: Sequence[Event[NotificationSent]]) -> None:
    acknowledgements = [event for event in events if event.data.template == ACKNOWLEDGEMENT]
    others = [event for event in events if event.data.template != ACKNOWLEDGEMENT]
    if acknowledgements:
        await _project(session, acknowledgements, None, lambda data: {"acknowledged_at": data.sent_at})
    if others:
        await _project(session, others, None, lambda _: {})


async def record_delivery_failures(session: AsyncSession, events: Sequence[Event[DeliveryFailed]]) -> None:
    await _project(session, events, None, lambda data: {"delivery_failed_at": data.failed_at})


async def record_withdrawals(session: AsyncSession, events: Sequence[Event[ConsultationWithdrawn]]) -> None:
    await _project(session, events, domain.Status.WITHDRAWN, lambda data: {"withdrawn_at": data.withdrawn_at})
