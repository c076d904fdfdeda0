"""Reading the log into a schema of reporting's tables: the careful way, through the live consumer's routes
(its SQL, in batches, one event at a time where a batch fails), or the fast way from an empty schema (`Bulk`:
folded in memory, written with COPY), in this process or in worker processes that each take some of the
partitions (a consultation's events all lie in one partition: keyed by its id).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.reporting import SERVICE, domain, handlers, tables
from shared import db, errors, inbox, kafka
from shared.consumer import UNREADABLE, Route, plan, read
from shared.contract import ContextAttributes, Event
from shared.errors import describe
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

LIVE = SERVICE.schema
BATCH = 5000
LANES = 4

CONSUMER = "hubnet.reporting"
"""The inbox's consumer name for reporting's events (the live consumer's)."""
COPY_ROWS = 50_000
"""The timeline and inbox rows the bulk load writes per COPY (one COPY in flight while the next are folded)."""
BULK_TABLES = ("consultations", "timeline", "inbox")
"""Written by COPY from the beginning of the log, without their keys or indexes until the end."""


_AS_WRITTEN = frozenset(
    [column.name for column in tables.ConsultationView.__table__.columns if isinstance(column.type, JSONB)] + ["search"]
)
"""The views' columns the fold keeps as COPY writes them."""


class Bulk:
    """The replay's fast way from an empty shadow: every event folded in memory by the live consumer's own
    fold (`handlers.fold` of each event type's `Change`), its timeline entry and inbox claim written with COPY
    in chunks as the replay goes, and each consultation's view, folded to its end, written with COPY once.
    The same rows the live upserts leave: a view is the columns its events set, in their order.

    What the live consumer would have passed over alone (a change that fails on its event) is passed over;
    a row PostgreSQL refuses fails the COPY, and the rebuild then starts again the careful way (the live
    consumer's SQL, one event at a time where a batch fails)."""

    def __init__(self, connection: Any, schema: str) -> None:
        self._connection = connection
        self._schema = schema
        self._changes: Mapping[str, Callable[[Any], handlers.Change]] = {
            projection.model.event_type: projection.change for projection in handlers.PROJECTIONS
        }
        self._views: dict[uuid.UUID, dict[str, Any]] = {}
        self._statuses: dict[uuid.UUID, domain.Status] = {}
        self._seen: set[int] = set()  # event ids as integers (hashed in C, not by `UUID.__hash__`)
        self._timeline: list[tuple[Any, ...]] = []
        self._inbox: list[tuple[Any, ...]] = []
        self._copying: asyncio.Task[None] | None = None
        self.applied = 0
        self.failed = 0

    @staticmethod
    async def prepare(connection: Any) -> None:
        """The connection writes `tsvector` in its binary form (`domain.SearchDocument.binary`)."""
        await connection.set_type_codec("tsvector", schema="pg_catalog", encoder=bytes, decoder=bytes, format="binary")

    def fold(self, events: Sequence[Event[Any]]) -> None:
        for event in events:
            envelope: ContextAttributes = event.envelope
            if envelope.id.int in self._seen:  # the live inbox finds it claimed
                continue
            try:  # all that can fail, before anything changes: the live consumer rolls such an event back
                change = self._changes[envelope.type](event.data)
                entry = (
                    envelope.id,
                    uuid.UUID(envelope.subject),
                    envelope.hub,
                    envelope.type,
                    envelope.source,
                    envelope.time,
                    envelope.correlation_id,
                    change.actor,
                    db.json_text(change.detail) if change.detail is not None else None,
                )
            except Exception as error:  # and dead-letters it
                self.failed += 1
                log.error("event %s passed over: %s", envelope.id, describe(error))
                continue
            self._seen.add(envelope.id.int)
            handlers.fold(self._views, self._statuses, envelope, event.data.consultation_id, change)
            # Held as COPY writes them (the search document in bytes, JSON as text): a fraction of the memory
            # of their objects, for a fold that holds every view until the end.
            view = self._views[event.data.consultation_id]
            for name in _AS_WRITTEN.intersection(change.values):
                value = view[name]
                if isinstance(value, domain.SearchDocument):
                    view[name] = value.binary()
                elif value is not None:
                    view[name] = db.json_text(value)
            self._timeline.append(entry)
            self._inbox.append((CONSUMER, envelope.id, envelope.type))
        self.applied = len(self._seen)

    async def flush(self, *, everything: bool = False) -> None:
        """Start copying the timeline and inbox rows folded so far, once there are enough (or `everything`),
        after the COPY before has finished."""
        if len(self._timeline) < COPY_ROWS and not everything:
            return
        await self.copied()
        timeline, self._timeline = self._timeline, []
        claims, self._inbox = self._inbox, []
        self._copying = asyncio.create_task(self._copy_log(timeline, claims))

    async def copied(self) -> None:
        if self._copying is not None:
            copying, self._copying = self._copying, None
            await copying

    async def _copy_log(self, timeline: list[tuple[Any, ...]], claims: list[tuple[Any, ...]]) -> None:
        await self._copy(tables.TimelineEntry.__table__, timeline)
        await self._copy(tables.inbox_table, claims, columns=("consumer", "event_id", "event_type"))

    async def finish_log(self) -> None:
        """The rest of the timeline and inbox rows."""
        await self.flush(everything=True)
        await self.copied()

    async def write_views(self) -> None:
        """Every view, folded to the end of the log, in one COPY; the fold's memory is then let go."""
        table = tables.ConsultationView.__table__
        columns = [column.name for column in table.columns]
        rows = [tuple(view.get(name) for name in columns) for view in self._views.values()]
        self.release()
        await self._copy(table, rows, columns=tuple(columns))

    def release(self) -> None:
        """Drop what the fold holds (freed by reference counts, before the collector runs again)."""
        self._views, self._statuses, self._seen = {}, {}, set()
        self._timeline, self._inbox = [], []

    async def _copy(self, table: Any, rows: list[tuple[Any, ...]], *, columns: Sequence[str] = ()) -> None:
        if rows:
            await self._connection.copy_records_to_table(
                table.name,
                schema_name=self._schema,
                records=rows,
                columns=list(columns or (column.name for column in table.columns)),
            )

    async def close(self) -> None:
        if self._copying is not None and not self._copying.done():
            self._copying.cancel()
            with contextlib.suppress(BaseException):
                await self._copying


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

    async def start(self, positions: Mapping[TopicPartition, int] | None = None) -> dict[TopicPartition, int]:
        """Assign every partition of the hub topics from its beginning (or those of `positions`, from there);
        returns how many records each holds from there."""
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=BATCH,
            **kafka.client_options(self._settings, client_id="hubnet-reporting-rebuild"),
        )
        await consumer.start()
        self._consumer = consumer
        partitions = sorted(positions) if positions is not None else await self._partitions()
        consumer.assign(partitions)
        if not partitions:
            return {}
        starts = dict(positions) if positions is not None else await consumer.beginning_offsets(partitions)
        self.seek(starts)
        ends = await consumer.end_offsets(partitions)
        return {tp: ends[tp] - starts[tp] for tp in partitions}

    def position(self, tp: TopicPartition) -> int:
        return self._next[tp]

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        """Go on from these positions (e.g. where workers stopped)."""
        assert self._consumer is not None
        for tp, offset in positions.items():
            self._consumer.seek(tp, offset)
            self._next[tp] = offset

    async def rewind(self) -> None:
        """Back to the beginning of every partition, nothing applied."""
        assert self._consumer is not None
        self.seek(await self._consumer.beginning_offsets(list(self._next)))
        self.applied = self.skipped = self.failed = 0

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

    async def until(
        self, ends: dict[TopicPartition, int], advanced: Callable[[int], None], bulk: Bulk | None = None
    ) -> None:
        """Apply every record below `ends`: folded into `bulk`, or with the live consumer's SQL, where fetching
        and parsing the next batch overlaps the database work of the one before, which runs in `LANES`
        transactions side by side (a consultation's events all in one lane, in their order)."""
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
                if bulk is not None:
                    before = bulk.applied, bulk.failed
                    bulk.fold(events)
                    self.applied += bulk.applied - before[0]
                    self.failed += bulk.failed - before[1]
                    advanced(len(records))
                    await bulk.flush()
                    continue
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
            applied_before = await inbox.claim(
                session, tables.inbox_table, consumer=CONSUMER, events=[e.envelope for e in events]
            )
            fresh = [event for event in events if event.envelope.id not in applied_before]
            for layer in plan(fresh):
                for calls in layer:
                    await self._routes[calls[0].envelope.type].handler(session, calls)
        self.applied += len(events)


async def bulk_load(
    replay: Replay,
    engine: AsyncEngine,
    schema: str,
    ends: Mapping[TopicPartition, int],
    advanced: Callable[[int], None],
) -> None:
    """The records of `replay`'s partitions below `ends`, folded and copied into the bare schema
    (`Bulk`), views last. The collector is paused meanwhile: the fold holds every view, and nothing it makes is
    cyclic garbage; what it holds is let go by reference counts before the collector runs again."""
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        await Bulk.prepare(raw)
        bulk = Bulk(raw, schema)
        gc.disable()
        try:
            await replay.until(dict(ends), advanced, bulk)
            await bulk.finish_log()
            await bulk.write_views()
        finally:
            bulk.release()
            gc.enable()
            await bulk.close()
            await connection.invalidate()  # its tsvector codec is the bulk's own: never back to the pool


@dataclass(frozen=True)
class Part:
    """Some of the partitions, each from its first record to its end, for one worker."""

    ranges: tuple[tuple[str, int, int, int], ...]
    """(topic, partition, first offset, end offset)"""

    @property
    def starts(self) -> dict[TopicPartition, int]:
        return {TopicPartition(topic, partition): start for topic, partition, start, _ in self.ranges}

    @property
    def ends(self) -> dict[TopicPartition, int]:
        return {TopicPartition(topic, partition): end for topic, partition, _, end in self.ranges}


@dataclass(frozen=True)
class PartDone:
    applied: int
    skipped: int
    failed: int
    refused: str | None = None
    """Why the database refused the bulk load (the rebuild then goes the careful way)."""


def split(starts: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int], workers: int) -> list[Part]:
    """The partitions dealt to `workers` parts of about as many records each, the largest first."""
    loads = [0] * workers
    dealt: list[list[tuple[str, int, int, int]]] = [[] for _ in range(workers)]
    for tp in sorted(starts, key=lambda tp: starts[tp] - ends[tp]):
        least = loads.index(min(loads))
        loads[least] += ends[tp] - starts[tp]
        dealt[least].append((tp.topic, tp.partition, starts[tp], ends[tp]))
    return [Part(tuple(ranges)) for ranges in dealt if ranges]


_progress: Any = None
"""The worker process's share of the rebuild's progress counter (a `multiprocessing.Value`)."""


def start_worker(progress: Any) -> None:
    global _progress
    _progress = progress


def replay_part(settings: CommonSettings, schema: str, part: Part) -> PartDone:
    """A worker process's whole task: its partitions folded and copied into the bare shadow."""

    def advanced(count: int) -> None:
        with _progress.get_lock():
            _progress.value += count

    return uvloop.run(replay_part_here(settings, schema, part, advanced))


async def replay_part_here(
    settings: CommonSettings, schema: str, part: Part, advanced: Callable[[int], None]
) -> PartDone:
    """A part folded and copied into the bare shadow, in this process."""
    engine = db.create_engine(settings, application_name="hubnet-reporting-rebuild")
    replay = Replay(settings, engine, schema, handlers.ROUTES)
    try:
        await replay.start(part.starts)
        await bulk_load(replay, engine, schema, part.ends, advanced)
    except asyncpg.PostgresError as error:
        if not refused(error):
            raise
        return PartDone(replay.applied, replay.skipped, replay.failed, describe(error))
    finally:
        await replay.stop()
        await engine.dispose()
    return PartDone(replay.applied, replay.skipped, replay.failed)


REFUSED_CLASSES = ("22", "23")
"""SQLSTATE classes of a row the database refuses (data exception, integrity constraint violation): what the
live consumer would have passed over alone. Anything else (a lost connection, a shutdown, a full disk) is
not the log's doing: the rebuild stops and says so."""


def refused(error: BaseException) -> bool:
    code = getattr(error, "sqlstate", None) or errors.sqlstate(error)
    return isinstance(code, str) and code[:2] in REFUSED_CLASSES


def spawn_context() -> multiprocessing.context.SpawnContext:
    """Workers start afresh (no fork of a process running an event loop and threads)."""
    return multiprocessing.get_context("spawn")
