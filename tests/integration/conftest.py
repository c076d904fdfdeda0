"""Integration fixtures: a fresh database and fresh topics per test, on the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared import migrations
from shared.contract.topics import consultations, dead_letter
from tests.support import stack_env

SERVICES = ("intake", "matching", "notify", "reporting")
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Infra:
    database_url: str
    bootstrap: str
    env: dict[str, str]


@dataclass(frozen=True)
class TestHub:
    __test__ = False  # not a test class, despite the name

    id: str
    topic: str
    hubs_file: Path
    group_suffix: str

    def dead_letter_topic(self, group: str) -> str:
        return dead_letter(group + self.group_suffix)


@pytest.fixture(scope="session")
def infra() -> Infra:
    env = stack_env()
    return Infra(env["HUBNET_DATABASE_URL"], env["HUBNET_KAFKA_BOOTSTRAP_SERVERS"], env)


def _database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin_execute(url: str, *statements: str) -> None:
    engine = create_async_engine(_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def template_database(infra: Infra) -> AsyncIterator[str]:
    """All four schemas migrated once; each test then clones it (CREATE DATABASE ... TEMPLATE)."""
    name = f"hubnet_template_{uuid.uuid4().hex[:8]}"
    await _admin_execute(infra.database_url, f'CREATE DATABASE "{name}"')
    url = _database(infra.database_url, name)
    for service in SERVICES:
        await asyncio.to_thread(migrations.upgrade, ROOT / "services" / service / "migrations", url)
    yield name
    await _admin_execute(infra.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(infra: Infra, template_database: str) -> AsyncIterator[str]:
    name = f"hubnet_test_{uuid.uuid4().hex[:10]}"
    await _admin_execute(infra.database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _database(infra.database_url, name)
    await _admin_execute(infra.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def hub(infra: Infra, tmp_path: Path) -> AsyncIterator[TestHub]:
    """A hub of this test's own: its consultation topic and its consumers' dead-letter topics."""
    hub_id = f"it-{uuid.uuid4().hex[:10]}"
    suffix = f".{hub_id}"
    hubs_file = tmp_path / "hubs.json"
    hubs_file.write_text(
        json.dumps(
            [{"id": hub_id, "name_ja": "試験窓口", "name_en": "Test hub", "operator_ja": "試験", "operator_en": "Test"}]
        ),
        encoding="utf-8",
    )
    test_hub = TestHub(hub_id, consultations(hub_id), hubs_file, suffix)
    topics = [test_hub.topic] + [test_hub.dead_letter_topic(f"hubnet.{s}") for s in SERVICES[1:]]
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 3 if t == test_hub.topic else 1, 1) for t in topics])
        yield test_hub
        await admin.delete_topics(topics)
    finally:
        await admin.close()


@pytest.fixture
def service_settings(infra: Infra, database_url: str, hub: TestHub) -> dict[str, Any]:
    """Keyword arguments for any service's settings, isolated to this test's database and hub."""
    return {
        "database_url": database_url,
        "kafka_bootstrap_servers": infra.bootstrap,
        "consultation_topic_pattern": rf"^{hub.topic.replace('.', chr(92) + '.')}$",
        "consumer_group_suffix": hub.group_suffix,
        "hubs_file": hub.hubs_file,
        "auth_public_key_file": infra.env["HUBNET_AUTH_PUBLIC_KEY_FILE"],
        "auth_private_key_file": infra.env["HUBNET_AUTH_PRIVATE_KEY_FILE"],  # intake issues tokens at sign-in
        "outbox_poll_interval_s": 0.05,
        "consumer_retry_backoff_s": 0.05,
        "log_json": False,
    }


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run an app's lifespan (broker, subscribers, relay, workers) in this event loop."""
    async with app.router.lifespan_context(app):
        yield app
