"""The inbox: ids of applied events, recorded in the same transaction as their effect."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence

from sqlalchemy import Column, DateTime, MetaData, Select, Table, Text, Uuid, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contract import ContextAttributes

APPLIED_EVENTS = "hubnet.applied_events"
"""Key in `Session.info` of how many events' effects the session's transaction carries."""


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
    """Record a batch of events as applied, in one statement; returns the ids applied before (a
    redelivery's), usually none, so the common answer is empty and costs nothing to read back.
    The row locks taken here also serialise two deliveries of the same event racing in different
    replicas: the second waits for the first's transaction, then finds the id taken."""
    if not events:
        return set()
    result = await session.execute(
        _claim_statement(table),
        {"consumer": consumer, "ids": [e.id for e in events], "types": [e.type for e in events]},
    )
    applied_before = set(result.scalars().all())
    if len(applied_before) < len(events):
        session.info[APPLIED_EVENTS] = session.info.get(APPLIED_EVENTS, 0) + len(events) - len(applied_before)
    return applied_before


@functools.cache
def _claim_statement(table: Table) -> Select[uuid.UUID]:
    """Insert the batch's ids, and select those the insert skipped: a construct, so that a schema
    translation applies to it (reporting's rebuild claims into a shadow schema)."""
    offered = text(
        "SELECT CAST(:consumer AS text), u.event_id, u.event_type "
        "FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) AS u(event_id, event_type)"
    ).columns(table.c.consumer, table.c.event_id, table.c.event_type)
    claimed = (
        insert(table)
        .from_select(["consumer", "event_id", "event_type"], offered)
        .on_conflict_do_nothing()
        .returning(table.c.event_id)
        .cte("claimed")
    )
    every = text("unnest(CAST(:ids AS uuid[])) AS every(id)")
    event_id = literal_column("every.id", type_=Uuid())
    return select(event_id).select_from(every).where(event_id.not_in(select(claimed.c.event_id)))
