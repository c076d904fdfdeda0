"""Reading the log into a schema of reporting's tables: the careful way, through the live consumer's routes
(its SQL, in batches, one event at a time where a batch fails), or the fast way from an empty schema (`Bulk`:
folded in memory, written with COPY) a partition at a time, in this process and in worker processes that
each take the next partition not yet taken (a consultation's events all lie in one partition: keyed by its
id, so a partition read to its end leaves its consultations' views complete).
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
from pydantic_core import to_json
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
"""The timeline rows the bulk load writes per COPY (one COPY in flight while the next are folded)."""
FOLD_CHUNK = 256
"""Records parsed and folded at a time: each event is folded while its objects are still in the processor's
cache (a fetched batch parsed whole, then folded, took 15% longer)."""
FETCH_BYTES = 8 * 1024 * 1024
"""What the replay fetches of a partition per request: a partition read alone is read in few round trips."""
BULK_TABLES = ("consultations", "timeline", "inbox")
"""Written by COPY from the beginning of the log, without their keys or indexes until the end."""


_AS_WRITTEN = frozenset(
    [column.name for column in tables.ConsultationView.__table__.columns if isinstance(column.type, JSONB)] + ["search"]
)
"""The views' columns that COPY takes in another form than the live upserts (binary, or JSON bytes)."""
_JSONB_VERSION = b"\x01"
_VIEW_COLUMNS = tuple(column.name for column in tables.ConsultationView.__table__.columns)


class Bulk:
    """The replay's fast way from an empty shadow, a partition at a time: every event folded in memory by the
    live consumer's own fold (`handlers.fold` of each event type's `Change`), its timeline entry written with
    COPY in chunks as the replay goes, and each consultation's view, folded to the partition's end, written
    with COPY once while the next partition is folded. The same rows the live upserts leave: a view is the
    columns its events set, in their order. What the fold holds is one partition's views. (The inbox holds
    the timeline's events: `rebuild` fills it from the timeline in the database, once.)

    What the live consumer would have passed over alone (a change that fails on its event) is passed over;
    a row PostgreSQL refuses fails the COPY, and the rebuild then starts again the careful way (the live
    consumer's SQL, one event at a time where a batch fails)."""

    def __init__(self, connection: Any, schema: str) -> None:
        self._connection = connection
        self._schema = schema
        self._changes: Mapping[str, Callable[[Any], handlers.Change]] = {
            projection.model.event_type: projection.change for projection in handlers.PROJECTIONS
        }
        self._fold_afresh()
        self._timeline: list[tuple[Any, ...]] = []
        self._copying: asyncio.Task[None] | None = None
        self.applied = 0
        self.failed = 0

    def _fold_afresh(self) -> None:
        """What the fold holds of one partition, let go (freed by reference counts, the collector paused)."""
        self._views: dict[uuid.UUID, dict[str, Any]] = {}
        self._statuses: dict[uuid.UUID, domain.Status] = {}
        self._seen: set[int] = set()  # event ids as integers (hashed in C, not by `UUID.__hash__`)
        self._subjects: dict[str, uuid.UUID] = {}  # a consultation's events share their subject

    @staticmethod
    async def prepare(connection: Any) -> None:
        """The connection writes `tsvector` in its binary form (`domain.SearchDocument.binary`), and JSON as the
        bytes of its text (`pydantic_core.to_json`), behind the version byte of `jsonb`'s binary form."""
        await connection.set_type_codec("tsvector", schema="pg_catalog", encoder=bytes, decoder=bytes, format="binary")
        await connection.set_type_codec(
            "jsonb", schema="pg_catalog", encoder=_JSONB_VERSION.__add__, decoder=bytes, format="binary"
        )

    def fold(self, events: Sequence[Event[Any]]) -> None:
        seen = self._seen
        subjects = self._subjects
        before = len(seen)
        for event in events:
            envelope: ContextAttributes = event.envelope
            if envelope.id.int in seen:  # the live inbox finds it claimed
                continue
            try:  # all that can fail, before anything changes: the live consumer rolls such an event back
                change = self._changes[envelope.type](event.data)
                subject = subjects.get(envelope.subject)
                if subject is None:
                    subject = subjects[envelope.subject] = uuid.UUID(envelope.subject)
                entry = (
                    envelope.id,
                    subject,
                    envelope.hub,
                    envelope.type,
                    envelope.source,
                    envelope.time,
                    envelope.correlation_id,
                    change.actor,
                    to_json(change.detail) if change.detail is not None else None,
                )
            except Exception as error:  # and dead-letters it
                self.failed += 1
                log.error("event %s passed over: %s", envelope.id, describe(error))
                continue
            seen.add(envelope.id.int)
            handlers.fold(self._views, self._statuses, envelope, event.data.consultation_id, change)
            self._timeline.append(entry)
            if change.values and (written := _AS_WRITTEN.intersection(change.values)):
                # As COPY writes them, at once: the search document's lexemes and positions are let go while
                # they are still in the processor's cache, and a view holds a fraction of their memory.
                view = self._views[event.data.consultation_id]
                for name in written:
                    value = view[name]
                    if isinstance(value, domain.SearchDocument):
                        view[name] = value.binary()
                    elif value is not None:
                        view[name] = to_json(value)
        self.applied += len(seen) - before

    async def flush(self) -> None:
        """Start copying the timeline rows folded so far, once there are enough, after the COPY before has
        finished."""
        if len(self._timeline) >= COPY_ROWS:
            await self._start_copy([])

    async def end_partition(self) -> None:
        """The partition is read to its end: its views are complete. They are copied with the rest of its
        timeline while the next partition is folded; the fold starts afresh."""
        views = [tuple(map(view.get, _VIEW_COLUMNS)) for view in self._views.values()]
        self._fold_afresh()
        await self._start_copy(views)

    async def _start_copy(self, views: list[tuple[Any, ...]]) -> None:
        await self.copied()
        timeline, self._timeline = self._timeline, []
        self._copying = asyncio.create_task(self._copy_rows(timeline, views))

    async def copied(self) -> None:
        if self._copying is not None:
            copying, self._copying = self._copying, None
            await copying

    async def _copy_rows(self, timeline: list[tuple[Any, ...]], views: list[tuple[Any, ...]]) -> None:
        await self._copy(tables.TimelineEntry.__table__, timeline)
        await self._copy(tables.ConsultationView.__table__, views, columns=_VIEW_COLUMNS)

    def release(self) -> None:
        """Drop what the fold holds, and the timeline rows not yet copied."""
        self._fold_afresh()
        self._timeline = []

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

    async def start(self) -> dict[TopicPartition, int]:
        """Assign every partition of the hub topics from its beginning; returns how many records each holds."""
        consumer = await self._started()
        partitions = await self._partitions()
        consumer.assign(partitions)
        if not partitions:
            return {}
        starts = await consumer.beginning_offsets(partitions)
        self.seek(starts)
        ends = await consumer.end_offsets(partitions)
        return {tp: ends[tp] - starts[tp] for tp in partitions}

    async def read_from(self, tp: TopicPartition, offset: int) -> None:
        """Read this one partition, from `offset`."""
        consumer = await self._started()
        consumer.assign([tp])
        self._next = {}
        self.seek({tp: offset})

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=BATCH,
                max_partition_fetch_bytes=FETCH_BYTES,
                **kafka.client_options(self._settings, client_id="hubnet-reporting-rebuild"),
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

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
                records: list[Any] = []
                for tp, batch in fetched.items():
                    end = ends[tp]
                    kept = batch if not batch or batch[-1].offset < end else [r for r in batch if r.offset < end]
                    records += kept
                    if kept:
                        self._next[tp] = max(self._next[tp], kept[-1].offset + 1)
                    if batch and batch[-1].offset + 1 > end:
                        consumer.seek(tp, end)
                for tp in list(waiting):
                    if self._next[tp] >= ends[tp]:
                        waiting.discard(tp)
                if bulk is not None:
                    before = bulk.applied, bulk.failed
                    for start in range(0, len(records), FOLD_CHUNK):
                        bulk.fold(self._parse(records[start : start + FOLD_CHUNK]))
                    self.applied += bulk.applied - before[0]
                    self.failed += bulk.failed - before[1]
                    advanced(len(records))
                    await bulk.flush()
                    continue
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
        """The partition's records handed over one at a time from one fetch (a seek would fetch again, up to
        `FETCH_BYTES` a record), up to the unreadable one, which is passed over; at most a batch of them."""
        consumer = self._consumer
        assert consumer is not None
        records: list[Any] = []
        offset = self._next[tp]
        consumer.seek(tp, offset)
        while len(records) < BATCH:
            try:
                got = (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, [])
            except UNREADABLE:
                self.skipped += 1
                self._next[tp] = offset + 1
                consumer.seek(tp, offset + 1)
                break
            if not got:
                break
            records += got
            offset = got[-1].offset + 1
        return records

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


@dataclass(frozen=True)
class Partition:
    """A partition to replay, from its first record to its end."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def size(self) -> int:
        return self.end - self.start


def queue(starts: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]) -> list[Partition]:
    """The partitions with records to replay, the largest first: taken in this order by whichever worker is
    free, the last ones taken are the smallest, and the workers finish together."""
    partitions = [Partition(tp.topic, tp.partition, starts[tp], ends[tp]) for tp in starts if ends[tp] > starts[tp]]
    return sorted(partitions, key=lambda p: (-p.size, p.topic, p.partition))


@dataclass(frozen=True)
class WorkerDone:
    """What one worker replayed."""

    applied: int
    skipped: int
    failed: int
    refused: str | None = None
    """Why the database refused the bulk load (the rebuild then goes the careful way)."""


class Taken:
    """The queue's next partition, shared by the processes replaying it (a `multiprocessing.Value`)."""

    def __init__(self, counter: Any) -> None:
        self._counter = counter

    def next(self, partitions: Sequence[Partition]) -> Partition | None:
        with self._counter.get_lock():
            index: int = self._counter.value
            if index >= len(partitions):
                return None
            self._counter.value = index + 1
        return partitions[index]


async def replay_partitions(
    settings: CommonSettings,
    schema: str,
    partitions: Sequence[Partition],
    taken: Taken,
    advanced: Callable[[int], None],
) -> WorkerDone:
    """Partitions of the queue, each taken when this process is free, folded and copied into the bare shadow
    (`Bulk`). The collector is paused meanwhile: nothing the fold makes is cyclic garbage, and what it held
    of a partition is let go by reference counts."""
    engine = db.create_engine(settings, application_name="hubnet-reporting-rebuild")
    replay = Replay(settings, engine, schema, handlers.ROUTES)
    gc.disable()
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            await Bulk.prepare(raw)
            bulk = Bulk(raw, schema)
            try:
                while (partition := taken.next(partitions)) is not None:
                    await replay.read_from(partition.tp, partition.start)
                    await replay.until({partition.tp: partition.end}, advanced, bulk)
                    await bulk.end_partition()
                await bulk.copied()
            finally:
                bulk.release()
                await bulk.close()
                await connection.invalidate()  # its tsvector codec is the bulk's own: never back to the pool
    except asyncpg.PostgresError as error:
        if not refused(error):
            raise
        return WorkerDone(replay.applied, replay.skipped, replay.failed, describe(error))
    finally:
        gc.enable()
        await replay.stop()
        await engine.dispose()
    return WorkerDone(replay.applied, replay.skipped, replay.failed)


_progress: Any = None
"""The worker process's share of the rebuild's progress counter (a `multiprocessing.Value`)."""
_taken: Taken | None = None


def start_worker(progress: Any, taken: Any) -> None:
    global _progress, _taken
    _progress, _taken = progress, Taken(taken)


def replay_in_worker(settings: CommonSettings, schema: str, partitions: Sequence[Partition]) -> WorkerDone:
    """A worker process's whole task: partitions of the queue folded and copied into the bare shadow."""
    assert _taken is not None

    def advanced(count: int) -> None:
        with _progress.get_lock():
            _progress.value += count

    return uvloop.run(replay_partitions(settings, schema, partitions, _taken, advanced))


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
