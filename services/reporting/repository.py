"""Every SQL statement of reporting."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import domain, tables
from shared import db
from shared.contract import ContextAttributes


@dataclass(frozen=True, slots=True)
class ConsultationRecord:
    view: tables.ConsultationView
    timeline: list[tables.TimelineEntry]


async def lock_statuses(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, domain.Status]:
    """The current status of each known consultation, locked until the transaction ends."""
    rows = await session.execute(
        select(tables.ConsultationView.id, tables.ConsultationView.status)
        .where(tables.ConsultationView.id.in_(list(ids)))
        .order_by(tables.ConsultationView.id)  # one lock order for every replica: no deadlocks between them
        .with_for_update()
    )
    return {row.id: domain.Status(row.status) for row in rows}


async def save_views(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update views, one row per consultation; events may rebuild a view in any state."""
    columns = [name for name in rows[0] if name != "id"]
    await db.insert_rows(session, tables.ConsultationView.__table__, rows, conflict=("id",), update=columns)


async def add_to_timeline(session: AsyncSession, envelopes: Sequence[ContextAttributes]) -> None:
    await db.insert_rows(
        session,
        tables.TimelineEntry.__table__,
        [
            {
                "event_id": envelope.id,
                "consultation_id": uuid.UUID(envelope.subject),
                "hub": envelope.hub,
                "event_type": envelope.type,
                "source": envelope.source,
                "occurred_at": envelope.time,
                "correlation_id": envelope.correlation_id,
            }
            for envelope in envelopes
        ],
        conflict=("event_id",),
    )


async def get_by_id(session: AsyncSession, hub: str, consultation_id: uuid.UUID) -> ConsultationRecord | None:
    view = await session.scalar(
        select(tables.ConsultationView).where(
            tables.ConsultationView.hub == hub, tables.ConsultationView.id == consultation_id
        )
    )
    if view is None:
        return None
    timeline = await session.scalars(
        select(tables.TimelineEntry)
        .where(tables.TimelineEntry.consultation_id == consultation_id)
        .order_by(tables.TimelineEntry.occurred_at, tables.TimelineEntry.event_id)
    )
    return ConsultationRecord(view, list(timeline))


async def list_consultations(
    session: AsyncSession, hub: str, *, limit: int, offset: int
) -> list[tables.ConsultationView]:
    rows = await session.scalars(
        select(tables.ConsultationView)
        .where(tables.ConsultationView.hub == hub)
        .order_by(tables.ConsultationView.submitted_at.desc().nulls_last(), tables.ConsultationView.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows)
