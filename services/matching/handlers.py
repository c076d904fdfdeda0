"""Matching's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import domain, repository, tables
from shared import outbox
from shared.contract import Event, new_envelope
from shared.contract.consultation import ConsultationSubmitted, MatchCandidate, MatchProposed
from shared.contract.topics import consultations

SOURCE = "/hubnet/matching"


async def propose_matches(session: AsyncSession, event: Event[ConsultationSubmitted], *, limit: int) -> None:
    submitted = event.data
    supporters = await repository.list_available_supporters(session, submitted.hub)
    candidates = domain.best_matches(supporters, submitted.topics, submitted.language, limit=limit)
    proposed_at = datetime.now(UTC)
    await repository.save_proposal(
        session,
        consultation_id=submitted.consultation_id,
        hub=submitted.hub,
        proposed_at=proposed_at,
        candidates=candidates,
    )
    proposed = MatchProposed(
        consultation_id=submitted.consultation_id,
        proposed_at=proposed_at,
        rule=domain.RULE,
        candidates=tuple(
            MatchCandidate(
                supporter_id=c.supporter.id,
                display_name=c.supporter.display_name,
                fields=c.supporter.fields,
                languages=c.supporter.languages,
                score=c.score,
            )
            for c in candidates
        ),
    )
    envelope = new_envelope(
        proposed, source=SOURCE, hub=submitted.hub, subject=event.envelope.subject, causation=event.envelope
    )
    await outbox.add(session, tables.outbox_table, envelope, topic=consultations(submitted.hub))


async def register_supporter(session: AsyncSession, supporter: domain.Supporter) -> None:
    await repository.save_supporter(session, supporter)
