"""The inbox: ids of applied events, recorded in the same transaction as their effect."""

from __future__ import annotations

import uuid

from sqlalchemy import Column, DateTime, MetaData, Table, Text, Uuid, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

APPLIED_EVENT = "hubnet.applied_event"
"""Key in `Session.info` naming the event whose effect the session's transaction carries."""


def define_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("event_type", Text, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def claim(session: AsyncSession, table: Table, *, consumer: str, event_id: uuid.UUID, event_type: str) -> bool:
    """Record the event as applied; False when it already was. The row lock taken here also
    serialises two deliveries of the same event racing in different replicas."""
    result = await session.execute(
        insert(table)
        .values(consumer=consumer, event_id=event_id, event_type=event_type)
        .on_conflict_do_nothing()
        .returning(table.c.event_id)
    )
    claimed = result.first() is not None
    if claimed:
        session.info[APPLIED_EVENT] = event_id
    return claimed
