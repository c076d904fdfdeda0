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
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared import outbox
from shared.observability import ServiceMetrics
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
TYPE_HEADER = "hubnet-type"


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


def outbox_publisher(broker: KafkaBroker, *, metadata_timeout_s: float) -> outbox.Publish:
    async def send(record: outbox.Record) -> None:
        # The wait for the topic's metadata is bounded (a topic that does not exist would otherwise
        # hold the whole round for the request timeout); cancelling it is safe, since nothing has been
        # appended yet. Once appended, the broker's acknowledgement is awaited.
        sent = await asyncio.wait_for(
            broker.publish(
                record.payload,
                topic=record.topic,
                key=record.key.encode(),
                headers={"content-type": CONTENT_TYPE, TYPE_HEADER: record.event_type},
                no_confirm=True,
            ),
            timeout=metadata_timeout_s,
        )
        await sent

    async def publish(records: Sequence[outbox.Record]) -> list[BaseException | None]:
        # The relay sends at most one record per key in a round, so the sends may run concurrently;
        # the idempotent producer keeps each partition's order across its own retries.
        results = await asyncio.gather(*(send(record) for record in records), return_exceptions=True)
        return [result if isinstance(result, BaseException) else None for result in results]

    return publish
