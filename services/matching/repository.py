"""Every SQL statement of matching."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import domain, tables
from shared.contract.vocabulary import Language, SupportField


def _to_domain(row: tables.Supporter) -> domain.Supporter:
    return domain.Supporter(
        id=row.id,
        hub=row.hub,
        display_name=row.display_name,
        fields=tuple(SupportField(f) for f in row.fields),
        languages=tuple(Language(lang) for lang in row.languages),
        active=row.active,
    )


async def save_supporter(session: AsyncSession, supporter: domain.Supporter) -> None:
    values = {
        "hub": supporter.hub,
        "id": supporter.id,
        "display_name": supporter.display_name,
        "fields": [f.value for f in supporter.fields],
        "languages": [lang.value for lang in supporter.languages],
        "active": supporter.active,
    }
    statement = insert(tables.Supporter).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[tables.Supporter.hub, tables.Supporter.id],
            set_={**{k: statement.excluded[k] for k in values if k not in ("hub", "id")}, "updated_at": func.now()},
        )
    )


async def list_supporters(session: AsyncSession, hub: str) -> list[domain.Supporter]:
    rows = await session.scalars(
        select(tables.Supporter).where(tables.Supporter.hub == hub).order_by(tables.Supporter.id)
    )
    return [_to_domain(row) for row in rows]


async def list_available_supporters(session: AsyncSession, hub: str) -> list[domain.Supporter]:
    rows = await session.scalars(
        select(tables.Supporter).where(tables.Supporter.hub == hub, tables.Supporter.active.is_(True))
    )
    return [_to_domain(row) for row in rows]


async def save_proposal(
    session: AsyncSession,
    *,
    consultation_id: uuid.UUID,
    hub: str,
    proposed_at: datetime,
    candidates: list[domain.Candidate],
) -> None:
    session.add(
        tables.Proposal(
            consultation_id=consultation_id,
            hub=hub,
            proposed_at=proposed_at,
            rule=domain.RULE,
            candidates=[{"supporter_id": c.supporter.id, "score": c.score} for c in candidates],
        )
    )
    await session.flush()
