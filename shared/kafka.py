"""Kafka wiring: the broker a service publishes through, the records it publishes, and its consumer clients.

Events travel as CloudEvents 1.0 in structured mode: the record's value is the whole JSON event and its
`content-type` header is `application/cloudevents+json`; no `ce_` headers (which would make a reader take
the record for binary mode). A `hubnet-type` header repeats the event type so that tools can filter
without parsing the value.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator, Sequence
from typing import Any

import murmurhash2
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, UnknownTopicOrPartitionError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared import outbox
from shared.observability import ServiceMetrics
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
TYPE_HEADER = "hubnet-type"


def record_headers(event_type: str) -> list[tuple[str, bytes]]:
    """The headers of every record hubnet publishes: structured mode's content type, and the type for filtering."""
    return [("content-type", CONTENT_TYPE.encode()), (TYPE_HEADER, event_type.encode())]


def _ssl_context(settings: CommonSettings) -> ssl.SSLContext | None:
    return ssl.create_default_context() if settings.kafka_security_protocol in ("SSL", "SASL_SSL") else None


def _security(settings: CommonSettings) -> BaseSecurity | None:
    context = _ssl_context(settings)
    if settings.kafka_sasl_mechanism is None:
        return BaseSecurity(ssl_context=context) if context is not None else None
    username = settings.kafka_sasl_username or ""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return sasl[settings.kafka_sasl_mechanism](username, password, ssl_context=context)


def client_options(settings: CommonSettings, *, client_id: str) -> dict[str, Any]:
    """Connection options of a raw aiokafka client, equal to the broker's."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": client_id,
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": _ssl_context(settings),
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "metadata_max_age_ms": settings.kafka_metadata_max_age_ms,
    }
    if settings.kafka_sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username or ""
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        )
    return options


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


def create_consumer(settings: CommonSettings, *, service: str, group_id: str) -> AIOKafkaConsumer:
    """A consumer of the service's group: offsets committed explicitly, after the effect, from the earliest."""
    return AIOKafkaConsumer(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.consumer_batch_size,
        **client_options(settings, client_id=f"hubnet-{service}"),
    )


def reachable(broker: KafkaBroker, *, timeout_s: float = 2.0) -> outbox.Reachable:
    async def ping() -> bool:
        return await broker.ping(timeout=timeout_s)

    return ping


class OutboxProducer:
    """The relay's own idempotent producer. A round's records are grouped by partition (Kafka's default
    partitioner, in native code) into record batches built directly, one future per batch rather than
    per record; the batches' acknowledgements are awaited together, and each row gets its batch's outcome.

    Started on first use, so a service that serves while Kafka is away (intake) connects when the broker
    returns; until then every record fails and the relay tells the outage apart by `reachable`."""

    def __init__(self, settings: CommonSettings, *, service: str, metadata_timeout_s: float) -> None:
        # Idempotence (acks=all) keeps each partition's order across the producer's own retries.
        self._options = client_options(settings, client_id=f"hubnet-{service}-relay") | {
            "enable_idempotence": True,
            "acks": "all",
            "linger_ms": 0,
            # A round's records for one partition go in one batch (events are ~1 KiB; the default 16 KiB
            # batch would take a round trip per 16 of them, one partition batch in flight at a time).
            "max_batch_size": 512 * 1024,
        }
        self._metadata_timeout_s = metadata_timeout_s
        self._start_timeout_s = settings.kafka_request_timeout_ms / 1000
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Connect now rather than on the first round (bounded by the request timeout)."""
        await self._started()

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(**self._options)
                try:
                    await asyncio.wait_for(producer.start(), timeout=self._start_timeout_s)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def _known(self, producer: AIOKafkaProducer, topic: str) -> BaseException | None:
        # Bounded: a topic that does not exist fails its own rows, not the whole round, and not after
        # the request timeout. Cached metadata answers at once.
        try:
            await asyncio.wait_for(producer.partitions_for(topic), timeout=self._metadata_timeout_s)
        except Exception as error:  # the reason goes to the rows of this topic
            return error if not isinstance(error, TimeoutError) else UnknownTopicOrPartitionError(topic)
        return None

    async def publish(self, records: Sequence[outbox.Record]) -> list[BaseException | None]:
        try:
            producer = await self._started()
        except Exception as error:  # not connected: every record of the round fails alike
            return [error] * len(records)
        topics = sorted({record.topic for record in records})
        unknown = dict(zip(topics, await asyncio.gather(*(self._known(producer, t) for t in topics)), strict=True))
        partitions = {t: len(producer.client.cluster.partitions_for_topic(t) or ()) for t in topics if not unknown[t]}
        outcomes: list[BaseException | None] = [None] * len(records)
        by_partition: dict[tuple[str, int], list[int]] = {}
        for index, record in enumerate(records):
            if (missing := unknown[record.topic]) is not None or not partitions[record.topic]:
                outcomes[index] = missing or UnknownTopicOrPartitionError(record.topic)
                continue
            partition = partition_for(record.key.encode(), partitions[record.topic])
            by_partition.setdefault((record.topic, partition), []).append(index)
        sent: list[tuple[list[int], asyncio.Future[Any]]] = []
        for (topic, partition), indexes in by_partition.items():
            for members, batch in self._batches(producer, records, indexes, outcomes):
                try:
                    sent.append((members, await producer.send_batch(batch, topic, partition=partition)))
                except Exception as error:  # not queued (e.g. the producer is closing): its rows fail
                    for index in members:
                        outcomes[index] = error
        acks = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        for (members, _), ack in zip(sent, acks, strict=True):
            if isinstance(ack, BaseException):
                for index in members:
                    outcomes[index] = ack
        return outcomes

    @staticmethod
    def _batches(
        producer: AIOKafkaProducer,
        records: Sequence[outbox.Record],
        indexes: Sequence[int],
        outcomes: list[BaseException | None],
    ) -> Iterator[tuple[list[int], Any]]:
        """One partition's records, in order, in as few record batches as fit `max_batch_size`. A
        record too large for an empty batch fails alone."""
        batch, members = producer.create_batch(), []
        for index in indexes:
            record = records[index]
            key, headers = record.key.encode(), record_headers(record.event_type)
            if batch.append(key=key, value=record.payload, timestamp=None, headers=headers) is not None:
                members.append(index)
                continue
            if members:
                yield members, batch
                batch, members = producer.create_batch(), []
                if batch.append(key=key, value=record.payload, timestamp=None, headers=headers) is not None:
                    members.append(index)
                    continue
            outcomes[index] = MessageSizeTooLargeError(f"{len(record.payload)} bytes do not fit one record batch")
        if members:
            yield members, batch


MURMUR2_SEED = 0x9747B28C


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (Java's and aiokafka's alike:
    positive murmur2 of the key bytes, modulo the partition count), in native code."""
    return (murmurhash2.murmurhash2(key, MURMUR2_SEED) & 0x7FFFFFFF) % partitions
