"""Delivery rules: one delivery per (event, template); pending → sending → sent, retried until a deadline.

The state `sending` is committed before the message goes to SMTP, so a crash between the two leaves
evidence: once its lease lapses, the delivery is sent again. That is the only way a message is sent
twice, so the residual duplicate window is one message per delivery in flight when a process dies: one
send at a time, each recorded before the next, so at most one duplicate per crash, never a loss.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.contract.vocabulary import Language
from shared.poll import jittered_delay

ACKNOWLEDGEMENT = "consultation.acknowledged"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # over the per-recipient limit: kept as a record, never sent


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
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime


@dataclass(frozen=True, slots=True)
class GiveUp:
    permanent: bool


def retry_delay(attempts: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff with full jitter: uniform in [base, min(cap, base·2^(attempts-1))]."""
    return timedelta(seconds=jittered_delay(max(attempts - 1, 0), base.total_seconds(), cap.total_seconds()))


def after_failure(
    attempts: int, *, now: datetime, deadline: datetime, permanent: bool, base: timedelta, cap: timedelta
) -> Retry | GiveUp:
    """What follows a failed attempt: a permanent refusal gives up at once; otherwise retry, unless the
    next attempt would fall after the deadline."""
    if permanent:
        return GiveUp(permanent=True)
    at = now + retry_delay(attempts, base=base, cap=cap)
    return GiveUp(permanent=False) if at > deadline else Retry(at)
