"""The runtime of one service process: database, broker, outbox relay, health and metrics over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import db, kafka, outbox
from shared.http import install_body_limit, install_correlation, install_error_handlers
from shared.observability import ServiceMetrics
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

Worker = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    """Everything a service's handlers and routes need; built by `create_runtime`, nothing at import."""

    service: str
    settings: CommonSettings
    registry: CollectorRegistry
    metrics: ServiceMetrics
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broker: KafkaBroker
    outbox_table: Table
    inbox_table: Table
    relay: outbox.Relay
    workers: list[Worker] = field(default_factory=list)
    consumers: list[kafka.Consumer] = field(default_factory=list)

    def subscribe(
        self, subscription: kafka.Subscription, *, after_commit: Callable[[], None] | None = None
    ) -> kafka.Consumer:
        """Subscribe with the shared policy; `after_commit` runs after each applied event's commit."""

        def committed() -> None:
            self.relay.wake()
            if after_commit is not None:
                after_commit()

        consumer = kafka.subscribe(
            self.broker,
            subscription,
            settings=self.settings,
            sessions=self.sessions,
            inbox_table=self.inbox_table,
            metrics=self.metrics,
            after_commit=committed,
        )
        self.consumers.append(consumer)
        self.workers.append(consumer.committer.run)
        return consumer


def create_runtime(service: str, settings: CommonSettings, metadata: MetaData) -> Runtime:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(service, registry)
    engine = db.create_engine(settings, application_name=f"hubnet-{service}")
    sessions = db.create_sessions(engine)
    broker = kafka.create_broker(settings, service=service, metrics=metrics)
    outbox_table = metadata.tables[f"{metadata.schema}.outbox"]
    inbox_table = metadata.tables[f"{metadata.schema}.inbox"]
    relay = outbox.Relay(
        table=outbox_table,
        sessions=sessions,
        publish=kafka.outbox_publisher(broker),
        metrics=metrics,
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
    )
    return Runtime(service, settings, registry, metrics, engine, sessions, broker, outbox_table, inbox_table, relay)


def create_http_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    ready_needs_kafka: bool = True,
) -> FastAPI:
    """The service's process: FastAPI serves HTTP while the broker, relay and workers run beside it."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = []
        try:
            await runtime.broker.start()
        except Exception:
            if ready_needs_kafka:
                raise
            # A service that only publishes through its outbox serves without Kafka; the relay
            # holds the events until this background task has connected.
            log.warning("Kafka unreachable at start; %s serves and connects in the background", runtime.service)
            tasks.append(asyncio.create_task(_start_eventually(runtime.broker), name="broker-connect"))
        tasks.append(asyncio.create_task(runtime.relay.run(), name=f"{runtime.service}-outbox-relay"))
        tasks += [asyncio.create_task(worker(), name=f"{runtime.service}-worker") for worker in runtime.workers]
        log.info("%s started", runtime.service)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for consumer in runtime.consumers:
                await consumer.committer.commit()
            await runtime.broker.stop()
            await runtime.engine.dispose()

    app = FastAPI(title=title, description=description, version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_body_limit(app, runtime.settings.http_max_body_bytes)
    install_correlation(app)
    app.state.runtime = runtime

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
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


async def _start_eventually(broker: KafkaBroker) -> None:
    delay = 0.5
    while True:
        await asyncio.sleep(delay)
        try:
            await broker.start()
        except Exception:
            delay = min(delay * 2, 10.0)
            log.warning("Kafka still unreachable; retrying in %.1fs", delay)
        else:
            log.info("connected to Kafka")
            return
