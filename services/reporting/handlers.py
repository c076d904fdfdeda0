"""Reporting's projections: what each event does to its consultation's view and timeline (a `Change`, a
pure function of the event), applied by the live consumer a batch at a time with set-based SQL (`projecting`)
and by the rebuild in memory, then written with COPY (`services.reporting.rebuild`): the same fold either way."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import domain, repository
from shared.consumer import Route, on
from shared.contract import ContextAttributes, Event
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
D = TypeVar("D", bound=ConsultationEvent)


NOTHING: Mapping[str, Any] = MappingProxyType({})


class Change(NamedTuple):
    """What one event does: the status it proposes (statuses only advance, `domain.advance`; None leaves it),
    the view's columns it sets, and what the timeline says of it besides its type and time: who did it, and
    what they decided or wrote. A named tuple: built once per event, in a third of a frozen dataclass's time."""

    status: domain.Status | None = None
    values: Mapping[str, Any] = NOTHING
    actor: str | None = None
    detail: dict[str, Any] | None = None


def fold(
    views: dict[uuid.UUID, dict[str, Any]],
    statuses: dict[uuid.UUID, domain.Status],
    envelope: ContextAttributes,
    consultation_id: uuid.UUID,
    change: Change,
) -> None:
    """One event into the views being built (each a row's columns to write, by consultation) and the statuses
    known so far. A consultation's first event creates its view; later ones overwrite the columns they set."""
    before = statuses.get(consultation_id)
    proposed = change.status
    after = domain.advance(before, proposed) if proposed is not None else before or domain.Status.SUBMITTED
    statuses[consultation_id] = after
    view = views.get(consultation_id)
    if view is None:
        view = views[consultation_id] = {"id": consultation_id}
    view.update(change.values)
    view["hub"] = envelope.hub
    view["status"] = after.value
    view["updated_at"] = envelope.time


def projecting(change: Callable[[D], Change]) -> Callable[[AsyncSession, Sequence[Event[D]]], Awaitable[None]]:
    """The live consumer's use case for one event type: a batch folded into its consultations' views (one
    locking read of their statuses, one upsert per shape of row) and the timeline (one insert)."""

    async def apply(session: AsyncSession, events: Sequence[Event[D]]) -> None:
        statuses = await repository.lock_statuses(session, {event.data.consultation_id for event in events})
        views: dict[uuid.UUID, dict[str, Any]] = {}
        entries = []
        for event in events:
            done = change(event.data)
            fold(views, statuses, event.envelope, event.data.consultation_id, done)
            entries.append((event.envelope, done.actor, done.detail))
        await repository.save_views(session, list(views.values()))
        await repository.add_to_timeline(session, entries)

    return apply


@dataclass(frozen=True)
class Projection(Generic[D]):
    """An event type and its change: mypy refuses a change of another type."""

    model: type[D]
    change: Callable[[D], Change]

    @property
    def route(self) -> Route[D]:
        return on(self.model, projecting(self.change))


def submitted(data: ConsultationSubmitted) -> Change:
    values = {
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
        "search": domain.SearchDocument.of(
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
    return Change(domain.Status.SUBMITTED, values, data.entered_by)


def match_proposed(data: MatchProposed) -> Change:
    candidates = [candidate.model_dump(mode="json") for candidate in data.candidates]
    return Change(domain.Status.SCREENING, {"match_candidates": candidates, "match_proposed_at": data.proposed_at})


def notification_sent(data: NotificationSent) -> Change:
    return Change(values={"acknowledged_at": data.sent_at} if data.template == ACKNOWLEDGEMENT else {})


def delivery_failed(data: DeliveryFailed) -> Change:
    return Change(values={"delivery_failed_at": data.failed_at})


def withdrawn(data: ConsultationWithdrawn) -> Change:
    return Change(
        domain.Status.WITHDRAWN, {"withdrawn_at": data.withdrawn_at}, data.recorded_by, {"reason": data.reason}
    )


def screened(data: ConsultationScreened) -> Change:
    accepted = data.decision is ScreeningDecision.ACCEPTED
    reason = data.reason.value if data.reason else None
    return Change(
        domain.Status.IN_SUPPORT if accepted else domain.Status.REJECTED,
        {
            "screened_at": data.screened_at,
            "screening_decision": data.decision.value,
            "out_of_scope_reason": reason,
            "screened_by": data.recorded_by,
        },
        data.recorded_by,
        {"decision": data.decision.value, "reason": reason},
    )


def note_added(data: NoteAdded) -> Change:
    if data.awaits_applicant:
        detail = {"text": data.personal.text, "awaits_applicant": True}
        return Change(values={"awaiting_applicant_since": data.noted_at}, actor=data.recorded_by, detail=detail)
    return Change(actor=data.recorded_by, detail={"text": data.personal.text})


def closed(data: ConsultationClosed) -> Change:
    return Change(
        domain.Status.CLOSED,
        {"closed_at": data.closed_at, "outcome": data.outcome.value, "closed_by": data.recorded_by},
        data.recorded_by,
        {"outcome": data.outcome.value},
    )


def supplemented(data: ConsultationSupplemented) -> Change:
    files = [attachment.model_dump(mode="json") for attachment in data.attachments]
    detail = {"note": data.personal.note, "attachments": files}
    return Change(values={"awaiting_applicant_since": None}, actor=APPLICANT, detail=detail)


def consents_changed(data: ConsentsChanged) -> Change:
    consents = data.consents.model_dump(mode="json")
    return Change(values={"consents": consents}, actor=data.changed_by, detail={"consents": consents})


PROJECTIONS: tuple[Projection[Any], ...] = (
    Projection(ConsultationSubmitted, submitted),
    Projection(MatchProposed, match_proposed),
    Projection(NotificationSent, notification_sent),
    Projection(DeliveryFailed, delivery_failed),
    Projection(ConsultationWithdrawn, withdrawn),
    Projection(ConsultationScreened, screened),
    Projection(NoteAdded, note_added),
    Projection(ConsultationClosed, closed),
    Projection(ConsultationSupplemented, supplemented),
    Projection(ConsentsChanged, consents_changed),
)
"""Every event type reporting projects, and its change: the live consumer's routes and the rebuild's fold."""

ROUTES: tuple[Route[Any], ...] = tuple(projection.route for projection in PROJECTIONS)
"""The live consumer's routes; the rebuild's careful way and its catch-up replay the log through them."""
