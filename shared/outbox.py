"""The transactional outbox: events are written with the business change and relayed to Kafka in key order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    delete,
    func,
    insert,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contract import Envelope
from shared.observability import ServiceMetrics

log = logging.getLogger(__name__)


def define_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index("ix_outbox_pending", "key", "id", postgresql_where=text("published_at IS NULL")),
    )


@dataclass(frozen=True, slots=True)
class Record:
    id: int
    topic: str
    key: str
    event_type: str
    payload: bytes


Publish = Callable[[Sequence[Record]], Awaitable[None]]
"""Publishes records in the given order and returns only when the broker has acknowledged all."""


async def add(session: AsyncSession, table: Table, envelope: Envelope, *, topic: str) -> None:
    """Stage an event in the caller's transaction; it is published only if that transaction commits."""
    await session.execute(
        insert(table).values(
            event_id=envelope.id,
            topic=topic,
            key=envelope.subject,
            event_type=envelope.type,
            payload=envelope.to_bytes(),
        )
    )


def _claim_statement(table: Table) -> str:
    name = f"{table.schema}.{table.name}"
    # Rows are locked with SKIP LOCKED so that replicas share the work; a row is only taken when
    # no earlier unpublished row of the same key sits outside this batch (held by another relay),
    # so each consultation's events reach Kafka in the order they were written.
    return f"""
        WITH batch AS (
            SELECT id, key FROM {name}
            WHERE published_at IS NULL
            ORDER BY id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        )
        SELECT o.id, o.topic, o.key, o.event_type, o.payload
        FROM {name} o JOIN batch b ON o.id = b.id
        WHERE NOT EXISTS (
            SELECT 1 FROM {name} p
            WHERE p.key = b.key AND p.id < b.id AND p.published_at IS NULL
              AND p.id NOT IN (SELECT id FROM batch)
        )
        ORDER BY o.id
    """


class Relay:
    """Moves committed outbox rows to Kafka. Several replicas may run it at once."""

    def __init__(
        self,
        *,
        table: Table,
        sessions: async_sessionmaker[AsyncSession],
        publish: Publish,
        metrics: ServiceMetrics,
        batch_size: int,
        poll_interval_s: float,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._table = table
        self._sessions = sessions
        self._publish = publish
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._claim = text(_claim_statement(table))
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a commit that staged events, so they go out without waiting for the poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        async with self._sessions.begin() as session:
            rows = (await session.execute(self._claim, {"limit": self._batch_size})).all()
            if not rows:
                return 0
            records = [Record(row.id, row.topic, row.key, row.event_type, row.payload) for row in rows]
            await self._publish(records)
            await session.execute(
                update(self._table)
                .where(self._table.c.id.in_([record.id for record in records]))
                .values(published_at=func.now())
            )
        self._metrics.outbox_published.inc(len(records))
        return len(records)

    async def purge(self) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(self._table).where(self._table.c.published_at < func.now() - self._retention))

    async def run(self) -> None:
        backoff = self._poll_interval_s
        loops = 0
        while True:
            try:
                published = await self.relay_once()
                backoff = self._poll_interval_s
                loops += 1
                if loops % 3000 == 0:
                    await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._metrics.outbox_errors.inc()
                log.warning("outbox relay failed; retrying in %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
                self._wake.clear()
