"""Every SQL statement of reporting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import domain, tables
from shared.contract import Envelope


@dataclass(frozen=True, slots=True)
class ConsultationRecord:
    view: tables.ConsultationView
    timeline: list[tables.TimelineEntry]


async def get_status_for_update(session: AsyncSession, consultation_id: uuid.UUID) -> domain.Status | None:
    status = await session.scalar(
        select(tables.ConsultationView.status).where(tables.ConsultationView.id == consultation_id).with_for_update()
    )
    return domain.Status(status) if status is not None else None


async def save_view(session: AsyncSession, consultation_id: uuid.UUID, hub: str, **values: Any) -> None:
    """Insert or update the view; events may rebuild it in any state, so every write is an upsert."""
    values["updated_at"] = datetime.now(UTC)
    statement = insert(tables.ConsultationView).values(id=consultation_id, hub=hub, **values)
    await session.execute(statement.on_conflict_do_update(index_elements=[tables.ConsultationView.id], set_=values))


async def add_to_timeline(session: AsyncSession, envelope: Envelope, consultation_id: uuid.UUID) -> None:
    await session.execute(
        insert(tables.TimelineEntry)
        .values(
            event_id=envelope.id,
            consultation_id=consultation_id,
            hub=envelope.hub,
            event_type=envelope.type,
            source=envelope.source,
            occurred_at=envelope.time,
            correlation_id=envelope.correlation_id,
        )
        .on_conflict_do_nothing()
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
