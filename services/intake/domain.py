"""Intake's rules about a consultation as submitted: what may change after submission."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

# Crockford's base 32: no I, L, O or U, so a reference read aloud over the phone is not misheard.
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Status(StrEnum):
    SUBMITTED = "submitted"
    WITHDRAWN = "withdrawn"


class AlreadyWithdrawn(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Consultation:
    id: uuid.UUID
    hub: str
    submitted_at: datetime
    status: Status
    withdrawn_at: datetime | None = None


def check_open(consultation: Consultation) -> None:
    """A withdrawn consultation takes nothing more: `AlreadyWithdrawn`."""
    if consultation.status is Status.WITHDRAWN:
        raise AlreadyWithdrawn(str(consultation.id))


def withdraw(consultation: Consultation, at: datetime) -> Consultation:
    check_open(consultation)
    return replace(consultation, status=Status.WITHDRAWN, withdrawn_at=at)


def reference(hub: str, consultation_id: uuid.UUID) -> str:
    """受付番号, e.g. `MEDISO-1PQ7W-4XK2M`: the hub, then 50 random bits of the consultation id in
    Crockford's base 32. Unique by a constraint; a clash is one in 10^15 per pair of consultations."""
    bits = consultation_id.int & ((1 << 50) - 1)  # a version 4 id's low 62 bits are all random
    chars = "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(45, -1, -5))
    return f"{hub.upper()}-{chars[:5]}-{chars[5:]}"
