"""Every SQL statement of matching."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import domain, tables
from shared import db
from shared.contract.vocabulary import Language, SupportField


def _to_domain(row: tables.Supporter | Row[Any, Any, Any, Any, Any, Any]) -> domain.Supporter:
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


_ROSTER = tables.Supporter.__table__


async def list_available_supporters(session: AsyncSession, hubs: Iterable[str]) -> dict[str, list[domain.Supporter]]:
    """The active roster of each hub, in one query: columns, not mapped objects (once per lane of every
    batch, where the ORM's loading cost a third of a millisecond even for an empty roster)."""
    roster = _ROSTER.c
    rows = await session.execute(
        select(roster.hub, roster.id, roster.display_name, roster.fields, roster.languages, roster.active).where(
            roster.hub.in_(list(hubs)), roster.active.is_(True)
        )
    )
    rosters: dict[str, list[domain.Supporter]] = {}
    for row in rows:
        rosters.setdefault(row.hub, []).append(_to_domain(row))
    return rosters


async def save_proposals(session: AsyncSession, proposals: Sequence[domain.Proposal]) -> Sequence[uuid.UUID]:
    """Insert the proposals in one statement; returns the consultations that had none yet. Proposals
    sharing a ranking (one per distinct need in a batch) share its encoded candidates."""
    encoded: dict[int, db.JsonText] = {}
    rows = []
    for p in proposals:
        candidates = encoded.get(id(p.candidates))
        if candidates is None:
            candidates = db.JsonText(
                db.json_text([{"supporter_id": c.supporter.id, "score": c.score} for c in p.candidates])
            )
            encoded[id(p.candidates)] = candidates
        rows.append(
            {
                "consultation_id": p.consultation_id,
                "hub": p.hub,
                "proposed_at": p.proposed_at,
                "rule": domain.RULE,
                "candidates": candidates,
            }
        )
    return await db.insert_rows(
        session, tables.Proposal.__table__, rows, conflict=("consultation_id",), returning="consultation_id"
    )
