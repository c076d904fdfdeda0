"""How events move a consultation through its lifecycle, as reporting shows it."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    SUBMITTED = "submitted"
    SCREENING = "screening"
    MATCHED = "matched"
    MEETING_SCHEDULED = "meeting_scheduled"
    IN_SUPPORT = "in_support"
    CLOSED = "closed"
    REFERRED = "referred"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"


TERMINAL = frozenset({Status.CLOSED, Status.REFERRED, Status.WITHDRAWN, Status.REJECTED})
ORDER = (Status.SUBMITTED, Status.SCREENING, Status.MATCHED, Status.MEETING_SCHEDULED, Status.IN_SUPPORT)


def advance(current: Status | None, proposed: Status) -> Status:
    """Statuses only move forward; a terminal status is never left."""
    if current is None:
        return proposed
    if current in TERMINAL:
        return current
    if proposed in TERMINAL:
        return proposed
    return proposed if ORDER.index(proposed) > ORDER.index(current) else current
