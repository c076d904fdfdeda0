"""Delivery rules: one delivery per (event, template), retried with backoff, then given up."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from shared.contract.vocabulary import Language

ACKNOWLEDGEMENT = "consultation.acknowledged"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    hub: str
    consultation_id: uuid.UUID
    cause_event_id: uuid.UUID
    correlation_id: uuid.UUID
    template: str
    language: Language
    recipient: str
    subject: str
    body: str
    attempts: int = 0


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff from 2 s, capped at 10 minutes."""
    return timedelta(seconds=min(2**attempts, 600))


def gives_up(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts
