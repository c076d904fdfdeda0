"""`make bench`: hubnet's paths against raw baselines measured in the same run, reported as ratios.

Needs a running stack (`hubnet stack up --only postgres,kafka`); uses a database and topics of its own,
dropped afterwards. Bounded: N messages per measurement (HUBNET_BENCH_N, default 10000), loopback only,
every wait has a deadline and says what it was waiting for, and the whole run has one too
(HUBNET_BENCH_TIMEOUT_S, default 1200). Last, reporting's rebuild of a generated log (`tests.bench.rebuild`,
HUBNET_BENCH_REBUILD_EVENTS, default 1,000,000).

The events flow as in production: intake stages N consultations, the relay publishes them (the relay and
its raw baseline: best of ROUNDS rounds of N fresh records each), matching consumes all of them and
publishes as many proposals, then notify and reporting each consume every record of the topic. Each
consumer is timed from its first handled event to its last, and so is its baseline: a raw aiokafka
consumer that writes each fetched batch with one `INSERT … SELECT FROM unnest(…) ON CONFLICT` into a
table as wide as the service's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table
from sqlalchemy import Column, MetaData, Text, text
from sqlalchemy import Table as SqlTable
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.intake import handlers as intake_handlers
from services.intake import tables as intake_tables
from services.matching import tables as matching_tables
from services.matching.app import create_app as create_matching
from services.matching.settings import MatchingSettings
from services.notify import tables as notify_tables
from services.notify.app import create_app as create_notify
from services.notify.settings import NotifySettings
from services.reporting import tables as reporting_tables
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from shared import auth, db, errors, kafka, migrations, outbox, poll
from shared.contract.consultation import ConsultationSubmitted
from shared.contract.topics import consultations, dead_letter
from shared.observability import ServiceMetrics
from shared.runtime import Runtime, tune_gc
from shared.settings import CommonSettings
from tests.bench import rebuild
from tests.integration import events
from tests.support import stack_env, wait_for

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("HUBNET_BENCH_N", "10000"))
WARM_UP = 100
ROUNDS = 3  # the relay and its baseline: best of this many
TIMEOUT_S = float(os.environ.get("HUBNET_BENCH_TIMEOUT_S", "1200"))
SERVICES = ("intake", "matching", "notify", "reporting")
HANDLED = ("applied", "duplicate", "ignored", "dead_lettered", "unreadable")


@dataclass
class Result:
    name: str
    baseline: str
    rate: float
    baseline_rate: float
    target: float | None = None
    target_rate: float | None = None
    """An absolute target too (events/s), where the issue sets one."""

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline_rate


@dataclass(frozen=True)
class Scratch:
    url: str
    hub: str
    bootstrap: str

    @property
    def topic(self) -> str:
        return consultations(self.hub)


async def timed(count: int, work: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await work()
    return count / (time.perf_counter() - started)


@asynccontextmanager
async def scratch(env: dict[str, str]) -> AsyncIterator[Scratch]:
    """A database with every service's schema, and a hub of the bench's own (its topics)."""
    url = env["HUBNET_DATABASE_URL"]
    name = f"hubnet_bench_{uuid.uuid4().hex[:8]}"
    admin_engine = create_async_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin_engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    bench_url = make_url(url).set(database=name).render_as_string(hide_password=False)
    for service in SERVICES:
        await asyncio.to_thread(migrations.upgrade, ROOT / "services" / service / "migrations", bench_url)
    hub = f"bench-{uuid.uuid4().hex[:6]}"
    topics = [consultations(hub), f"{consultations(hub)}.raw"]
    topics += [dead_letter(f"hubnet.{service}.{hub}") for service in SERVICES[1:]]
    admin = AIOKafkaAdminClient(bootstrap_servers=env["HUBNET_KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    await admin.create_topics([NewTopic(t, 6, 1) for t in topics])
    try:
        yield Scratch(bench_url, hub, env["HUBNET_KAFKA_BOOTSTRAP_SERVERS"])
    finally:
        await admin.delete_topics(topics)
        await admin.close()
        await _drop_database(admin_engine, name)
        await admin_engine.dispose()


async def _drop_database(admin_engine: AsyncEngine, name: str) -> None:
    """Drop the bench's database. An autovacuum worker busy in it (the bench churns tables) cannot be
    terminated by a non-superuser, so the drop is retried for a while; then the database is left
    behind with a warning rather than the run's results lost."""
    for attempt in range(60):
        try:
            async with admin_engine.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError as error:
            if attempt == 59:
                print(
                    f"bench: could not drop database {name} ({errors.describe(error)}); drop it later", file=sys.stderr
                )
                return
            await asyncio.sleep(1)


async def bench_outbox(s: Scratch) -> list[Result]:
    """Intake's use case against a plain insert; the relay against a raw produce of the same records.
    Each path first moves WARM_UP records untimed (connections, fresh partitions' leaders)."""
    settings = CommonSettings(database_url=s.url, kafka_bootstrap_servers=s.bootstrap)
    engine = db.create_engine(settings, application_name="bench")
    sessions = db.create_sessions(engine, info=outbox.binding(intake_tables.outbox_table, "/hubnet/intake"))
    warm = [events.submitted(s.hub) for _ in range(WARM_UP)]
    items = [events.submitted(s.hub) for _ in range(N)]

    async def plain_inserts() -> None:
        async with engine.connect() as connection:
            for envelope in items:
                await connection.execute(
                    text("INSERT INTO intake.bench_plain VALUES (:id, :body)"),
                    {"id": envelope.id, "body": envelope.to_bytes()},
                )
                await connection.commit()

    async def submit(envelopes: list[Any]) -> None:
        for envelope in envelopes:
            async with sessions.begin() as session:
                await intake_handlers.submit_consultation(
                    session,
                    events.submitted_data(envelope),
                    correlation_id=envelope.correlation_id,
                    idempotency_key=None,
                    link_ttl=timedelta(days=180),
                )

    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, enable_idempotence=True, linger_ms=0)
    relay_producer = kafka.OutboxProducer(settings, service="bench", metadata_timeout_s=5)

    async def raw_produce(envelopes: list[Any]) -> None:
        # The same records as the relay's: value, key and headers.
        futures = [
            await producer.send(
                f"{s.topic}.raw",
                e.to_bytes(),
                key=e.subject.encode(),
                headers=[("content-type", kafka.CONTENT_TYPE.encode()), (kafka.TYPE_HEADER, e.type.encode())],
            )
            for e in envelopes
        ]
        await asyncio.gather(*futures)

    metrics = ServiceMetrics("bench", CollectorRegistry())
    broker = kafka.create_broker(settings, service="bench", metrics=metrics)
    relay = outbox.Relay(
        table=intake_tables.outbox_table,
        sessions=sessions,
        metrics=metrics,
        publish=relay_producer.publish,
        reachable=kafka.reachable(broker),
        batch_size=settings.outbox_batch_size,
        lanes=settings.outbox_relay_lanes,
        max_attempts=5,
        retry_backoff=poll.Backoff(0.05, 1.0),
    )

    def published() -> int:
        return int(metrics.registry.get_sample_value("hubnet_bench_outbox_published_total") or 0)

    async def drain(count: int) -> None:
        deadline = time.monotonic() + 120
        while (before := published()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox relay published {before} of {count} rows in 120 s")
            await relay.work()  # what the service's relay loop runs
            if published() == before:
                raise RuntimeError(f"outbox relay stopped after {before} of {count} rows")

    try:
        await broker.connect()
        await producer.start()
        await relay_producer.start()
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE intake.bench_plain (id uuid, body bytea)"))
        await submit(warm)
        await drain(WARM_UP)
        await raw_produce(warm)
        plain = await timed(N, plain_inserts)
        intake = await timed(N, lambda: submit(items))
        raw = relayed = 0.0
        for round_ in range(ROUNDS):
            # The best of ROUNDS, each on fresh records; later rounds are staged as intake would, untimed.
            batch = items if round_ == 0 else [events.submitted(s.hub) for _ in range(N)]
            if round_ > 0:
                async with sessions.begin() as session:
                    await outbox.stage_all(session, [outbox.Staged(events.submitted_data(e), hub=s.hub) for e in batch])
            raw = max(raw, await timed(N, lambda: raw_produce(batch)))  # noqa: B023 (awaited at once)
            relayed = max(relayed, await timed(N, lambda: drain(WARM_UP + (round_ + 1) * N)))  # noqa: B023
    finally:
        await producer.stop()
        await relay_producer.stop()
        await broker.stop()
        await engine.dispose()
    return [
        Result("intake: consultation + outbox row, one tx each", "plain INSERT, one tx each", intake, plain),
        Result(
            f"outbox relay → Kafka ({settings.outbox_relay_lanes} rounds of ≤ {settings.outbox_batch_size})",
            "raw aiokafka produce",
            relayed,
            raw,
            0.7,
        ),
    ]


async def baseline_consume(s: Scratch, *, width: int, count: int, name: str) -> float:
    """Raw aiokafka consume of the topic's first `count` records, each fetched batch written with one
    `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` into a table of `width` text columns."""
    table = SqlTable(
        f"baseline_{name}",
        MetaData(schema="public"),
        Column("id", Text, primary_key=True),
        *(Column(f"c{i}", Text) for i in range(1, width)),
    )
    engine = db.create_engine(CommonSettings(database_url=s.url), application_name="bench-baseline")
    async with engine.begin() as connection:
        await connection.run_sync(table.metadata.create_all)
    sessions = db.create_sessions(engine)
    consumer = AIOKafkaConsumer(
        s.topic,
        bootstrap_servers=s.bootstrap,
        group_id=f"bench-baseline-{name}-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=CommonSettings().consumer_batch_size,  # the services' batch size
    )
    await consumer.start()
    seen, first, started = 0, 0, 0.0
    deadline = time.monotonic() + 120
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"baseline consumer ({name}) wrote {seen} of {count} records in 120 s")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                rows = [
                    {"id": f"{r.partition}:{r.offset}"}
                    | {f"c{i}": (r.value or b"").decode() if i == 1 else r.key.decode() for i in range(1, width)}
                    for r in batch
                    if r.key is not None
                ]
                async with sessions.begin() as session:
                    await db.insert_rows(session, table, rows, conflict=["id"])
                if not started:
                    started, first = time.perf_counter(), len(batch)
                seen += len(batch)
        await consumer.commit()
        rate: float = (seen - first) / (time.perf_counter() - started)
        return rate
    finally:
        await consumer.stop()
        await engine.dispose()


def service_settings(s: Scratch) -> dict[str, Any]:
    return {
        "database_url": s.url,
        "kafka_bootstrap_servers": s.bootstrap,
        "consultation_topic_pattern": rf"^{s.topic.replace('.', chr(92) + '.')}$",
        "consumer_group_suffix": f".{s.hub}",
        "log_json": False,
        "log_level": "WARNING",
        "auth_public_key": auth.public_pem(auth.PrivateKey.generate().public_key()),  # no staff requests here
    }


async def run_consumer(app: FastAPI, *, count: int, types: tuple[str, ...] | None = None) -> float:
    """Run a service until it has handled `count` events (of `types`, when given); the rate from its
    first handled event to the last, so start-up and the group join are not counted. Matching then
    relays what it staged (itself, or after the measurement when it runs with `outbox_relay` off), and
    the bench waits until all `count` proposals are published: the next consumers' input."""
    runtime: Runtime = app.state.runtime
    name = runtime.service.name
    family = f"hubnet_{name}_events_total"

    def handled() -> float:
        # Polled every few ms inside the process being measured: read the one counter, not the registry.
        return sum(
            sample.value
            for metric in runtime.metrics.events.collect()
            for sample in metric.samples
            if sample.name == family
            and sample.labels["outcome"] in HANDLED
            and (types is None or sample.labels["type"] in types)
        )

    async def reached(target: int) -> bool:
        return handled() >= target

    async with app.router.lifespan_context(app):
        await wait_for(lambda: reached(1), timeout=60, interval=0.001, what=f"{name}: first event handled")
        started, first = time.perf_counter(), handled()
        await wait_for(lambda: reached(count), timeout=240, interval=0.005, what=f"{name}: {count} events handled")
        rate = (count - first) / (time.perf_counter() - started)
        if name == "matching":
            published = f"hubnet_{name}_outbox_published_total"

            async def all_published() -> bool:
                if not runtime.settings.outbox_relay and runtime.relay is not None:
                    await runtime.relay.work()  # the relay's rounds, here rather than in a worker of its own
                return (runtime.registry.get_sample_value(published) or 0) >= count

            await wait_for(all_published, timeout=120, interval=0.01, what="matching's proposals published")
    return rate


async def bench_consumers(s: Scratch) -> list[Result]:
    submitted = WARM_UP + ROUNDS * N
    matching_baseline = await baseline_consume(
        s, width=_width(matching_tables.metadata, "proposals"), count=submitted, name="m"
    )
    # The consumer on its own, as notify's is measured without SMTP: its relay (measured on its own row
    # above) publishes what it staged once the measurement is over.
    matching = await run_consumer(
        create_matching(MatchingSettings(**service_settings(s), outbox_relay=False)),
        count=submitted,
        types=(ConsultationSubmitted.event_type,),
    )
    results = [
        Result(
            "matching consumer (roster, proposals, inbox, outbox staged)",
            "raw consume + batched INSERT",
            matching,
            matching_baseline,
            0.5,
        )
    ]

    every = 2 * submitted  # each consultation's submission and its proposal
    baseline = await baseline_consume(s, width=_width(notify_tables.metadata, "deliveries"), count=every, name="n")
    notify = await run_consumer(
        create_notify(NotifySettings(**service_settings(s), delivery_sending=False)), count=every
    )
    results.append(
        Result(
            "notify consumer (render, deliveries, inbox; no SMTP)",
            "raw consume + batched INSERT",
            notify,
            baseline,
            0.5,
        )
    )

    baseline = await baseline_consume(
        s, width=_width(reporting_tables.metadata, "consultations"), count=every, name="r"
    )
    reporting = await run_consumer(create_reporting(ReportingSettings(**service_settings(s))), count=every)
    results.append(
        Result("reporting consumer (views, timeline, inbox)", "raw consume + batched INSERT", reporting, baseline, 0.5)
    )

    # For the record, not a target: one matching process that consumes and relays at once (the default
    # deployment), over the same events again, its proposals cleared and a group of its own.
    engine = db.create_engine(CommonSettings(database_url=s.url), application_name="bench")
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE matching.proposals, matching.outbox"))
    await engine.dispose()
    settings = service_settings(s)
    settings["consumer_group_suffix"] += ".relaying"
    relaying = await run_consumer(
        create_matching(MatchingSettings(**settings)), count=submitted, types=(ConsultationSubmitted.event_type,)
    )
    results.append(
        Result(
            "matching consumer relaying in the same process (for the record)",
            "raw consume + batched INSERT",
            relaying,
            matching_baseline,
        )
    )
    return results


def _width(metadata: MetaData, table: str) -> int:
    return len(metadata.tables[f"{metadata.schema}.{table}"].columns)


def report(results: list[Result]) -> None:
    title = f"hubnet bench — {N:,} messages per measurement (relay: best of {ROUNDS}), same run, loopback"
    table = Table(title=title)
    for column in ("path", "msg/s", "baseline", "baseline msg/s", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("path", "baseline") else "right")
    for result in results:
        met = result.target is None or result.ratio >= result.target
        target = "" if result.target is None else f"≥ {result.target:.1f} {'✓' if met else '✗'}"
        if result.target_rate is not None:
            target += f", ≥ {result.target_rate:,.0f}/s {'✓' if result.rate >= result.target_rate else '✗'}"
        table.add_row(
            result.name,
            f"{result.rate:,.0f}",
            result.baseline,
            f"{result.baseline_rate:,.0f}",
            f"{result.ratio:.2f}",
            target,
        )
    Console(width=160).print(table)
    out = ROOT / ".local" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    payload = {"n": N, "results": [asdict(r) | {"ratio": r.ratio} for r in results]}
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"results: {out.relative_to(ROOT)}")


async def main() -> None:
    tune_gc()  # the services' collector settings, for their baselines in this process too
    env = stack_env()
    async with scratch(env) as s:
        results = await bench_outbox(s)
        results += await bench_consumers(s)
        rebuilt, baseline, what = await rebuild.bench_rebuild(s.url, s.bootstrap, service_settings(s))
        results.append(
            Result(
                f"reporting rebuild ({what}; replay, keys, indexes, swap)",
                "raw consume + COPY of the same rows, same indexes",
                rebuilt,
                baseline,
                0.5,
                rebuild.TARGET_RATE,
            )
        )
    report(results)


if __name__ == "__main__":
    try:
        # The event loop the services run on (uvicorn picks uvloop), for the services and their baselines alike.
        uvloop.run(asyncio.wait_for(main(), timeout=TIMEOUT_S))
    except (TimeoutError, AssertionError) as error:  # every bounded wait ends in one of these, with its reason
        print(f"bench: gave up ({error or f'the whole run exceeded {TIMEOUT_S:.0f} s'})", file=sys.stderr)
        sys.exit(1)
