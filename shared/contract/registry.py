"""Every event type hubnet publishes, by its wire name."""

from __future__ import annotations

from shared.contract.consultation import (
    ConsentsChanged,
    ConsultationClosed,
    ConsultationScreened,
    ConsultationSubmitted,
    ConsultationSupplemented,
    ConsultationWithdrawn,
    DeliveryFailed,
    MatchProposed,
    NoteAdded,
    NotificationSent,
)
from shared.contract.envelope import EventData

EVENT_TYPES: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        ConsultationSubmitted,
        ConsultationWithdrawn,
        ConsultationSupplemented,
        ConsentsChanged,
        ConsultationScreened,
        NoteAdded,
        ConsultationClosed,
        MatchProposed,
        NotificationSent,
        DeliveryFailed,
    )
}


def data_model_for(event_type: str) -> type[EventData] | None:
    return EVENT_TYPES.get(event_type)
