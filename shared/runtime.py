"""The runtime of one service process: database, broker, outbox relay, consumers, health and metrics over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import db, kafka, outbox, poll
from shared.consumer import Consumer, Route
from shared.http import install_body_limit, install_correlation, install_error_handlers, install_load_shedding
from shared.observability import ServiceMetrics
from shared.service import Service
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 15.0
"""How long a cancelled worker may take to finish (a consumer commits its offsets and leaves its group)."""
GC_THRESHOLDS = (20_000, 20, 100)
"""The collector's thresholds in a service process. At Python's default (a young collection every 700
allocations) a batch of events is interrupted every few events, mostly to find nothing: what a batch
allocates is acyclic and short-lived. At these, matching's consumer moved 10% more events a second
(`make bench`); a young collection then scans at most some 20,000 objects, about a millisecond."""


def tune_gc() -> None:
    """The collector as a service process runs it (`GC_THRESHOLDS`); the bench sets it for its baselines too."""
    gc.set_threshold(*GC_THRESHOLDS)


Worker = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    """Everything a service's handlers and routes need; built by `create_runtime`, nothing at import.

    What a service gets follows from its schema: an outbox table makes it a producer (its sessions can
    stage events, and a relay publishes them); an inbox table makes it a consumer (`consume`)."""

    service: Service
    settings: CommonSettings
    registry: CollectorRegistry
    metrics: ServiceMetrics
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broker: KafkaBroker
    relay: outbox.Relay | None
    relay_producer: kafka.OutboxProducer | None
    inbox_table: Table | None
    workers: list[Worker] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    relay_due: asyncio.Event = field(default_factory=asyncio.Event)
    running: list[asyncio.Task[None]] = field(default_factory=list)
    """The workers' tasks while the service serves; each should run until shutdown."""

    def wake_relay(self) -> None:
        """Called after a commit that staged events, so they go out without waiting for the poll."""
        self.relay_due.set()

    def stopped_workers(self) -> list[str]:
        """Workers whose task has ended: a loop meant to run until shutdown returned or raised."""
        return [task.get_name() for task in self.running if task.done()]

    def consume(self, *routes: Route[Any], after_commit: Callable[[], None] | None = None) -> Consumer:
        """Subscribe the service's consumer group to every hub's consultation topic (by pattern: a new
        hub is configuration), with the shared policy; `after_commit` runs after each applied batch."""
        if self.inbox_table is None:
            raise RuntimeError(f"{self.service.name} has no inbox table, so it cannot consume events")

        def committed() -> None:
            self.wake_relay()
            if after_commit is not None:
                after_commit()

        consumer = Consumer(
            service=self.service,
            routes=routes,
            settings=self.settings,
            sessions=self.sessions,
            inbox_table=self.inbox_table,
            broker=self.broker,
            metrics=self.metrics,
            after_commit=committed,
        )
        self.consumers.append(consumer)
        self.workers.append(consumer.run)
        return consumer


def create_runtime(service: Service, settings: CommonSettings, metadata: MetaData) -> Runtime:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(service.name, registry)
    engine = db.create_engine(settings, application_name=f"hubnet-{service.name}")
    outbox_table = metadata.tables.get(f"{service.schema}.outbox")
    inbox_table = metadata.tables.get(f"{service.schema}.inbox")
    info = outbox.binding(outbox_table, service.source) if outbox_table is not None else None
    sessions = db.create_sessions(engine, info=info)
    broker = kafka.create_broker(settings, service=service.name, metrics=metrics)
    relay, producer = None, None
    if outbox_table is not None:
        producer = kafka.OutboxProducer(
            settings, service=service.name, metadata_timeout_s=settings.outbox_metadata_timeout_s
        )
        relay = outbox.Relay(
            table=outbox_table,
            sessions=sessions,
            publish=producer.publish,
            reachable=kafka.reachable(broker),
            metrics=metrics,
            batch_size=settings.outbox_batch_size,
            lanes=settings.outbox_relay_lanes,
            max_attempts=settings.outbox_max_attempts,
            retry_backoff=poll.Backoff(settings.outbox_retry_backoff_s, settings.outbox_retry_backoff_cap_s),
        )
    return Runtime(service, settings, registry, metrics, engine, sessions, broker, relay, producer, inbox_table)


def _relay_worker(runtime: Runtime, relay: outbox.Relay) -> Worker:
    settings = runtime.settings

    async def run() -> None:
        await poll.poll(
            relay.work,
            name=f"{runtime.service.name} outbox relay",
            idle_s=settings.outbox_poll_interval_s,
            backoff=poll.Backoff(settings.outbox_poll_interval_s, 5.0),
            wake=runtime.relay_due,
            linger_s=settings.outbox_relay_linger_s,
            on_error=lambda _: runtime.metrics.outbox_errors.inc(),
        )

    return run


def _report_stopped(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.critical("%s stopped: %s; liveness now fails", task.get_name(), type(error).__name__, exc_info=error)
    else:
        log.critical("%s returned; liveness now fails", task.get_name())


def create_http_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    ready_needs_kafka: bool = True,
    larger_bodies: Mapping[str, int] | None = None,
) -> FastAPI:
    """The service's process: FastAPI serves HTTP while the broker, relay and workers run beside it.
    Bodies are limited to `http_max_body_bytes`, except under the path prefixes of `larger_bodies`."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        name = runtime.service.name
        # Everything built so far lives as long as the process: out of the collector's sight, so that
        # collections during a batch scan only what the batch allocated.
        gc.freeze()
        tune_gc()
        tasks = []
        try:
            await runtime.broker.start()
        except Exception:
            if ready_needs_kafka:
                raise
            # A service that only publishes through its outbox serves without Kafka; the relay
            # holds the events until this background task has connected.
            log.warning("Kafka unreachable at start; %s serves and connects in the background", name)
            connect = poll.until_done(runtime.broker.start, name="connecting to Kafka", backoff=poll.Backoff(0.5, 10.0))
            tasks.append(asyncio.create_task(connect, name="broker-connect"))
        workers = list(runtime.workers)
        if runtime.relay is not None and runtime.settings.outbox_relay:
            workers.append(_relay_worker(runtime, runtime.relay))
        for index, worker in enumerate(workers):
            task = asyncio.create_task(worker(), name=f"{name}-worker-{index}")
            task.add_done_callback(_report_stopped)
            runtime.running.append(task)
        tasks += runtime.running
        log.info("%s started", name)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                stuck = (await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT_S))[1]
                for task in stuck:  # never hang a shutdown: say which worker did not stop, and go on
                    log.error(
                        "%s: %s did not stop within %.0fs of being cancelled", name, task.get_name(), SHUTDOWN_TIMEOUT_S
                    )
            runtime.running.clear()
            if runtime.relay_producer is not None:
                await runtime.relay_producer.stop()
            await runtime.broker.stop()
            await runtime.engine.dispose()

    app = FastAPI(title=title, description=description, version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_body_limit(app, runtime.settings.http_max_body_bytes, larger=larger_bodies)
    install_correlation(app)
    install_load_shedding(app, runtime.settings.http_max_in_progress)  # added last: runs first
    app.state.runtime = runtime

    @app.get("/healthz", include_in_schema=False)
    async def healthz(response: Response) -> dict[str, str]:
        """Liveness: fails when a consumer has held fetched records past its stall timeout, or when a
        worker (a consumer loop, the relay, a poller) has stopped: a restart is what either needs."""
        if stopped := runtime.stopped_workers():
            response.status_code = 503
            return {"status": "stopped", "workers": ", ".join(stopped)}
        if stalled := [consumer.group_id for consumer in runtime.consumers if not consumer.healthy()]:
            response.status_code = 503
            return {"status": "stalled", "consumers": ", ".join(stalled)}
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, str]:
        checks = {"database": "ok", "kafka": "ok"}
        try:
            await asyncio.wait_for(db.ping(runtime.engine), timeout=2)
        except Exception as error:  # any failure means not ready; the reason is reported
            checks["database"] = f"unavailable: {type(error).__name__}"
        if not await runtime.broker.ping(timeout=2):
            checks["kafka"] = "unavailable"
        ready = checks["database"] == "ok" and (checks["kafka"] == "ok" or not ready_needs_kafka)
        response.status_code = 200 if ready else 503
        return checks

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
