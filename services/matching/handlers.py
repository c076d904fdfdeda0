"""Matching's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import domain, repository
from shared import outbox
from shared.contract import Event
from shared.contract.consultation import ConsultationEvent, ConsultationSubmitted, MatchCandidate, MatchProposed
from shared.contract.vocabulary import Language, SupportField


class Need(ConsultationEvent):
    """What matching reads of `ConsultationSubmitted`, under its event type: a tolerant reader's view. The
    rest of the record (the applicant's contact details, the product, the attachments) is not made into
    models it would never use, which takes a submission's parse from about 5 µs to 3, 9 to 5 with the full
    record; intake validated all of it. A payload without what matching needs still dead-letters."""

    event_type: ClassVar[str] = ConsultationSubmitted.event_type

    hub: str
    language: Language
    topics: tuple[SupportField, ...] = Field(min_length=1)


_Ranked = tuple[tuple[domain.Candidate, ...], tuple[MatchCandidate, ...]]
"""A need's best supporters: as matching records them, and as its event names them."""


async def propose_matches(session: AsyncSession, events: Sequence[Event[Need]], *, limit: int) -> None:
    """Rank each consultation's supporters and propose the best; one roster read for the whole batch, and
    one ranking per distinct need in it (hub, topics, language): a batch of hundreds holds a few dozen."""
    rosters = await repository.list_available_supporters(session, {event.data.hub for event in events})
    proposed_at = datetime.now(UTC)
    rankings: dict[tuple[str, frozenset[SupportField], Language], _Ranked] = {}
    proposals: dict[uuid.UUID, tuple[domain.Proposal, tuple[MatchCandidate, ...]]] = {}
    for event in events:
        data = event.data
        need = (data.hub, frozenset(data.topics), data.language)
        if need not in rankings:
            best = tuple(domain.best_matches(rosters.get(data.hub, ()), data.topics, data.language, limit=limit))
            rankings[need] = (best, tuple(_candidate(c) for c in best))
        ranked, published = rankings[need]
        proposals[data.consultation_id] = (
            domain.Proposal(data.consultation_id, data.hub, proposed_at, ranked),
            published,
        )
    saved = await repository.save_proposals(session, [proposal for proposal, _ in proposals.values()])
    causes = {event.data.consultation_id: event.envelope for event in events}
    await outbox.stage_all(
        session,
        [
            outbox.Staged(
                MatchProposed(
                    consultation_id=consultation_id,
                    proposed_at=proposed_at,
                    rule=domain.RULE,
                    candidates=proposals[consultation_id][1],
                ),
                cause=causes[consultation_id],
            )
            for consultation_id in saved
        ],
    )


def _candidate(candidate: domain.Candidate) -> MatchCandidate:
    supporter = candidate.supporter
    return MatchCandidate(
        supporter_id=supporter.id,
        display_name=supporter.display_name,
        fields=supporter.fields,
        languages=supporter.languages,
        score=candidate.score,
    )


async def register_supporter(session: AsyncSession, supporter: domain.Supporter) -> None:
    await repository.save_supporter(session, supporter)
