"""Kafka wiring: the broker every service uses, the outbox publisher, and the one consumer policy.

The policy, decided here once for every subscriber:
- offsets are committed only for records whose transaction has committed: the committer stores
  "processed up to here" per partition and commits those explicit offsets every
  `consumer_commit_interval_s` (never the consumer's fetched position, which runs ahead); an
  escaping exception rewinds the partition to the record. A crash between effect and commit
  means redelivery, which the inbox turns into a no-op;
- each event's id is claimed in the service's inbox inside that same transaction, so a
  redelivered event is recognised and skipped;
- a message that can never be applied (not an envelope, payload failing its model, a
  `PermanentError`) goes to the consumer's dead-letter topic with the reason, and the
  partition moves on;
- transient failures (database or broker unreachable) retry with backoff and never
  dead-letter: the partition waits for the dependency to return;
- any other error retries `consumer_max_attempts` times, then dead-letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import Consumer as KafkaConsumer
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import inbox, outbox
from shared.contract import Envelope, Event, EventData
from shared.contract.topics import dead_letter
from shared.observability import ServiceMetrics, correlation_id
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"

Handler = Callable[[AsyncSession, Event[Any]], Awaitable[None]]


class PermanentError(Exception):
    """The event is well formed but can never be applied; it goes to the dead-letter topic."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
    KafkaError,
)


def _security(settings: CommonSettings) -> BaseSecurity | None:
    use_ssl = settings.kafka_security_protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context() if use_ssl else None
    if settings.kafka_sasl_mechanism is None:
        return BaseSecurity(ssl_context=context) if use_ssl else None
    username = settings.kafka_sasl_username or ""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return sasl[settings.kafka_sasl_mechanism](username, password, ssl_context=context)


def create_broker(settings: CommonSettings, *, service: str, metrics: ServiceMetrics) -> KafkaBroker:
    # Idempotence forces acks=all and keeps per-partition order across producer retries;
    # linger 0 because the outbox relay already batches.
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"hubnet-{service}",
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        security=_security(settings),
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name=f"hubnet-{service}")],
        logger=logging.getLogger(f"hubnet.{service}.kafka"),
    )


def outbox_publisher(broker: KafkaBroker) -> outbox.Publish:
    async def publish(records: Sequence[outbox.Record]) -> None:
        # Sends are pipelined and awaited together; the idempotent producer keeps them in order
        # within each partition, and a failure fails the whole batch (rows stay pending).
        pending = [
            await broker.publish(
                record.payload,
                topic=record.topic,
                key=record.key.encode(),
                headers={"content-type": CONTENT_TYPE, "ce_type": record.event_type},
                no_confirm=True,
            )
            for record in records
        ]
        await asyncio.gather(*pending)

    return publish


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one consumer group of a service reacts to."""

    group_id: str
    handlers: Mapping[type[EventData], Handler]


class _DeadLetter(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OffsetCommitter:
    """Commits, in the background, the offsets of records already applied, never beyond them.

    One synchronous commit per message costs a broker round trip each; since the inbox makes a
    redelivery harmless, committing processed offsets a little later is as safe and much faster.
    """

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._processed: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None

    def processed(self, consumer: AIOKafkaConsumer, record: ConsumerRecord[Any, Any]) -> None:
        self._consumer = consumer
        self._processed[TopicPartition(record.topic, record.partition)] = record.offset + 1

    async def commit(self) -> None:
        if not self._processed or self._consumer is None:
            return
        offsets, self._processed = self._processed, {}
        assigned = self._consumer.assignment()
        owned = {partition: offset for partition, offset in offsets.items() if partition in assigned}
        if not owned:
            return
        try:
            await self._consumer.commit(owned)
        except KafkaError as error:
            # A rebalance took the partitions away: their new owner gets those records again, and
            # its inbox recognises them.
            log.warning("offset commit failed (%s); records will be redelivered and skipped", error)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.commit()
            except Exception:  # the loop must outlive any single failure, or commits stop for good
                log.exception("offset commit round failed")


class Consumer:
    """Applies fetched records with the policy above."""

    def __init__(
        self,
        *,
        broker: KafkaBroker,
        subscription: Subscription,
        group_id: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox_table: Table,
        metrics: ServiceMetrics,
        settings: CommonSettings,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._broker = broker
        self._group_id = group_id
        self._dead_letter_topic = dead_letter(group_id)
        self._handlers = {model.event_type: (model, handler) for model, handler in subscription.handlers.items()}
        self._sessions = sessions
        self._inbox = inbox_table
        self._metrics = metrics
        self._max_attempts = settings.consumer_max_attempts
        self._backoff_s = settings.consumer_retry_backoff_s
        self._after_commit = after_commit
        self.committer = OffsetCommitter(settings.consumer_commit_interval_s)

    async def consume(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Apply a fetched batch in order. Records that can never be applied are dead-lettered; the
        rest are applied in one transaction, or one by one (with retries) if that transaction fails,
        so one bad event never takes its neighbours with it."""
        ready: list[tuple[ConsumerRecord[Any, Any], Event[Any], Handler]] = []
        for record in records:
            prepared = await self._prepare(record)
            if prepared is not None:
                ready.append((record, *prepared))
        if len(ready) > 1:
            try:
                outcomes = await self._apply_together(ready)
            except Exception:
                log.warning("a batch of %d events failed; applying them one by one", len(ready), exc_info=True)
            else:
                for (_, event, _), outcome in zip(ready, outcomes, strict=True):
                    self._count(event.envelope, outcome)
                return
        for record, event, handler in ready:
            await self._apply_one(record, event, handler)

    async def _prepare(self, record: ConsumerRecord[Any, Any]) -> tuple[Event[Any], Handler] | None:
        try:
            envelope = Envelope.model_validate_json(record.value or b"")
        except ValidationError as error:
            await self._dead_letter(record, f"not a hubnet envelope: {_summary(error)}", "unknown")
            return None
        entry = self._handlers.get(envelope.type)
        if entry is None:
            self._metrics.events.labels(envelope.type, "ignored").inc()
            return None
        model, handler = entry
        try:
            return Event(envelope, model.model_validate(envelope.data)), handler
        except ValidationError as error:
            await self._dead_letter(record, f"invalid {envelope.type} payload: {_summary(error)}", envelope.type)
            return None

    async def _apply_together(self, ready: Sequence[tuple[ConsumerRecord[Any, Any], Event[Any], Handler]]) -> list[str]:
        started = time.perf_counter()
        outcomes = []
        async with self._sessions.begin() as session:
            for _, event, handler in ready:
                with _correlated(event.envelope):
                    outcomes.append(await self._claim_and_handle(session, event, handler))
        self._after_commit()
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return outcomes

    async def _apply_one(self, record: ConsumerRecord[Any, Any], event: Event[Any], handler: Handler) -> None:
        with _correlated(event.envelope):
            try:
                outcome = await self._apply_with_retries(event, handler)
            except _DeadLetter as dead:
                await self._dead_letter(record, dead.reason, event.envelope.type)
                return
            self._count(event.envelope, outcome)

    def _count(self, envelope: Envelope, outcome: str) -> None:
        self._metrics.events.labels(envelope.type, outcome).inc()
        if outcome == "duplicate":
            log.info("event %s already applied; skipped", envelope.id, extra={"event_type": envelope.type})

    async def _apply_with_retries(self, event: Event[Any], handler: Handler) -> str:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                outcome = await self._apply(event, handler)
            except (PermanentError, ValidationError) as error:
                raise _DeadLetter(f"{type(error).__name__}: {error}") from error
            except Exception as error:
                transient = _is_transient(error)
                if not transient and attempt >= self._max_attempts:
                    raise _DeadLetter(f"failed {attempt} times: {type(error).__name__}: {error}") from error
                if transient and attempt >= self._max_attempts:
                    # Let the broker rewind and redeliver rather than hold the poll loop forever.
                    raise
                self._metrics.events.labels(event.envelope.type, "retried").inc()
                delay = min(self._backoff_s * 2 ** (attempt - 1), 5.0)
                log.warning(
                    "applying %s failed (attempt %d), retrying in %.1fs",
                    event.envelope.id,
                    attempt,
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
                continue
            self._metrics.event_seconds.labels(event.envelope.type).observe(time.perf_counter() - started)
            return outcome

    async def _apply(self, event: Event[Any], handler: Handler) -> str:
        async with self._sessions.begin() as session:
            outcome = await self._claim_and_handle(session, event, handler)
        self._after_commit()
        return outcome

    async def _claim_and_handle(self, session: AsyncSession, event: Event[Any], handler: Handler) -> str:
        envelope = event.envelope
        claimed = await inbox.claim(
            session, self._inbox, consumer=self._group_id, event_id=envelope.id, event_type=envelope.type
        )
        if not claimed:
            return "duplicate"
        await handler(session, event)
        return "applied"

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], reason: str, event_type: str) -> None:
        headers = {key: value.decode(errors="replace") for key, value in record.headers or ()}
        headers.update(
            {
                "hubnet-dlt-reason": reason[:2000],
                "hubnet-dlt-topic": record.topic,
                "hubnet-dlt-partition": str(record.partition),
                "hubnet-dlt-offset": str(record.offset),
                "hubnet-dlt-group": self._group_id,
            }
        )
        await self._broker.publish(record.value or b"", topic=self._dead_letter_topic, key=record.key, headers=headers)
        self._metrics.events.labels(event_type, "dead_lettered").inc()
        log.error("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)


@contextlib.contextmanager
def _correlated(envelope: Envelope) -> Iterator[None]:
    token = correlation_id.set(str(envelope.correlation_id))
    try:
        yield
    finally:
        correlation_id.reset(token)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, TRANSIENT_ERRORS)


def _summary(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in error.errors()[:10])


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    """Decode nothing: the policy parses the envelope itself, so a malformed body is dead-lettered
    instead of failing inside the framework and being redelivered forever."""
    return message.body


def subscribe(
    broker: KafkaBroker,
    subscription: Subscription,
    *,
    settings: CommonSettings,
    sessions: async_sessionmaker[AsyncSession],
    inbox_table: Table,
    metrics: ServiceMetrics,
    after_commit: Callable[[], None] = lambda: None,
) -> Consumer:
    """Subscribe a consumer group to every hub's consultation topic (by pattern: a new hub is configuration)."""
    group_id = subscription.group_id + settings.consumer_group_suffix
    consumer = Consumer(
        broker=broker,
        subscription=subscription,
        group_id=group_id,
        sessions=sessions,
        inbox_table=inbox_table,
        metrics=metrics,
        settings=settings,
        after_commit=after_commit,
    )

    async def on_records(bodies: list[bytes], message: KafkaMessage, kafka_consumer: KafkaConsumer) -> None:
        records = message.raw_message
        assert isinstance(records, tuple)
        try:
            await consumer.consume(records)
        except BaseException:
            await message.nack()  # rewind each partition to its first record of the batch
            raise
        for record in records:
            consumer.committer.processed(kafka_consumer, record)

    broker.subscriber(
        pattern=settings.consultation_topic_pattern,
        group_id=group_id,
        auto_offset_reset="earliest",
        batch=True,
        max_records=settings.consumer_batch_size,
        batch_timeout_ms=100,
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_body,
        title=f"{group_id}:consultations",
    )(on_records)
    return consumer
