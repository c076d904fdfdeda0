"""The inbox: ids of applied events, recorded in the same transaction as their effect."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Column, DateTime, MetaData, Table, Text, Uuid, func
from sqlalchemy.ext.asyncio import AsyncSession

from shared import db
from shared.contract import ContextAttributes

APPLIED_EVENTS = "hubnet.applied_events"
"""Key in `Session.info` of the event ids whose effects the session's transaction carries."""


def define_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("event_type", Text, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def claim(
    session: AsyncSession, table: Table, *, consumer: str, events: Sequence[ContextAttributes]
) -> set[uuid.UUID]:
    """Record a batch of events as applied, in one statement; returns the ids not applied before.
    The row locks taken here also serialise two deliveries of the same event racing in different
    replicas: the second waits for the first's transaction, then finds the id taken."""
    claimed = set(
        await db.insert_rows(
            session,
            table,
            [{"consumer": consumer, "event_id": e.id, "event_type": e.type} for e in events],
            conflict=(),
            returning="event_id",
        )
    )
    if claimed:
        session.info.setdefault(APPLIED_EVENTS, set()).update(claimed)
    return claimed
