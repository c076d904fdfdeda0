"""Intake's rules about a consultation as submitted: what may change after submission."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


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


def withdraw(consultation: Consultation, at: datetime) -> Consultation:
    if consultation.status is Status.WITHDRAWN:
        raise AlreadyWithdrawn(str(consultation.id))
    return replace(consultation, status=Status.WITHDRAWN, withdrawn_at=at)
