"""Reporting's projections: one use case per event type, each applying a whole batch with set-based SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import domain, repository
from shared.contract import Event
from shared.contract.consultation import (
    APPLICANT,
    ConsentsChanged,
    ConsultationClosed,
    ConsultationEvent,
    ConsultationScreened,
    ConsultationSubmitted,
    ConsultationSupplemented,
    ConsultationWithdrawn,
    DeliveryFailed,
    MatchProposed,
    NoteAdded,
    NotificationSent,
)
from shared.contract.vocabulary import ScreeningDecision

ACKNOWLEDGEMENT = "consultation.acknowledged"


Entry = tuple[str | None, dict[str, Any] | None]
"""What the timeline says of an event besides its type and time: who did it, and what they decided or wrote."""


def _nobody(_: Any) -> Entry:
    return None, None


async def _project(
    session: AsyncSession,
    events: Sequence[Event[Any]],
    status: domain.Status | Callable[[Any], domain.Status] | None,
    values: Callable[[Any], dict[str, Any]],
    entry: Callable[[Any], Entry] = _nobody,
) -> None:
    """Fold a batch of one event type into the consultation views (one read, one upsert) and the
    timeline (one insert). Statuses only advance (`domain.advance`); `None` leaves them as they are."""
    current = await repository.lock_statuses(session, {event.data.consultation_id for event in events})
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for event in events:
        data: ConsultationEvent = event.data
        before = current.get(data.consultation_id)
        proposed = status(data) if callable(status) else status
        after = domain.advance(before, proposed) if proposed is not None else before or domain.Status.SUBMITTED
        current[data.consultation_id] = after
        row = rows.setdefault(data.consultation_id, {"id": data.consultation_id, "hub": event.envelope.hub})
        row.update(values(data), status=after.value, updated_at=event.envelope.time)
    await repository.save_views(session, list(rows.values()))
    await repository.add_to_timeline(session, [(event.envelope, *entry(event.data)) for event in events])


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
            "reference": data.reference,
            "corporate_number": data.corporate_number,
            "prefecture": data.prefecture.value if data.prefecture else None,
            "product_name": data.product_name,
            "meeting_format": data.meeting_format.value if data.meeting_format else None,
            "open_hours_slot": data.open_hours_slot,
            "family_name": data.personal.family_name,
            "given_name": data.personal.given_name,
            "family_name_kana": data.personal.family_name_kana,
            "given_name_kana": data.personal.given_name_kana,
            "phone": data.personal.phone,
            "co_researchers": [person.model_dump(mode="json") for person in data.personal.co_researchers],
            "consents": data.consents.model_dump(mode="json") if data.consents else None,
            "attachments": [attachment.model_dump(mode="json") for attachment in data.attachments],
            "entered_by": data.entered_by,
            "possible_duplicates": [str(earlier) for earlier in data.possible_duplicates],
            "fiscal_year": domain.fiscal_year(data.submitted_at),
            "search": domain.search_document(
                (
                    data.reference,
                    data.organization,
                    data.corporate_number,
                    data.title,
                    data.product_name,
                    data.personal.contact_name,
                    data.personal.family_name_kana,
                    data.personal.given_name_kana,
                    str(data.personal.email),
                    data.personal.body,
                )
            ),
        }

    await _project(session, events, domain.Status.SUBMITTED, values, lambda data: (data.entered_by, None))


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
    await _project(
        session,
        events,
        domain.Status.WITHDRAWN,
        lambda data: {"withdrawn_at": data.withdrawn_at},
        lambda data: (data.recorded_by, {"reason": data.reason}),
    )


def _screened_status(data: ConsultationScreened) -> domain.Status:
    return domain.Status.IN_SUPPORT if data.decision is ScreeningDecision.ACCEPTED else domain.Status.REJECTED


async def record_screenings(session: AsyncSession, events: Sequence[Event[ConsultationScreened]]) -> None:
    def values(data: ConsultationScreened) -> dict[str, Any]:
        return {
            "screened_at": data.screened_at,
            "screening_decision": data.decision.value,
            "out_of_scope_reason": data.reason.value if data.reason else None,
            "screened_by": data.recorded_by,
        }

    def entry(data: ConsultationScreened) -> Entry:
        return data.recorded_by, {"decision": data.decision.value, "reason": data.reason.value if data.reason else None}

    await _project(session, events, _screened_status, values, entry)


async def record_notes(session: AsyncSession, events: Sequence[Event[NoteAdded]]) -> None:
    await _project(session, events, None, lambda _: {}, lambda data: (data.recorded_by, {"text": data.personal.text}))


async def record_closures(session: AsyncSession, events: Sequence[Event[ConsultationClosed]]) -> None:
    await _project(
        session,
        events,
        domain.Status.CLOSED,
        lambda data: {"closed_at": data.closed_at, "outcome": data.outcome.value, "closed_by": data.recorded_by},
        lambda data: (data.recorded_by, {"outcome": data.outcome.value}),
    )


async def record_supplements(session: AsyncSession, events: Sequence[Event[ConsultationSupplemented]]) -> None:
    def entry(data: ConsultationSupplemented) -> Entry:
        files = [attachment.model_dump(mode="json") for attachment in data.attachments]
        return APPLICANT, {"note": data.personal.note, "attachments": files}

    await _project(session, events, None, lambda _: {}, entry)


async def record_consents(session: AsyncSession, events: Sequence[Event[ConsentsChanged]]) -> None:
    await _project(
        session,
        events,
        None,
        lambda data: {"consents": data.consents.model_dump(mode="json")},
        lambda data: (data.changed_by, {"consents": data.consents.model_dump(mode="json")}),
    )
