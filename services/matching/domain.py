"""Matching rules: which supporters fit a consultation, and how well."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.contract.vocabulary import Language, SupportField

RULE = "topic-language-overlap/v1"


@dataclass(frozen=True, slots=True)
class Supporter:
    id: str
    hub: str
    display_name: str
    fields: tuple[SupportField, ...]
    languages: tuple[Language, ...]
    active: bool = True


@dataclass(frozen=True, slots=True)
class Candidate:
    supporter: Supporter
    score: float


@dataclass(frozen=True, slots=True)
class Proposal:
    consultation_id: uuid.UUID
    hub: str
    proposed_at: datetime
    candidates: tuple[Candidate, ...]


def score_supporter(supporter: Supporter, topics: Sequence[SupportField], language: Language) -> float:
    """Share of the consultation's topics the supporter covers; 0 when they cannot work in its language."""
    if not supporter.active or language not in supporter.languages or not topics:
        return 0.0
    covered = len(set(topics) & set(supporter.fields))
    return round(covered / len(set(topics)), 4)


def best_matches(
    supporters: Iterable[Supporter], topics: Sequence[SupportField], language: Language, *, limit: int
) -> list[Candidate]:
    scored = [Candidate(s, score_supporter(s, topics, language)) for s in supporters]
    fitting = [candidate for candidate in scored if candidate.score > 0]
    fitting.sort(key=lambda c: (-c.score, c.supporter.display_name, c.supporter.id))
    return fitting[:limit]
