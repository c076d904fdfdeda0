"""Rebuild reporting's read models from the log without downtime.

`python -m services.reporting rebuild` (or `hubnet reporting rebuild` on the local stack):

1. A shadow schema gets reporting's tables, empty.
2. Every hub topic is replayed from its beginning into the shadow, through the very handlers the live
   consumer runs (the same SQL, written to the shadow by SQLAlchemy's schema translation), in large
   batches, while the live views keep serving and the live consumer keeps applying. A progress bar shows
   events/s and the time left.
3. The swap: the live tables are locked (readers wait, briefly), the shadow catches up to the end of
   every topic as it stands under the lock, members' saved views and the migration stamp are copied, and
   the two schemas trade names in the same transaction. Every event the live consumer had applied lies
   below those ends, so the shadow holds it, in its inbox too: when the live consumer goes on, what it
   had not yet applied is applied once, and what it had is a duplicate. Statements the services prepared
   resolve the names again at their next use (PostgreSQL revalidates cached plans), so nothing restarts.
4. The old schema is dropped, or kept with `--keep-old`.

`rebuild --check` builds the shadow and compares it with the live views (row counts and a checksum of
every row of the consultations and the timeline), then drops it: equal when the live consumer has caught
up with the same log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Index, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.reporting import SERVICE, tables
from shared import db, inbox, kafka
from shared.consumer import UNREADABLE, Route, plan, read
from shared.contract import Event
from shared.errors import describe
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

LIVE = SERVICE.schema
CHECKED_TABLES = ("consultations", "timeline")
"""What the log alone decides; saved views are members' preferences, the inbox records when, not what."""
BATCH = 5000
LOCK_ORDER = ("saved_views", "inbox", "consultations", "timeline")
"""The swap locks the live tables in the order the services take them (the console's list reads saved views,
then consultations; the consumer claims its inbox, then writes views, then the timeline; a record is read
view, then timeline), so a reader or the consumer waits for the swap rather than deadlocking with it."""
LANES = 4


@dataclass(frozen=True)
class Checksum:
    rows: int
    digest: str


@dataclass(frozen=True)
class Outcome:
    shadow: str
    events: int
    seconds: float
    live: dict[str, Checksum]
    rebuilt: dict[str, Checksum]
    swapped: bool

    @property
    def equal(self) -> bool:
        return self.live == self.rebuilt

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def shadow_name() -> str:
    return f"{LIVE}_rebuild_{datetime.now(UTC):%Y%m%d%H%M%S}"


class Replay:
    """The hub topics read from their beginning, applied into one schema with the live consumer's routes."""

    def __init__(
        self, settings: CommonSettings, engine: AsyncEngine, schema: str, routes: Sequence[Route[Any]]
    ) -> None:
        self._settings = settings
        self._schema = schema
        self._sessions: async_sessionmaker[AsyncSession] = db.create_sessions(
            engine.execution_options(schema_translate_map={LIVE: schema})
        )
        self._routes = {route.model.event_type: route for route in routes}
        self._consumer: AIOKafkaConsumer | None = None
        self._next: dict[TopicPartition, int] = {}
        self.applied = 0
        self.skipped = 0
        self.failed = 0

    async def start(self) -> dict[TopicPartition, int]:
        """Assign every partition of the hub topics from its beginning; returns how many records each holds."""
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=BATCH,
            **kafka.client_options(self._settings, client_id="hubnet-reporting-rebuild"),
        )
        await consumer.start()
        self._consumer = consumer
        partitions = await self._partitions()
        consumer.assign(partitions)
        if not partitions:
            return {}
        beginnings = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, beginnings[tp])
        self._next = dict(beginnings)
        ends = await consumer.end_offsets(partitions)
        return {tp: ends[tp] - beginnings[tp] for tp in partitions}

    async def _partitions(self) -> list[TopicPartition]:
        """Every partition of the topics the live consumer's pattern matches."""
        admin = AIOKafkaAdminClient(**kafka.client_options(self._settings, client_id="hubnet-reporting-rebuild"))
        await admin.start()
        try:
            pattern = re.compile(self._settings.consultation_topic_pattern)
            topics = sorted(topic for topic in await admin.list_topics() if pattern.fullmatch(topic))
            described = await admin.describe_topics(topics) if topics else []
        finally:
            await admin.close()
        return sorted(
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            for partition in topic["partitions"]
        )

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def ends(self) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        assignment = sorted(self._consumer.assignment())
        return dict(await self._consumer.end_offsets(assignment)) if assignment else {}

    async def until(self, ends: dict[TopicPartition, int], advanced: Callable[[int], None]) -> None:
        """Apply every record below `ends`. Fetching and parsing the next batch overlaps the database work
        of the one before, which runs in `LANES` transactions side by side (a consultation's events all in
        one lane, in their order)."""
        consumer = self._consumer
        assert consumer is not None
        waiting = {tp for tp, end in ends.items() if self._next[tp] < end}
        inflight: asyncio.Task[None] | None = None
        try:
            while waiting:
                try:
                    fetched = await consumer.getmany(*waiting, timeout_ms=1000, max_records=BATCH)
                except UNREADABLE:
                    fetched = await self._carefully(waiting)
                records = []
                for tp, batch in fetched.items():
                    end = ends[tp]
                    kept = [record for record in batch if record.offset < end]
                    records += kept
                    if kept:
                        self._next[tp] = max(self._next[tp], kept[-1].offset + 1)
                    if batch and batch[-1].offset + 1 > end:
                        consumer.seek(tp, end)
                for tp in list(waiting):
                    if self._next[tp] >= ends[tp]:
                        waiting.discard(tp)
                events = self._parse(records)
                if inflight is not None:
                    await inflight
                inflight = asyncio.create_task(self._apply(events, len(records), advanced))
            if inflight is not None:
                await inflight
        finally:
            if inflight is not None and not inflight.done():
                inflight.cancel()

    async def _carefully(self, waiting: Iterable[TopicPartition]) -> dict[TopicPartition, list[Any]]:
        """A fetch met a record aiokafka cannot read (the live consumer dead-lettered it by its position).
        Each partition is rewound to what was handed over (positions of partitions drained before the
        failure moved without handing anything over) and read alone; the one that fails is read a record
        at a time up to the unreadable record, which is passed over."""
        consumer = self._consumer
        assert consumer is not None
        fetched: dict[TopicPartition, list[Any]] = {}
        for tp in sorted(waiting):
            consumer.seek(tp, self._next[tp])
            try:
                fetched.update(await consumer.getmany(tp, timeout_ms=1000, max_records=BATCH))
            except UNREADABLE:
                fetched[tp] = await self._up_to_unreadable(tp)
        return fetched

    async def _up_to_unreadable(self, tp: TopicPartition) -> list[Any]:
        consumer = self._consumer
        assert consumer is not None
        records: list[Any] = []
        offset = self._next[tp]
        while True:
            consumer.seek(tp, offset)
            try:
                got = (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, [])
            except UNREADABLE:
                self.skipped += 1
                self._next[tp] = offset + 1
                consumer.seek(tp, offset + 1)
                return records
            if not got:
                return records
            records += got
            offset = got[-1].offset + 1

    def _parse(self, records: Iterable[Any]) -> list[Event[Any]]:
        """Records read as the live consumer reads them (`shared.consumer.read`); what it ignored or
        dead-lettered is passed over here."""
        events = []
        for record in records:
            reading = read(record, self._routes)
            if reading.event is not None:
                events.append(reading.event)
            elif reading.rejected is not None:
                self.skipped += 1
        return events

    async def _apply(self, events: Sequence[Event[Any]], records: int, advanced: Callable[[int], None]) -> None:
        unique = list({event.envelope.id: event for event in events}.values())
        lanes: list[list[Event[Any]]] = [[] for _ in range(LANES)]
        for event in unique:
            lanes[hash(event.envelope.subject) % LANES].append(event)
        await asyncio.gather(*(self._apply_lane(lane) for lane in lanes if lane))
        advanced(records)

    async def _apply_lane(self, events: Sequence[Event[Any]]) -> None:
        try:
            await self._transaction(events)
        except Exception as error:  # as the live consumer does: one by one, and what fails alone is passed over
            log.warning("a batch of %d events failed (%s); applying them one by one", len(events), describe(error))
            for event in events:
                try:
                    await self._transaction([event])
                except Exception as single:  # the live consumer dead-lettered it
                    self.failed += 1
                    log.error("event %s passed over: %s", event.envelope.id, describe(single))

    async def _transaction(self, events: Sequence[Event[Any]]) -> None:
        async with self._sessions.begin() as session:
            claimed = await inbox.claim(
                session, tables.inbox_table, consumer="hubnet.reporting", events=[e.envelope for e in events]
            )
            fresh = [event for event in events if event.envelope.id in claimed]
            for layer in plan(fresh):
                for calls in layer:
                    await self._routes[calls[0].envelope.type].handler(session, calls)
        self.applied += len(events)


def _deferred_indexes() -> list[Index]:
    """Indexes the replay does not need (only the keys its upserts conflict on): built once at the end,
    as a bulk load does, rather than updated row by row (the search index above all)."""
    return [index for table in tables.metadata.sorted_tables for index in table.indexes if not index.unique]


async def create_shadow(engine: AsyncEngine, schema: str) -> None:
    deferred = {str(index.name) for index in _deferred_indexes()}
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        translated = await connection.execution_options(schema_translate_map={LIVE: schema})
        await translated.run_sync(tables.metadata.create_all)
        for name in sorted(deferred):
            await connection.execute(text(f'DROP INDEX "{schema}"."{name}"'))


async def create_deferred_indexes(engine: AsyncEngine, schema: str) -> None:
    async with engine.begin() as connection:
        translated = await connection.execution_options(schema_translate_map={LIVE: schema})
        for index in _deferred_indexes():
            await translated.run_sync(index.create)


async def checksums(engine: AsyncEngine, schema: str) -> dict[str, Checksum]:
    """Row count and an order-independent digest of every row's text, per table the log alone decides."""
    found = {}
    async with engine.connect() as connection:
        for table in CHECKED_TABLES:
            rows, digest = (
                await connection.execute(
                    text(
                        "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0) "
                        f'FROM "{schema}"."{table}" t'
                    )
                )
            ).one()
            found[table] = Checksum(int(rows), str(digest))
    return found


async def swap(engine: AsyncEngine, replay: Replay, schema: str, advanced: Callable[[int], None]) -> str:
    """Under an exclusive lock on the live tables: catch the shadow up with the log, copy what the log does
    not decide, and trade the schemas' names. Returns the old schema's new name."""
    old = f"{schema}_old"
    assert set(LOCK_ORDER) == {table.name for table in tables.metadata.sorted_tables}, "every table, once"
    live_tables = ", ".join(f'"{LIVE}"."{name}"' for name in LOCK_ORDER)
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL lock_timeout = '30s'"))
        await connection.execute(text(f"LOCK TABLE {live_tables} IN ACCESS EXCLUSIVE MODE"))
        await replay.until(await replay.ends(), advanced)
        await connection.execute(text(f'INSERT INTO "{schema}".saved_views SELECT * FROM "{LIVE}".saved_views'))
        await connection.execute(text(f'CREATE TABLE "{schema}".alembic_version AS TABLE "{LIVE}".alembic_version'))
        await connection.execute(text(f'ALTER SCHEMA "{LIVE}" RENAME TO "{old}"'))
        await connection.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{LIVE}"'))
    return old


async def drop_schema(engine: AsyncEngine, schema: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def rebuild(
    settings: CommonSettings,
    routes: Sequence[Route[Any]],
    *,
    check_only: bool = False,
    keep_old: bool = False,
    console: Console | None = None,
) -> Outcome:
    console = console or Console(stderr=True)
    engine = db.create_engine(settings, application_name="hubnet-reporting-rebuild")
    shadow = shadow_name()
    replay = Replay(settings, engine, shadow, routes)
    started = time.perf_counter()
    swapped = False
    try:
        await create_shadow(engine, shadow)
        sizes = await replay.start()
        total = sum(sizes.values())
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9,.0f} events/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"replaying into {shadow}", total=total, rate=0.0)

            def advanced(count: int) -> None:
                elapsed = time.perf_counter() - started
                progress.update(task, advance=count, rate=replay.applied / elapsed if elapsed else 0.0)

            await replay.until(await replay.ends(), advanced)
            progress.update(task, description="building the indexes")
            await create_deferred_indexes(engine, shadow)
            if check_only:
                live, rebuilt = await asyncio.gather(checksums(engine, LIVE), checksums(engine, shadow))
            else:
                progress.update(task, description="catching up under the lock, then swapping")
                old = await swap(engine, replay, shadow, advanced)
                swapped = True
                rebuilt = await checksums(engine, LIVE)
                live = await checksums(engine, old)
                if not keep_old:
                    await drop_schema(engine, old)
        return Outcome(shadow, replay.applied, time.perf_counter() - started, live, rebuilt, swapped)
    finally:
        await replay.stop()
        if not swapped:
            with contextlib.suppress(Exception):
                await drop_schema(engine, shadow)
        await engine.dispose()


def report(outcome: Outcome, console: Console) -> None:
    console.print(
        f"{'rebuilt and swapped' if outcome.swapped else 'rebuilt into a shadow (check only)'}: "
        f"{outcome.events:,} events in {outcome.seconds:.1f} s ({outcome.rate:,.0f} events/s)"
    )
    for table in CHECKED_TABLES:
        live, rebuilt = outcome.live[table], outcome.rebuilt[table]
        mark = "equal" if live == rebuilt else "DIFFERENT"
        console.print(f"  {table}: live {live.rows:,} rows {live.digest}")
        console.print(f"  {' ' * len(table)}  rebuilt {rebuilt.rows:,} rows {rebuilt.digest}: {mark}")
