"""Intake's rules about a consultation's life: what each command may do from each state.

    submitted ──screen──▶ accepted ──close──▶ closed
        │      └────────▶ out_of_scope
        └──withdraw (from submitted or accepted)──▶ withdrawn

Notes may be added in any state; the applicant may add information while it is submitted or accepted.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from shared.contract.vocabulary import Outcome, OutOfScopeReason, ScreeningDecision

# Crockford's base 32: no I, L, O or U, so a reference read aloud over the phone is not misheard.
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Status(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    OUT_OF_SCOPE = "out_of_scope"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


OPEN: Final = frozenset({Status.SUBMITTED, Status.ACCEPTED})
"""States in which the consultation is still being handled."""


class NotAllowed(Exception):
    """The command does not apply in the consultation's state: `code` names why (409)."""

    def __init__(self, code: str, status: Status) -> None:
        super().__init__(f"{code} (status {status})")
        self.code = code
        self.status = status


class AlreadyWithdrawn(NotAllowed):
    def __init__(self, status: Status = Status.WITHDRAWN) -> None:
        super().__init__("already_withdrawn", status)


@dataclass(frozen=True, slots=True)
class Consultation:
    id: uuid.UUID
    hub: str
    submitted_at: datetime
    status: Status
    withdrawn_at: datetime | None = None
    screened_at: datetime | None = None
    screening_decision: ScreeningDecision | None = None
    out_of_scope_reason: OutOfScopeReason | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None


def check_open(consultation: Consultation) -> None:
    """The applicant may add to a consultation that is still being handled."""
    if consultation.status is Status.WITHDRAWN:
        raise AlreadyWithdrawn()
    if consultation.status not in OPEN:
        raise NotAllowed("closed", consultation.status)


def withdraw(consultation: Consultation, at: datetime) -> Consultation:
    check_open(consultation)
    return replace(consultation, status=Status.WITHDRAWN, withdrawn_at=at)


def screen(
    consultation: Consultation, decision: ScreeningDecision, reason: OutOfScopeReason | None, at: datetime
) -> Consultation:
    if consultation.status is Status.WITHDRAWN:
        raise AlreadyWithdrawn()
    if consultation.status is not Status.SUBMITTED:
        raise NotAllowed("already_screened", consultation.status)
    status = Status.ACCEPTED if decision is ScreeningDecision.ACCEPTED else Status.OUT_OF_SCOPE
    return replace(
        consultation,
        status=status,
        screened_at=at,
        screening_decision=decision,
        out_of_scope_reason=reason if decision is ScreeningDecision.OUT_OF_SCOPE else None,
    )


def close(consultation: Consultation, outcome: Outcome, at: datetime) -> Consultation:
    if consultation.status is not Status.ACCEPTED:
        code = {Status.SUBMITTED: "not_screened", Status.WITHDRAWN: "already_withdrawn"}.get(
            consultation.status, "closed"
        )
        raise NotAllowed(code, consultation.status)
    return replace(consultation, status=Status.CLOSED, closed_at=at, outcome=outcome)


def reference(hub: str, consultation_id: uuid.UUID) -> str:
    """受付番号, e.g. `MEDISO-1PQ7W-4XK2M`: the hub, then 50 random bits of the consultation id in
    Crockford's base 32. Unique by a constraint; a clash is one in 10^15 per pair of consultations."""
    bits = consultation_id.int & ((1 << 50) - 1)  # a version 4 id's low 62 bits are all random
    chars = "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(45, -1, -5))
    return f"{hub.upper()}-{chars[:5]}-{chars[5:]}"


OPEN_HOURS_TIMES: Final = ((10, 0), (11, 0))
"""Open Hours: weekdays at 10:00 and 11:00, Japan time."""


DUPLICATE_WINDOW: Final = timedelta(days=30)
DUPLICATES_NAMED: Final = 10
"""At most this many earlier consultations are named as likely duplicates of a new one (the latest)."""


@dataclass(frozen=True, slots=True)
class Product:
    name: str | None
    kind: str


def _normalised(name: str) -> str:
    """ＡＩ診断 and "ai 診断" alike: NFKC, case-folded, without spaces."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def same_product(one: Product, other: Product) -> bool:
    """The same product: by name when both are named (however typed), otherwise by kind."""
    if one.name and other.name:
        return _normalised(one.name) == _normalised(other.name)
    return one.kind == other.kind
