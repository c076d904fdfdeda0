"""The transactional outbox: events are staged with the business change and relayed to Kafka in key order.

A service's sessions carry its outbox binding (table and source), so a use case stages an event with
`outbox.stage(session, data, cause=...)`; subject, hub, topic and correlation all derive from the data
and its cause. The relay publishes committed rows, at most one per key per round, so a row that fails
holds back only the later rows of its own key; after `max_attempts` it is parked with its error.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import db, errors
from shared.contract import ContextAttributes, EventData
from shared.contract.envelope import encode_event, new_event_id
from shared.observability import ServiceMetrics
from shared.poll import Backoff, jittered_delay

log = logging.getLogger(__name__)

BINDING = "hubnet.outbox"
"""Key in `Session.info` of the service's `Outbox`."""


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
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("last_error", Text),
        Column("parked_at", DateTime(timezone=True)),
        # The relay's two questions: what is due, in order; and is there an earlier row of this key.
        Index("ix_outbox_due", "id", postgresql_where=text("published_at IS NULL AND parked_at IS NULL")),
        Index("ix_outbox_pending", "key", "id", postgresql_where=text("published_at IS NULL AND parked_at IS NULL")),
        Index("ix_outbox_parked", "parked_at", postgresql_where=text("parked_at IS NOT NULL")),
    )


@dataclass(frozen=True, slots=True)
class Outbox:
    """Where a service stages its events, and the `source` they carry."""

    table: Table
    source: str


def binding(table: Table, source: str) -> dict[str, Outbox]:
    """The `info` of a service's sessions (see `db.create_sessions`)."""
    return {BINDING: Outbox(table, source)}


def _bound(session: AsyncSession) -> Outbox:
    found = session.info.get(BINDING)
    if not isinstance(found, Outbox):
        raise RuntimeError("this session has no outbox: the service declares no outbox table")
    return found


class Staged(NamedTuple):
    """One event to stage: its payload, and either the event that caused it or the hub it belongs to."""

    data: EventData
    cause: ContextAttributes | None = None
    hub: str | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None


class Written(NamedTuple):
    """An event staged: what the outbox row says of it."""

    id: uuid.UUID
    type: str
    subject: str
    hub: str
    topic: str


async def stage(
    session: AsyncSession,
    data: EventData,
    *,
    cause: ContextAttributes | None = None,
    hub: str | None = None,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> Written:
    """Stage one event in the caller's transaction; it is published only if that transaction commits."""
    [written] = await stage_all(session, [Staged(data, cause, hub, correlation_id, causation_id)])
    return written


async def stage_all(session: AsyncSession, items: Iterable[Staged]) -> list[Written]:
    """Stage many events in one statement. An event caused by another inherits its hub and correlation.
    Each is written as `new_envelope(...).to_bytes()` would write it (`encode_event`), without the model."""
    box = _bound(session)
    written, rows = prepare(session, items)
    await db.insert_rows(session, box.table, rows)
    return written


def prepare(session: AsyncSession, items: Iterable[Staged]) -> tuple[list[Written], list[dict[str, Any]]]:
    """The outbox rows `stage_all` would write (their columns: `ROW_COLUMNS`), for a use case that writes
    them in a statement of its own along with its other rows, saving their round trips. They are staged
    only once that statement runs, in the session's transaction."""
    box = _bound(session)
    now = datetime.now(UTC)
    written: list[Written] = []
    rows: list[dict[str, Any]] = []
    for item in items:
        data, cause = item.data, item.cause
        hub = cause.hub if cause is not None else item.hub
        if hub is None:
            raise ValueError(f"{data.event_type}: staged without a cause must name its hub")
        event_id = new_event_id()
        correlation_id = item.correlation_id
        if correlation_id is None:
            correlation_id = cause.correlation_id if cause is not None else event_id
        subject, topic = data.subject, data.topic(hub)
        payload = encode_event(
            data,
            event_id=event_id,
            source=box.source,
            hub=hub,
            subject=subject,
            time=now,
            correlation_id=correlation_id,
            causation_id=cause.id if cause is not None else item.causation_id,
        )
        written.append(Written(event_id, data.event_type, subject, hub, topic))
        rows.append(
            {"event_id": event_id, "topic": topic, "key": subject, "event_type": data.event_type, "payload": payload}
        )
    return written, rows


ROW_COLUMNS = ("event_id", "topic", "key", "event_type", "payload")
"""The columns of a staged row (`prepare`); the rest are the table's defaults."""


class Record(NamedTuple):
    """A claimed row, its fields in the order the claim returns them."""

    id: int
    topic: str
    key: str
    event_type: str
    payload: bytes
    attempts: int = 0


Publish = Callable[[Sequence[Record]], Awaitable[list[BaseException | None]]]
"""Publishes records and returns, in their order, None for each the broker acknowledged and the error
for each it did not."""

Reachable = Callable[[], Awaitable[bool]]
"""Whether the broker answers at all: tells a broker outage from a failure of particular rows."""


class BrokerUnavailable(Exception):
    """No row of a round was acknowledged and the broker does not answer: nothing is held against the rows."""


@dataclass(frozen=True, slots=True)
class Parked:
    id: int
    event_id: uuid.UUID
    event_type: str
    topic: str
    key: str
    attempts: int
    last_error: str | None
    created_at: datetime
    parked_at: datetime


def _claim_statement(table: Table) -> str:
    name = f"{table.schema}.{table.name}"
    # Due rows in id order, locked with SKIP LOCKED so that relays (lanes, replicas) share the work. A
    # row is taken only when it is its key's head: the earliest row of the key still unpublished, so
    # each consultation's events reach Kafka in the order written, and a failing row holds back only
    # its own key. Earlier unpublished rows the batch did not take are "held": in backoff, or claimed by
    # another relay whose transaction is still open. One range scan up to the batch's last id finds
    # them, and one sort over batch and held rows ranks each key's rows: a key's head is its first row,
    # taken when it is the batch's own. Sorting, not joining, keeps the cost near-linear in batch plus
    # held rows whatever the planner believes of a table that grew from empty seconds ago (a nested
    # loop over the held rows cost a quarter of a second per round with four lanes in flight). The heads
    # are marked published in the same statement; rows the broker does not acknowledge are marked back
    # before the transaction commits, and a crash rolls the mark back with everything else.
    return f"""
        WITH batch AS MATERIALIZED (
            SELECT id, key FROM {name}
            WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at <= now()
            ORDER BY id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ), held AS (
            SELECT p.id, p.key FROM {name} p
            WHERE p.published_at IS NULL AND p.parked_at IS NULL
              AND p.id < (SELECT max(id) FROM batch)
              AND p.id NOT IN (SELECT id FROM batch)
        ), ranked AS (
            SELECT id, mine, row_number() OVER (PARTITION BY key ORDER BY id) AS place
            FROM (SELECT id, key, true AS mine FROM batch UNION ALL SELECT id, key, false FROM held) AS rows
        )
        UPDATE {name} o SET published_at = now()
        FROM ranked r
        WHERE o.id = r.id AND r.mine AND r.place = 1
        RETURNING o.id, o.topic, o.key, o.event_type, o.payload, o.attempts
    """


ORDERED_SCANS = text("SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)")
"""For the claim's transaction only: walk the due index in id order and stop at the batch's end. With
the statistics of a table that grew from empty in seconds, the planner otherwise reads and sorts every
due row to take the first few hundred, once per round: quadratic in a backlog."""


def _failed_statement(table: Table) -> str:
    name = f"{table.schema}.{table.name}"
    return f"""
        UPDATE {name} o SET
            published_at = NULL,
            attempts = o.attempts + 1,
            last_error = f.error,
            next_attempt_at = now() + make_interval(secs => f.delay),
            parked_at = CASE WHEN o.attempts + 1 >= :max_attempts THEN now() END
        FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[]), CAST(:delays AS float8[])) AS f(id, error, delay)
        WHERE o.id = f.id
        RETURNING o.id, o.parked_at IS NOT NULL AS parked
    """


class Relay:
    """Moves committed outbox rows to Kafka. Several replicas may run it at once."""

    def __init__(
        self,
        *,
        table: Table,
        sessions: async_sessionmaker[AsyncSession],
        publish: Publish,
        reachable: Reachable,
        metrics: ServiceMetrics,
        batch_size: int,
        max_attempts: int,
        retry_backoff: Backoff,
        lanes: int = 1,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._table = table
        self._sessions = sessions
        self._publish = publish
        self._reachable = reachable
        self._metrics = metrics
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._retry_backoff = retry_backoff
        self._lanes = lanes
        self._retention = retention
        self._claim = text(_claim_statement(table))
        self._failed = text(_failed_statement(table))
        self._rounds = 0
        self._backlog = False

    async def relay_once(self) -> int:
        """One round: claim (marked sent), send, and mark back each row the broker refused, in one transaction.
        Returns how many rows were claimed."""
        async with self._sessions.begin() as session:
            await session.execute(ORDERED_SCANS)
            rows = (await session.execute(self._claim, {"limit": self._batch_size})).all()
            if not rows:
                return 0
            records = [Record(*row) for row in rows]  # by position: a row's attribute lookups cost 4x as much
            outcomes = await self._publish(records)
            sent = [record.id for record, error in zip(records, outcomes, strict=True) if error is None]
            failed = [(record, error) for record, error in zip(records, outcomes, strict=True) if error is not None]
            if failed and not sent and not await self._reachable():
                # An outage is not the rows' fault: roll back (attempts untouched) and let the loop back off.
                raise BrokerUnavailable(f"{len(failed)} rows not acknowledged and the broker does not answer")
            parked = await self._record_failures(session, failed) if failed else 0
        self._metrics.outbox_published.inc(len(sent))
        if failed:
            self._metrics.outbox_failures.inc(len(failed))
            self._metrics.outbox_parked.inc(parked)
        return len(records)

    async def _record_failures(self, session: AsyncSession, failed: Sequence[tuple[Record, BaseException]]) -> int:
        base_s, cap_s = self._retry_backoff.base_s, self._retry_backoff.cap_s
        delays = [jittered_delay(record.attempts, base_s, cap_s) for record, _ in failed]
        result = await session.execute(
            self._failed,
            {
                "ids": [record.id for record, _ in failed],
                "errors": [f"{errors.describe(error)}: {error}"[:1000] for _, error in failed],
                "delays": delays,
                "max_attempts": self._max_attempts,
            },
        )
        outcome = {row.id: row.parked for row in result}
        for record, error in failed:
            if outcome.get(record.id):
                log.error(
                    "outbox row %d (%s, key %s, topic %s) parked after %d attempts: %s",
                    record.id,
                    record.event_type,
                    record.key,
                    record.topic,
                    record.attempts + 1,
                    errors.describe(error),
                )
            else:
                log.warning("outbox row %d to %s failed: %s", record.id, record.topic, errors.describe(error))
        return sum(outcome.values())

    async def purge(self) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(self._table).where(self._table.c.published_at < func.now() - self._retention))

    async def work(self) -> bool:
        """One unit for `poll.poll`: one round, or `lanes` rounds side by side while the last unit met a
        backlog (one's database work overlaps another's sends; SKIP LOCKED gives them disjoint rows and
        the key-head rule keeps each key's order), and now and then a purge of old published rows. A
        trickle of rows thus costs one transaction per wake, not `lanes`. True when there is more to
        do at once."""
        lanes = self._lanes if self._backlog else 1
        claimed = await asyncio.gather(*(self.relay_once() for _ in range(lanes)))
        self._backlog = max(claimed) >= self._batch_size
        self._rounds += 1
        if self._rounds % 3000 == 0:
            await self.purge()
        return self._backlog


async def list_parked(session: AsyncSession, table: Table, *, limit: int = 100) -> list[Parked]:
    rows = await session.execute(
        select(
            table.c.id,
            table.c.event_id,
            table.c.event_type,
            table.c.topic,
            table.c.key,
            table.c.attempts,
            table.c.last_error,
            table.c.created_at,
            table.c.parked_at,
        )
        .where(table.c.parked_at.is_not(None), table.c.published_at.is_(None))
        .order_by(table.c.id)
        .limit(limit)
    )
    return [Parked(**row._mapping) for row in rows]


async def requeue(session: AsyncSession, table: Table, ids: Sequence[int]) -> int:
    """Give parked rows a fresh start (after the cause is fixed, e.g. the topic created)."""
    result = await session.execute(
        update(table)
        .where(table.c.id.in_(ids), table.c.parked_at.is_not(None), table.c.published_at.is_(None))
        .values(parked_at=None, attempts=0, next_attempt_at=func.now())
        .returning(table.c.id)
    )
    return len(result.all())
