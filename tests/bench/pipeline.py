"""`make bench`: hubnet's paths against raw baselines measured in the same run, reported as ratios.

Needs a running stack (`hubnet stack up`); uses a database and topics of its own, dropped afterwards.
Bounded: N messages per measurement (HUBNET_BENCH_N, default 3000), loopback only.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake import handlers as intake_handlers
from services.intake import tables as intake_tables
from services.matching.app import create_app as create_matching
from services.matching.settings import MatchingSettings
from shared import auth, db, kafka, migrations, outbox, poll
from shared.contract import Envelope
from shared.contract.consultation import ConsultationSubmitted
from shared.contract.topics import consultations, dead_letter
from shared.observability import ServiceMetrics
from shared.settings import CommonSettings
from tests.integration import events
from tests.support import stack_env, wait_for

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("HUBNET_BENCH_N", "3000"))


@dataclass
class Result:
    name: str
    baseline: str
    rate: float
    baseline_rate: float


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await work()
    return N / (time.perf_counter() - started)


@asynccontextmanager
async def scratch(env: dict[str, str]) -> AsyncIterator[tuple[str, str, str]]:
    """A migrated database and a hub topic of the bench's own."""
    url = env["HUBNET_DATABASE_URL"]
    name = f"hubnet_bench_{uuid.uuid4().hex[:8]}"
    admin_engine = create_async_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin_engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    bench_url = make_url(url).set(database=name).render_as_string(hide_password=False)
    for service in ("intake", "matching"):
        await asyncio.to_thread(migrations.upgrade, ROOT / "services" / service / "migrations", bench_url)
    hub = f"bench-{uuid.uuid4().hex[:6]}"
    topics = [consultations(hub), f"{consultations(hub)}.raw", dead_letter(f"hubnet.matching.{hub}")]
    admin = AIOKafkaAdminClient(bootstrap_servers=env["HUBNET_KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    await admin.create_topics([NewTopic(t, 6, 1) for t in topics])
    try:
        yield bench_url, hub, env["HUBNET_KAFKA_BOOTSTRAP_SERVERS"]
    finally:
        await admin.delete_topics(topics)
        await admin.close()
        async with admin_engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin_engine.dispose()


def envelopes(hub: str) -> list[Envelope]:
    return [events.submitted(hub) for _ in range(N)]


async def bench_outbox(url: str, hub: str, bootstrap: str) -> list[Result]:
    settings = CommonSettings(database_url=url, kafka_bootstrap_servers=bootstrap)
    engine = db.create_engine(settings, application_name="bench")
    sessions = db.create_sessions(engine, info=outbox.binding(intake_tables.outbox_table, "/hubnet/intake"))
    items = envelopes(hub)

    async def plain_inserts() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("CREATE TABLE IF NOT EXISTS intake.bench_plain (id uuid, body bytea)"))
            await connection.commit()
            for envelope in items:
                await connection.execute(
                    text("INSERT INTO intake.bench_plain VALUES (:id, :body)"),
                    {"id": envelope.id, "body": envelope.to_bytes()},
                )
                await connection.commit()

    async def submissions() -> None:
        for envelope in items:
            data = ConsultationSubmitted.model_validate(envelope.data)
            async with sessions.begin() as session:
                await intake_handlers.submit_consultation(
                    session, data, correlation_id=envelope.correlation_id, idempotency_key=None
                )

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=0)
    await producer.start()

    async def raw_produce() -> None:
        futures = [
            await producer.send(f"{consultations(hub)}.raw", e.to_bytes(), key=e.subject.encode()) for e in items
        ]
        await asyncio.gather(*futures)

    metrics = ServiceMetrics("bench", CollectorRegistry())
    broker = kafka.create_broker(settings, service="bench", metrics=metrics)
    await broker.connect()
    relay = outbox.Relay(
        table=intake_tables.outbox_table,
        sessions=sessions,
        metrics=metrics,
        publish=kafka.outbox_publisher(broker, metadata_timeout_s=5),
        reachable=kafka.reachable(broker),
        batch_size=500,
        max_attempts=5,
        retry_backoff=poll.Backoff(0.05, 1.0),
    )

    async def drain() -> None:
        published = 0
        while published < N:
            batch = await relay.relay_once()
            if batch == 0:
                raise RuntimeError(f"outbox relay stopped after {published} of {N} rows")
            published += batch

    try:
        plain = await timed(plain_inserts)
        intake = await timed(submissions)
        raw = await timed(raw_produce)
        relayed = await timed(drain)
    finally:
        await producer.stop()
        await broker.stop()
        await engine.dispose()
    return [
        Result("intake: consultation + outbox row, one tx each", "plain INSERT, one tx each", intake, plain),
        Result("outbox relay → Kafka (batches of 500)", "raw aiokafka produce", relayed, raw),
    ]


async def bench_consume(url: str, hub: str, bootstrap: str) -> list[Result]:
    topic = consultations(hub)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{hub}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()

    async def raw_consume() -> None:
        seen = 0
        deadline = time.monotonic() + 120
        while seen < N:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer saw {seen} of {N} records in 120 s")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                seen += len(batch)
        await consumer.commit()

    raw = await timed(raw_consume)
    await consumer.stop()

    settings = MatchingSettings(
        database_url=url,
        kafka_bootstrap_servers=bootstrap,
        consultation_topic_pattern=rf"^{topic.replace('.', chr(92) + '.')}$",
        consumer_group_suffix=f".{hub}",
        log_json=False,
        log_level="WARNING",
        auth_public_key=auth.public_pem(auth.PrivateKey.generate().public_key()),  # no staff requests here
    )
    app = create_matching(settings)
    registry = app.state.runtime.registry

    def applied() -> float:
        return (
            registry.get_sample_value(
                "hubnet_matching_events_total", {"type": ConsultationSubmitted.event_type, "outcome": "applied"}
            )
            or 0.0
        )

    async with app.router.lifespan_context(app):
        # Timed from the first applied event, so group join and start-up are not counted.
        await wait_for(lambda: _reached(applied, 1), timeout=60, interval=0.001, what="first event applied")
        started, first = time.perf_counter(), applied()
        await wait_for(lambda: _reached(applied, N), timeout=300, interval=0.005, what="all events applied")
        applied_rate = (N - first) / (time.perf_counter() - started)
    return [Result("matching: policy + inbox + effect + outbox, batched", "raw aiokafka consume", applied_rate, raw)]


async def _reached(counter: Callable[[], float], target: int) -> bool:
    return counter() >= target


async def main() -> None:
    env = stack_env()
    async with scratch(env) as (url, hub, bootstrap):
        results = await bench_outbox(url, hub, bootstrap)
        results += await bench_consume(url, hub, bootstrap)
    table = Table(title=f"hubnet bench — {N} messages each, same run, loopback")
    for column in ("path", "msg/s", "baseline", "baseline msg/s", "ratio"):
        table.add_column(column, justify="right" if "/s" in column or column == "ratio" else "left")
    for result in results:
        table.add_row(
            result.name,
            f"{result.rate:,.0f}",
            result.baseline,
            f"{result.baseline_rate:,.0f}",
            f"{result.rate / result.baseline_rate:.2f}",
        )
    Console(width=140).print(table)
    out = ROOT / ".local" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps([r.__dict__ for r in results], indent=2), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
