"""The one consumer policy, decided here for every service: batches applied once, poison skipped, offsets after effects.

- A fetched batch is parsed; records that are not hubnet events, or whose payload fails its model, go
  to the group's dead-letter topic with the reason (error type and field locations, never values).
- The rest are applied in one transaction per lane (`consumer_lanes` lanes of whole partitions, side by
  side): the inbox claims every event id in one statement, and each
  route's handler receives all its events of the batch at once, so it can use set-based SQL. The batch
  is cut into layers so that a consultation's events still apply in their order (see `plan`).
- Up to three batches are in flight at once with no barrier between them: a lane starts as soon as the lanes
  before it on its partitions have committed, so a partition's batches apply in their order while the
  loop fetches and parses the next.
- A failure is classified (`shared.errors`): transient ones (connection, shutdown, serialization,
  deadlock, lock timeout, read-only) retry the batch with backoff and never dead-letter; a missing
  schema stalls with an alert until a deploy fixes it; anything else falls back to one event per
  transaction, where poison dead-letters at once and other errors after `consumer_max_attempts`.
- Offsets are committed only for records whose transaction committed (or whose dead letter was
  acknowledged), every `consumer_commit_interval_s` and when partitions are revoked. A crash between
  effect and commit means redelivery, which the inbox turns into a no-op.
- A record aiokafka cannot read (a corrupt batch, an unknown codec, a header name that is not UTF-8) is
  recorded on the dead-letter topic by its position and skipped; a failing dead-letter publish is
  retried with backoff. Nothing loops hot.
- Liveness: `healthy()` turns false when records have waited longer than `consumer_stall_timeout_s`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Generic, NamedTuple, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CorruptRecordException, KafkaError, UnsupportedCodecError
from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import errors, inbox, kafka
from shared.contract import ContextAttributes, Envelope, Event, EventData, Received
from shared.contract.topics import dead_letter
from shared.observability import ServiceMetrics, correlation_id
from shared.poll import Backoff, until_done
from shared.service import Service
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

D = TypeVar("D", bound=EventData)
Record: TypeAlias = "ConsumerRecord[bytes | None, bytes | None]"
# What aiokafka raises for a record it cannot decode: a corrupt batch, an unknown codec, or a header
# name that is not UTF-8 (the protocol's strings are; the broker does not check, aiokafka's decoder does).
UNREADABLE = (CorruptRecordException, UnsupportedCodecError, UnicodeDecodeError)
BATCHES_IN_FLIGHT = 3
"""Batches applied at once: a batch's lanes start as the lanes before them on their partitions end. Matching's
consumer moved 8% more events a second with three than with two (four: no clearly more, and a rebalance
waits for every batch in flight)."""
CAREFUL_WAIT_MS = 1000
"""How long careful mode waits for a partition's next record when its high watermark says there is one."""


@dataclass(frozen=True)
class Route(Generic[D]):
    """Events of one type, and the use case that applies a batch of them."""

    model: type[D]
    handler: Callable[[AsyncSession, Sequence[Event[D]]], Awaitable[None]]

    @functools.cached_property
    def received(self) -> type[Received[D]]:
        """The envelope with this route's payload model: a record whose type header names the route is
        validated in one pass."""
        return Received[self.model]  # type: ignore[name-defined]


def on(model: type[D], handler: Callable[[AsyncSession, Sequence[Event[D]]], Awaitable[None]]) -> Route[D]:
    """`on(ConsultationSubmitted, handlers.propose_matches)`: mypy refuses a handler of another event type."""
    return Route(model, handler)


def plan(events: Sequence[Event[Any]]) -> list[list[list[Event[Any]]]]:
    """Cut a batch into layers of calls, one call per event type in each layer, so that every
    consultation's events are applied in their order: an event goes in the layer of its subject's
    previous event when both have the same type, else in the next layer. Events of different
    subjects never wait for each other, so a backlog of submitted → proposed → sent applies in
    three calls whatever its size."""
    last: dict[str, tuple[int, str]] = {}
    layers: list[dict[str, list[Event[Any]]]] = []
    for event in events:
        subject, event_type = event.envelope.subject, event.envelope.type
        previous = last.get(subject)
        layer = 0 if previous is None else previous[0] + (previous[1] != event_type)
        last[subject] = (layer, event_type)
        if layer == len(layers):
            layers.append({})
        layers[layer].setdefault(event_type, []).append(event)
    return [list(calls.values()) for calls in layers]


class Parsed(NamedTuple):
    record: Record
    event: Event[Any]


def lanes(parsed: Sequence[Parsed], count: int) -> list[list[Parsed]]:
    """Split a batch into at most `count` lanes applied side by side, each in its own transaction, so
    that one lane's database work overlaps another's Python work. A partition stays whole in one lane,
    so every consultation's events (one key, one partition) keep their order; lanes touch disjoint
    consultations, so their transactions do not wait for each other."""
    by_partition: dict[tuple[str, int], list[Parsed]] = {}
    for item in parsed:
        by_partition.setdefault((item.record.topic, item.record.partition), []).append(item)
    result: list[list[Parsed]] = [[] for _ in range(max(1, min(count, len(by_partition))))]
    for items in sorted(by_partition.values(), key=len, reverse=True):
        min(result, key=len).extend(items)  # largest first into the lightest lane: balanced lanes
    return result


class Reading(NamedTuple):
    """What a record is to a consumer: an event of one of its routes, a type it does not handle (ignored),
    or something to dead-letter (rejected: the reason, and the type as far as it is known)."""

    event: Event[Any] | None = None
    ignored: str | None = None
    rejected: tuple[str, str] | None = None


def read(record: Record, routes: Mapping[str, Route[Any]]) -> Reading:
    """Parse a record for the routes (event type → route): in one pass when its type header names a route
    and tells the truth; otherwise the envelope, then its payload, each saying what is wrong. Pure: the
    live consumer and reporting's rebuild read the log alike."""
    if (declared := _declared_type(record)) is not None:
        if (declared_route := routes.get(declared)) is None:
            # A hubnet event of a type this service does not handle (often its own): skipped unparsed.
            return Reading(ignored=declared)
        try:
            received = declared_route.received.model_validate_json(record.value or b"")
        except ValidationError:
            pass  # the two steps below then say what is wrong
        else:
            if received.type == declared:
                return Reading(Event(received, received.data))  # positional: the common case, kept cheap
    try:
        envelope = Envelope.model_validate_json(record.value or b"")
    except ValidationError as error:
        return Reading(rejected=(f"not a hubnet envelope: {errors.describe(error)}", "unknown"))
    route = routes.get(envelope.type)
    if route is None:
        return Reading(ignored=envelope.type)
    try:
        return Reading(event=Event(envelope, route.model.model_validate(envelope.data)))
    except ValidationError as error:
        return Reading(rejected=(f"invalid {envelope.type} payload: {errors.describe(error)}", envelope.type))


class Consumer:
    """One consumer group member: fetches batches from the hub topics and applies them with the policy above."""

    def __init__(
        self,
        *,
        service: Service,
        routes: Sequence[Route[Any]],
        settings: CommonSettings,
        sessions: async_sessionmaker[AsyncSession],
        inbox_table: Table,
        broker: KafkaBroker,
        metrics: ServiceMetrics,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.group_id = service.consumer_group + settings.consumer_group_suffix
        self.dead_letter_topic = dead_letter(self.group_id)
        self._service = service
        self._routes = {route.model.event_type: route for route in routes}
        self._settings = settings
        self._sessions = sessions
        self._inbox = inbox_table
        self._broker = broker
        self._metrics = metrics
        self._after_commit = after_commit
        self._processed: dict[TopicPartition, int] = {}
        self._fetched: dict[TopicPartition, int] = {}
        self._skipped: dict[TopicPartition, int] = {}
        self._rewind = False
        self._last_commit = time.monotonic()
        self._careful = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._inflight: collections.deque[_Batch] = collections.deque()
        self._tails: dict[TopicPartition, asyncio.Future[None]] = {}

    # --- liveness -------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """False when fetched records have waited longer than the configured stall timeout."""
        waiting = next((batch.since for batch in self._inflight if not batch.task.done()), None)
        return waiting is None or time.monotonic() - waiting < self._settings.consumer_stall_timeout_s

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        consumer = kafka.create_consumer(self._settings, service=self._service.name, group_id=self.group_id)
        consumer.subscribe(pattern=self._settings.consultation_topic_pattern, listener=_Listener(self))
        self._consumer = consumer
        await until_done(consumer.start, name=f"{self.group_id}: connecting to Kafka", backoff=self._backoff())
        try:
            while True:
                # Fetching and parsing the next batch overlaps the database work of those in flight.
                records = await self._fetch(consumer)
                skipped, self._skipped = self._skipped, {}
                parsed = await self._parse_all(records)
                while self._inflight and (len(self._inflight) >= BATCHES_IN_FLIGHT or self._inflight[0].task.done()):
                    await (
                        self._inflight.popleft().task
                    )  # a failure (none is expected: `_apply` classifies all) stops the loop
                if records or skipped:
                    task = asyncio.create_task(self._apply_batch(records, parsed, skipped))
                    self._inflight.append(_Batch(time.monotonic(), task))
                await self._commit_if_due(consumer)
        finally:
            for batch in self._inflight:
                batch.task.cancel()  # rolled back unless committed; either way redelivered, then skipped
            await self._settled()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._commit(consumer), timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), timeout=10)  # leaves the group; bounded

    async def _settled(self) -> None:
        """Wait for every batch in flight to end, however it ends."""
        inflight, self._inflight = self._inflight, collections.deque()
        await asyncio.gather(*(batch.task for batch in inflight), return_exceptions=True)

    def _backoff(self) -> Backoff:
        return Backoff(self._settings.consumer_retry_backoff_s, self._settings.consumer_retry_backoff_cap_s)

    async def _fetch(self, consumer: AIOKafkaConsumer) -> list[Record]:
        backoff = self._backoff()
        while True:
            try:
                if self._rewind:
                    await self._rewind_to_fetched(consumer)
                    self._rewind = False
                if self._careful > 0:
                    return await self._fetch_carefully(consumer)
                batches = await consumer.getmany(timeout_ms=200, max_records=self._settings.consumer_batch_size)
            except UNREADABLE as error:
                log.error("%s: a fetched batch cannot be read (%s); reading record by record", self.group_id, error)
                self._rewind = True
                self._careful = self._settings.consumer_batch_size
                continue
            except KafkaError as error:
                delay = backoff.next_delay()
                log.warning("%s: fetch failed (%s); retrying in %.1fs", self.group_id, error, delay)
                await asyncio.sleep(delay)
                continue
            records = [record for batch in batches.values() for record in batch]
            for record in records:
                self._fetched[TopicPartition(record.topic, record.partition)] = record.offset + 1
            return records

    async def _rewind_to_fetched(self, consumer: AIOKafkaConsumer) -> None:
        """Seek every partition back to the record after the last one aiokafka handed over.

        A fetch that meets an unreadable batch hands over nothing, yet aiokafka has already moved the
        positions of the partitions it drained before that batch. Where nothing was handed over since the
        partition was assigned, reading began at the group's committed offset, or at the log's start when
        there is none (`auto_offset_reset="earliest"`, see `shared.kafka.create_consumer`)."""
        for tp in sorted(consumer.assignment()):
            start = self._fetched.get(tp)
            if start is None:
                start = await consumer.committed(tp)
            if start is None:
                start = (await consumer.beginning_offsets([tp]))[tp]
            if await consumer.position(tp) > start:
                log.warning(
                    "%s: rewinding %s[%d] to %d, past which nothing was handed over",
                    self.group_id,
                    tp.topic,
                    tp.partition,
                    start,
                )
                consumer.seek(tp, start)

    async def _fetch_carefully(self, consumer: AIOKafkaConsumer) -> list[Record]:
        """One record at a time per partition, so an unreadable one is found by its exact position."""
        records: list[Record] = []
        for tp in sorted(consumer.assignment()):
            while len(records) < self._settings.consumer_batch_size and tp in consumer.assignment():
                position = await consumer.position(tp)  # returns only while tp is assigned, so highwater may ask
                # Wait for a fetch only where records are known to be ahead: the buffer that met the
                # unreadable batch yields nothing once, and the partition's next fetch takes a round trip.
                highwater = consumer.highwater(tp)
                wait_ms = 200 if highwater is None else CAREFUL_WAIT_MS if position < highwater else 0
                try:
                    got = (await consumer.getmany(tp, timeout_ms=wait_ms, max_records=1)).get(tp, [])
                except UNREADABLE as error:
                    await self._skip_unreadable(consumer, tp, position, error)
                    continue
                if not got:
                    break
                records.extend(got)
                self._fetched[tp] = got[-1].offset + 1
        self._careful = self._careful - len(records) if records else 0
        return records

    async def _skip_unreadable(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, error: Exception
    ) -> None:
        reason = f"unreadable record: {type(error).__name__}"
        await self._publish_dead_letter(b"", None, [], reason, topic=tp.topic, partition=tp.partition, offset=offset)
        self._metrics.events.labels("unknown", "unreadable").inc()
        consumer.seek(tp, offset + 1)
        self._fetched[tp] = offset + 1
        self._skipped[tp] = offset + 1

    # --- applying a batch -----------------------------------------------------------------------

    async def _parse_all(self, records: Sequence[Record]) -> list[Parsed]:
        parsed = []
        ignored: Counter[str] = Counter()
        routes = self._routes
        for record in records:
            reading = read(record, routes)
            if reading.event is not None:
                parsed.append(Parsed(record, reading.event))
            elif reading.rejected is not None:
                reason, event_type = reading.rejected
                await self._dead_letter(record, reason, event_type)
            elif reading.ignored is not None:
                ignored[reading.ignored] += 1
        for event_type, count in ignored.items():
            self._metrics.events.labels(event_type, "ignored").inc(count)
        return parsed

    async def _apply_batch(
        self, records: Sequence[Record], parsed: Sequence[Parsed], skipped: dict[TopicPartition, int]
    ) -> None:
        """Apply the parsed events in lanes, each lane once the lanes of earlier batches on its partitions
        are done (no barrier between batches: a lane of the next batch starts while unrelated lanes of this
        one still run). A partition's records count as processed once its lane committed, and after them
        any unreadable records skipped past (committing their offsets earlier would give up the records
        fetched before them)."""
        ends: dict[TopicPartition, int] = {}
        for record in records:
            ends[TopicPartition(record.topic, record.partition)] = record.offset + 1
        for tp, offset in skipped.items():
            ends[tp] = max(ends.get(tp, 0), offset)
        tasks = []
        for lane in lanes(parsed, self._settings.consumer_lanes) if parsed else ():
            partitions = {TopicPartition(item.record.topic, item.record.partition) for item in lane}
            tasks.append(self._after(partitions, functools.partial(self._apply, lane), ends))
        # Partitions with nothing to apply in this batch (all ignored or dead-lettered) still wait their turn.
        idle = set(ends).difference(*(task.partitions for task in tasks))
        if idle:
            tasks.append(self._after(idle, None, ends))
        await asyncio.gather(*(task.done for task in tasks))

    def _after(
        self,
        partitions: set[TopicPartition],
        work: Callable[[], Awaitable[None]] | None,
        ends: Mapping[TopicPartition, int],
    ) -> _Lane:
        """Schedule `work` once the lanes before it on `partitions` are done, then mark those partitions processed."""
        before = {self._tails[tp] for tp in partitions if tp in self._tails}

        async def run() -> None:
            for task in before:
                await task  # an earlier failure fails this lane too: order is never skipped
            if work is not None:
                await work()
            for tp in partitions:
                self._processed[tp] = ends[tp]  # lanes of a partition end in order: offsets only grow

        lane = _Lane(partitions, asyncio.ensure_future(run()))
        for tp in partitions:
            self._tails[tp] = lane.done
        return lane

    async def _apply(self, parsed: Sequence[Parsed]) -> None:
        backoff = self._backoff()
        while True:
            try:
                await self._transaction([item.event for item in parsed])
                return
            except Exception as error:  # classified below; nothing is lost, only retried or split
                outcome = errors.classify(error)
                if outcome in (errors.Outcome.TRANSIENT, errors.Outcome.SCHEMA):
                    await self._wait_out(error, outcome, backoff)
                    continue
                if len(parsed) == 1:
                    break
                log.warning(
                    "%s: a batch of %d events failed (%s); applying them one by one",
                    self.group_id,
                    len(parsed),
                    errors.describe(error),
                )
                break
        for item in parsed:
            await self._apply_one(item)

    async def _apply_one(self, item: Parsed) -> None:
        backoff = self._backoff()
        attempt = 0
        with _correlated(item.event.envelope):
            while True:
                attempt += 1
                try:
                    await self._transaction([item.event])
                    return
                except Exception as error:  # classified below
                    outcome = errors.classify(error)
                    if outcome in (errors.Outcome.TRANSIENT, errors.Outcome.SCHEMA):
                        await self._wait_out(error, outcome, backoff)
                        continue
                    reason = errors.describe(error)
                    if outcome is errors.Outcome.POISON or attempt >= self._settings.consumer_max_attempts:
                        await self._dead_letter(
                            item.record, f"failed {attempt} times: {reason}", item.event.envelope.type
                        )
                        return
                    self._metrics.events.labels(item.event.envelope.type, "retried").inc()
                    delay = backoff.next_delay()
                    log.warning("applying %s failed (%s); retrying in %.2fs", item.event.envelope.id, reason, delay)
                    await asyncio.sleep(delay)

    async def _wait_out(self, error: Exception, outcome: errors.Outcome, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        self._metrics.consumer_retries.labels(outcome.value).inc()
        if outcome is errors.Outcome.SCHEMA:
            # A deploy is missing a migration: nothing to skip, nothing to dead-letter. Say it loudly.
            self._metrics.consumer_stalled.set(1)
            log.error(
                "%s stalled: the database schema is missing (%s); run the migrations. Retrying in %.1fs",
                self.group_id,
                errors.describe(error),
                delay,
            )
        else:
            log.warning("%s: %s; retrying in %.2fs", self.group_id, errors.describe(error), delay)
        await asyncio.sleep(delay)

    async def _transaction(self, events: Sequence[Event[Any]]) -> None:
        started = time.perf_counter()
        unique = list({event.envelope.id: event for event in events}.values())
        async with self._sessions.begin() as session:
            applied_before = await inbox.claim(
                session, self._inbox, consumer=self.group_id, events=[event.envelope for event in unique]
            )
            fresh = [event for event in unique if event.envelope.id not in applied_before] if applied_before else unique
            for layer in plan(fresh):
                for calls in layer:
                    with _correlated(calls[0].envelope):
                        await self._routes[calls[0].envelope.type].handler(session, calls)
        committed = time.time()
        self._metrics.consumer_stalled.set(0)
        self._after_commit()
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        # A redelivery within the batch counts as a duplicate too: each id is applied at most once.
        applied = Counter(event.envelope.type for event in fresh)
        for event_type, count in Counter(event.envelope.type for event in events).items():
            if applied[event_type]:
                self._metrics.events.labels(event_type, "applied").inc(applied[event_type])
            if count > applied[event_type]:
                self._metrics.events.labels(event_type, "duplicate").inc(count - applied[event_type])
        ages = {event_type: self._metrics.event_age_seconds.labels(event_type) for event_type in applied}
        for event in fresh:
            occurred = event.envelope.time
            if occurred.tzinfo is None:  # a producer that wrote no offset meant UTC (CloudEvents' times are RFC 3339)
                occurred = occurred.replace(tzinfo=UTC)
            ages[event.envelope.type].observe(max(committed - occurred.timestamp(), 0.0))

    # --- dead letters -----------------------------------------------------------------------------

    async def _dead_letter(self, record: Record, reason: str, event_type: str) -> None:
        await self._publish_dead_letter(
            record.value or b"",
            record.key,
            list(record.headers or ()),
            reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        self._metrics.events.labels(event_type, "dead_lettered").inc()
        log.error("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)

    async def _publish_dead_letter(
        self,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        reason: str,
        *,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        """Retried with backoff until the broker acknowledges: the record's offset is not committed before."""
        # Original headers travel on as text; bytes that are not UTF-8 are escaped, a null value is empty.
        copied = {name: (raw or b"").decode("utf-8", errors="backslashreplace") for name, raw in headers}
        copied.update(
            {
                "hubnet-dlt-reason": reason[:2000],
                "hubnet-dlt-topic": topic,
                "hubnet-dlt-partition": str(partition),
                "hubnet-dlt-offset": str(offset),
                "hubnet-dlt-group": self.group_id,
            }
        )
        backoff = self._backoff()
        while True:
            try:
                await self._broker.publish(value, topic=self.dead_letter_topic, key=key, headers=copied)
                return
            except Exception as error:  # any failure: the record waits, the partition does not spin
                self._metrics.dead_letter_failures.inc()
                delay = backoff.next_delay()
                log.error(
                    "%s: dead-letter publish to %s failed (%s); retrying in %.1fs",
                    self.group_id,
                    self.dead_letter_topic,
                    errors.describe(error),
                    delay,
                )
                await asyncio.sleep(delay)

    # --- offsets ----------------------------------------------------------------------------------

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance takes partitions away: let the batch in flight finish, then commit what
        was applied on them."""
        if self._inflight:
            await asyncio.wait([batch.task for batch in self._inflight])
        if self._consumer is not None and revoked:
            await self._commit(self._consumer, only=set(revoked))

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Positions on newly assigned partitions start from their committed offsets, not ours."""
        for tp in assigned:
            self._fetched.pop(tp, None)

    async def _commit_if_due(self, consumer: AIOKafkaConsumer) -> None:
        if time.monotonic() - self._last_commit >= self._settings.consumer_commit_interval_s:
            await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None) -> None:
        self._last_commit = time.monotonic()
        assigned = consumer.assignment()
        owned = {
            tp: offset for tp, offset in self._processed.items() if tp in assigned and (only is None or tp in only)
        }
        if not owned:
            return
        try:
            await consumer.commit(owned)
        except KafkaError as error:
            # A rebalance took the partitions: their new owner gets those records again, and its
            # inbox recognises them.
            log.warning("%s: offset commit failed (%s); records will be redelivered and skipped", self.group_id, error)
            return
        for tp in owned:
            if self._processed.get(tp) == owned[tp]:
                del self._processed[tp]


class _Batch(NamedTuple):
    since: float
    """When it was handed over to be applied (monotonic): liveness measures waiting from here."""
    task: asyncio.Task[None]


class _Lane(NamedTuple):
    partitions: set[TopicPartition]
    done: asyncio.Future[None]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Consumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.partitions_assigned(assigned)


_EVENT_TYPE = re.compile(rb"hubnet\.[a-z_]+\.[a-z_]+\.v[0-9]+")
_DECLARED: dict[bytes, str | None] = {}
"""Header values seen, and what they declare: a log holds a handful of types, met once per record."""
_DECLARED_MAX = 1024
"""Values remembered at most; beyond them (a producer writing garbage), each is matched anew."""


def _declared_type(record: Record) -> str | None:
    """The event type the record's `hubnet-type` header declares, when it is a well-formed one; the
    bytes are matched before anything is decoded, so a null or non-UTF-8 value is simply no answer
    (the value is then parsed, and the envelope's own type decides)."""
    for name, value in record.headers or ():
        if name == kafka.TYPE_HEADER and isinstance(value, bytes):
            try:
                declared = _DECLARED[value]
            except KeyError:
                declared = value.decode("ascii") if _EVENT_TYPE.fullmatch(value) else None
                if len(_DECLARED) < _DECLARED_MAX:
                    _DECLARED[value] = declared
            if declared is not None:
                return declared
    return None


@contextlib.contextmanager
def _correlated(envelope: ContextAttributes) -> Iterator[None]:
    token = correlation_id.set(str(envelope.correlation_id))
    try:
        yield
    finally:
        correlation_id.reset(token)
