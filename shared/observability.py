"""Metrics, JSON logs and the correlation id that ties a request to every event it causes."""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def new_correlation_id() -> uuid.UUID:
    return uuid.uuid4()


AGE_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class ServiceMetrics:
    """The metrics shared wiring records, named hubnet_<service>_<thing>_<unit>."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        prefix = f"hubnet_{service}"
        self.registry = registry
        self.events = Counter(
            f"{prefix}_events_total",
            "Consumed events by type and outcome (applied, duplicate, ignored, dead_lettered, retried, unreadable)",
            ["type", "outcome"],
            registry=registry,
        )
        self.event_seconds = Histogram(
            f"{prefix}_event_processing_seconds",
            "Time to apply one event, transaction included",
            ["type"],
            registry=registry,
        )
        self.event_age_seconds = Histogram(
            f"{prefix}_event_age_seconds",
            "From an event's time (when its producer recorded it) to the commit of its effect here: how fresh "
            "this service's state is",
            ["type"],
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            f"{prefix}_event_batch_seconds",
            "Time to apply a fetched batch of events in one transaction",
            registry=registry,
        )
        self.outbox_published = Counter(
            f"{prefix}_outbox_published_total", "Outbox rows published to Kafka", registry=registry
        )
        self.outbox_errors = Counter(
            f"{prefix}_outbox_relay_errors_total", "Failed outbox relay rounds", registry=registry
        )
        self.outbox_failures = Counter(
            f"{prefix}_outbox_publish_failures_total", "Outbox rows the broker did not acknowledge", registry=registry
        )
        self.outbox_parked = Counter(
            f"{prefix}_outbox_parked_total",
            "Outbox rows parked after too many failed attempts (an operator must look)",
            registry=registry,
        )
        self.consumer_retries = Counter(
            f"{prefix}_consumer_retries_total",
            "Batches or events retried after a transient failure or a missing schema",
            ["reason"],
            registry=registry,
        )
        self.consumer_stalled = Gauge(
            f"{prefix}_consumer_stalled",
            "1 while a consumer waits for a missing database schema (a migration not run)",
            registry=registry,
        )
        self.dead_letter_failures = Counter(
            f"{prefix}_dead_letter_publish_failures_total", "Failed dead-letter publishes (retried)", registry=registry
        )


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        return True


def configure_logging(service: str, *, level: str, json: bool) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_CorrelationFilter())
    if json:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{correlation_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
