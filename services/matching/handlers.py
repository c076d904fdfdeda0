"""Matching's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import domain, repository
from shared import outbox
from shared.contract import Event
from shared.contract.consultation import ConsultationSubmitted, MatchCandidate, MatchProposed


async def propose_matches(session: AsyncSession, events: Sequence[Event[ConsultationSubmitted]], *, limit: int) -> None:
    """Rank each consultation's supporters and propose the best; one roster read for the whole batch."""
    rosters = await repository.list_available_supporters(session, {event.data.hub for event in events})
    proposed_at = datetime.now(UTC)
    proposals = {
        event.data.consultation_id: domain.Proposal(
            consultation_id=event.data.consultation_id,
            hub=event.data.hub,
            proposed_at=proposed_at,
            candidates=tuple(
                domain.best_matches(
                    rosters.get(event.data.hub, ()), event.data.topics, event.data.language, limit=limit
                )
            ),
        )
        for event in events
    }
    saved = await repository.save_proposals(session, list(proposals.values()))
    causes = {event.data.consultation_id: event.envelope for event in events}
    await outbox.stage_all(
        session,
        [
            outbox.Staged(_proposed(proposals[consultation_id]), cause=causes[consultation_id])
            for consultation_id in saved
        ],
    )


def _proposed(proposal: domain.Proposal) -> MatchProposed:
    return MatchProposed(
        consultation_id=proposal.consultation_id,
        proposed_at=proposal.proposed_at,
        rule=domain.RULE,
        candidates=tuple(
            MatchCandidate(
                supporter_id=c.supporter.id,
                display_name=c.supporter.display_name,
                fields=c.supporter.fields,
                languages=c.supporter.languages,
                score=c.score,
            )
            for c in proposal.candidates
        ),
    )


async def register_supporter(session: AsyncSession, supporter: domain.Supporter) -> None:
    await repository.save_supporter(session, supporter)
