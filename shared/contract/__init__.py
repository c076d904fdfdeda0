"""The event contract: the envelope, the v1 payloads and the topics; pydantic and the standard library only."""

from shared.contract.envelope import Envelope, Event, EventData, new_envelope
from shared.contract.registry import EVENT_TYPES, data_model_for

__all__ = ["EVENT_TYPES", "Envelope", "Event", "EventData", "data_model_for", "new_envelope"]
