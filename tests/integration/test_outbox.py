"""The outbox on the real database and broker: staged with the business change, relayed in key order."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import tables as intake_tables
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared import db, kafka, outbox, poll
from shared.contract import Envelope
from shared.contract.consultation import ConsultationSubmitted
from shared.observability import ServiceMetrics
from shared.settings import CommonSettings
from tests.integration import events
from tests.integration.conftest import Infra, TestHub, running
from tests.support import counter, read_topic, wait_for

REQUEST = {
    "language": "en",
    "applicant_kind": "academia",
    "organization": "Example University Hospital",
    "title": "Seeking a device development partner",
    "product_kind": "medical_device",
    "development_stage": "non_clinical",
    "topics": ["business_planning", "ip_strategy"],
    "contact_name": "Kenji Tanaka",
    "email": "kenji@example.ac.jp",
    "body": "We have a prototype catheter and need advice on IP and a business plan.",
}


async def test_submission_is_published_keyed_by_consultation_when_intake_accepts(
    infra: Infra, hub: TestHub, service_settings: dict[str, Any]
) -> None:
    app = create_app(IntakeSettings(**service_settings))
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://intake") as client:
        response = await client.post(
            f"/v1/hubs/{hub.id}/consultations",
            json=REQUEST,
            headers={"X-Correlation-ID": "5f0c8a9e-3b1d-4c2e-9f7a-6b5d4c3b2a19"},
        )
        assert response.status_code == 202, response.text
        consultation_id = response.json()["consultation_id"]
        [record] = await read_topic(infra.bootstrap, hub.topic, count=1, timeout=20)

    assert record.key == consultation_id.encode()
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    assert headers["hubnet-type"] == b"hubnet.consultation.submitted.v1"
    assert not [name for name in headers if name.startswith("ce_")], "structured mode: no ce_ headers"
    envelope = Envelope.model_validate_json(record.value)
    assert envelope.subject == consultation_id
    assert envelope.hub == hub.id
    assert str(envelope.correlation_id) == "5f0c8a9e-3b1d-4c2e-9f7a-6b5d4c3b2a19"
    assert envelope.data["personal"]["email"] == "kenji@example.ac.jp"
    assert envelope.data["topics"] == ["business_planning", "ip_strategy"]


async def test_repeated_submission_with_same_idempotency_key_creates_one_consultation(
    hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    app = create_app(IntakeSettings(**service_settings))
    transport = httpx.ASGITransport(app)
    url = f"/v1/hubs/{hub.id}/consultations"
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        sequential = [await client.post(url, json=REQUEST, headers={"Idempotency-Key": "form-1"}) for _ in range(2)]
        concurrent = await asyncio.gather(
            *(client.post(url, json=REQUEST, headers={"Idempotency-Key": "form-2"}) for _ in range(5))
        )
    for answers in (sequential, concurrent):
        assert [a.status_code for a in answers] == [202] * len(answers), [a.text for a in answers]
        assert len({a.json()["consultation_id"] for a in answers}) == 1
    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    async with engine.connect() as connection:
        count = (await connection.execute(select(func.count()).select_from(intake_tables.outbox_table))).scalar_one()
    await engine.dispose()
    assert count == 2, "one consultation per idempotency key"


async def test_competing_relays_publish_each_key_in_order_exactly_once(
    infra: Infra, hub: TestHub, database_url: str
) -> None:
    settings = CommonSettings(database_url=database_url, kafka_bootstrap_servers=infra.bootstrap)
    engine = db.create_engine(settings, application_name="test")
    sessions = db.create_sessions(engine, info=outbox.binding(intake_tables.outbox_table, "/hubnet/test"))
    keys = [uuid.uuid4() for _ in range(20)]
    per_key = 10
    async with sessions.begin() as session:
        for sequence in range(per_key):
            staged = []
            for key in keys:
                data = ConsultationSubmitted.model_validate(events.submitted(hub.id, key).data)
                staged.append(outbox.Staged(data.model_copy(update={"title": f"#{sequence}"}), hub=hub.id))
            await outbox.stage_all(session, staged)

    brokers = []
    producers = []
    relays = []
    all_metrics = []
    for _ in range(3):
        metrics = ServiceMetrics("test", CollectorRegistry())
        all_metrics.append(metrics)
        broker = kafka.create_broker(settings, service="test", metrics=metrics)
        await broker.connect()
        brokers.append(broker)
        producer = kafka.OutboxProducer(settings, service="test", metadata_timeout_s=2)
        producers.append(producer)
        relays.append(
            outbox.Relay(
                table=intake_tables.outbox_table,
                sessions=sessions,
                metrics=metrics,
                publish=producer.publish,
                reachable=kafka.reachable(broker),
                batch_size=7,
                max_attempts=5,
                retry_backoff=poll.Backoff(0.05, 0.5),
            )
        )
    tasks = [
        asyncio.create_task(poll.poll(relay.work, name="relay", idle_s=0.01, backoff=poll.Backoff(0.01, 0.1)))
        for relay in relays
    ]
    try:
        records = await read_topic(infra.bootstrap, hub.topic, count=len(keys) * per_key, timeout=60)
        await wait_for(lambda: _all_published(sessions), timeout=20, what="outbox drained")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for producer in producers:
            await producer.stop()
        for broker in brokers:
            await broker.stop()
        await engine.dispose()

    sequences: dict[bytes, list[str]] = defaultdict(list)
    for record in records:
        sequences[record.key].append(json.loads(record.value)["data"]["title"])
    assert len(records) == len(keys) * per_key
    assert all(titles == [f"#{n}" for n in range(per_key)] for titles in sequences.values()), sequences
    published = [counter(metrics.registry, "hubnet_test_outbox_published_total") for metrics in all_metrics]
    assert sum(published) == len(records)
    assert sum(1 for count in published if count > 0) >= 2, f"relays should have competed: {published}"


async def _all_published(sessions: async_sessionmaker[AsyncSession]) -> bool:
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count())
            .select_from(intake_tables.outbox_table)
            .where(intake_tables.outbox_table.c.published_at.is_(None))
        )
    return bool(pending == 0)


@asynccontextmanager
async def relaying(
    settings: CommonSettings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    lanes: int,
    retry_backoff: poll.Backoff,
    metadata_timeout_s: float,
) -> AsyncIterator[ServiceMetrics]:
    """One relay polling intake's outbox (batches of 10, parked after 3 attempts) until the block ends."""
    metrics = ServiceMetrics("test", CollectorRegistry())
    broker = kafka.create_broker(settings, service="test", metrics=metrics)
    await broker.connect()
    producer = kafka.OutboxProducer(settings, service="test", metadata_timeout_s=metadata_timeout_s)
    relay = outbox.Relay(
        table=intake_tables.outbox_table,
        sessions=sessions,
        metrics=metrics,
        publish=producer.publish,
        reachable=kafka.reachable(broker),
        batch_size=10,
        lanes=lanes,
        max_attempts=3,
        retry_backoff=retry_backoff,
    )
    task = asyncio.create_task(poll.poll(relay.work, name="relay", idle_s=0.02, backoff=poll.Backoff(0.01, 0.1)))
    try:
        yield metrics
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await broker.stop()


async def test_row_to_a_missing_topic_is_parked_and_listed_while_other_keys_flow(
    infra: Infra, hub: TestHub, database_url: str
) -> None:
    settings = CommonSettings(database_url=database_url, kafka_bootstrap_servers=infra.bootstrap)
    engine = db.create_engine(settings, application_name="test")
    sessions = db.create_sessions(engine, info=outbox.binding(intake_tables.outbox_table, "/hubnet/test"))
    lost_key, good_key = uuid.uuid4(), uuid.uuid4()
    async with sessions.begin() as session:
        await outbox.stage_all(
            session,
            [
                outbox.Staged(events.submitted_data(events.submitted(hub.id, lost_key)), hub=f"{hub.id}-gone"),
                outbox.Staged(events.submitted_data(events.submitted(hub.id, good_key)), hub=hub.id),
            ],
        )
    try:
        async with relaying(
            settings, sessions, lanes=1, retry_backoff=poll.Backoff(0.01, 0.05), metadata_timeout_s=0.5
        ) as metrics:
            [record] = await read_topic(infra.bootstrap, hub.topic, count=1, timeout=20)
            assert record.key == str(good_key).encode(), "the good key is not held back by the failing one"

            async def parked() -> list[outbox.Parked]:
                async with sessions() as session:
                    return await outbox.list_parked(session, intake_tables.outbox_table)

            [row] = await wait_for(parked, timeout=30, what="the row to a missing topic parked")
    finally:
        await engine.dispose()
    assert row.key == str(lost_key)
    assert row.attempts == 3
    assert row.last_error is not None
    assert "UnknownTopicOrPartitionError" in row.last_error
    assert counter(metrics.registry, "hubnet_test_outbox_parked_total") == 1

    listing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.intake",
        "outbox",
        "parked",
        env={**os.environ, "HUBNET_DATABASE_URL": database_url, "HUBNET_LOG_JSON": "false"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(listing.communicate(), timeout=60)
    assert listing.returncode == 0, stderr.decode()
    assert str(lost_key) in stdout.decode()


async def test_failing_row_holds_back_only_its_own_key_until_parked(
    infra: Infra, hub: TestHub, database_url: str
) -> None:
    """Key K's first row cannot be published; K's second row waits for it (order), another key does not."""
    settings = CommonSettings(database_url=database_url, kafka_bootstrap_servers=infra.bootstrap)
    engine = db.create_engine(settings, application_name="test")
    sessions = db.create_sessions(engine, info=outbox.binding(intake_tables.outbox_table, "/hubnet/test"))
    stuck_key, other_key = uuid.uuid4(), uuid.uuid4()
    async with sessions.begin() as session:
        first, second, other = await outbox.stage_all(
            session,
            [
                outbox.Staged(events.submitted_data(events.submitted(hub.id, stuck_key)), hub=f"{hub.id}-gone"),
                outbox.Staged(events.submitted_data(events.submitted(hub.id, stuck_key)), hub=hub.id),
                outbox.Staged(events.submitted_data(events.submitted(hub.id, other_key)), hub=hub.id),
            ],
        )
    table = intake_tables.outbox_table
    async with relaying(settings, sessions, lanes=2, retry_backoff=poll.Backoff(0.3, 0.6), metadata_timeout_s=0.3):
        records = await read_topic(infra.bootstrap, hub.topic, count=2, timeout=30)

        async def second_marked() -> bool:
            # On the topic before its round committed: stopping the relay now would roll the mark back.
            async with sessions() as session:
                published = await session.scalar(select(table.c.published_at).where(table.c.event_id == second.id))
            return published is not None

        await wait_for(second_marked, timeout=10, what="the second row marked published")
    async with sessions() as session:
        rows = {
            row.event_id: row
            for row in await session.execute(
                select(table.c.event_id, table.c.published_at, table.c.parked_at, table.c.attempts)
            )
        }
    await engine.dispose()
    assert [json.loads(r.value)["id"] for r in records] == [str(other.id), str(second.id)]
    assert rows[first.id].parked_at is not None
    assert rows[first.id].attempts == 3
    assert rows[first.id].published_at is None
    assert rows[second.id].attempts == 0, "the later row of the stuck key was never tried before its head parked"
    assert rows[second.id].published_at >= rows[first.id].parked_at
    assert rows[other.id].published_at < rows[first.id].parked_at, "the other key was not held back"


async def test_relay_takes_a_trickle_in_one_round_and_a_backlog_in_every_lane(
    infra: Infra, hub: TestHub, database_url: str
) -> None:
    """A wake that finds a few rows costs one transaction; after a full batch the next wake runs every lane."""
    settings = CommonSettings(database_url=database_url, kafka_bootstrap_servers=infra.bootstrap)
    engine = db.create_engine(settings, application_name="test")
    sessions = db.create_sessions(engine, info=outbox.binding(intake_tables.outbox_table, "/hubnet/test"))
    metrics = ServiceMetrics("test", CollectorRegistry())
    broker = kafka.create_broker(settings, service="test", metrics=metrics)
    producer = kafka.OutboxProducer(settings, service="test", metadata_timeout_s=5)
    relay = outbox.Relay(
        table=intake_tables.outbox_table,
        sessions=sessions,
        metrics=metrics,
        publish=producer.publish,
        reachable=kafka.reachable(broker),
        batch_size=5,
        lanes=3,
        max_attempts=3,
        retry_backoff=poll.Backoff(0.01, 0.05),
    )

    def published() -> int:
        return int(counter(metrics.registry, "hubnet_test_outbox_published_total"))

    async def stage(count: int) -> None:
        async with sessions.begin() as session:
            await outbox.stage_all(
                session,
                [outbox.Staged(events.submitted_data(events.submitted(hub.id)), hub=hub.id) for _ in range(count)],
            )

    try:
        await broker.connect()
        await stage(3)
        assert await relay.work() is False, "a trickle is no backlog"
        assert published() == 3
        await stage(40)
        assert await relay.work() is True, "a full batch: more at once"
        assert published() == 3 + 5, "one lane while the last wake found no backlog"
        assert await relay.work() is True
        assert published() == 3 + 5 + 15, "every lane while there is a backlog"
    finally:
        await producer.stop()
        await broker.stop()
        await engine.dispose()
