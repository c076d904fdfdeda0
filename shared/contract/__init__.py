"""The event contract: the envelope, the v1 payloads and the topics; pydantic and the standard library only."""

from shared.contract.envelope import ContextAttributes, Envelope, Event, EventData, Received, new_envelope
from shared.contract.registry import EVENT_TYPES, data_model_for

__all__ = [
    "EVENT_TYPES",
    "ContextAttributes",
    "Envelope",
    "Event",
    "EventData",
    "Received",
    "data_model_for",
    "new_envelope",
]
