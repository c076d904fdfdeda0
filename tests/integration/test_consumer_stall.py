"""A missing table stalls the consumer, loudly, on the real broker and database; restoring it resumes the work.

The consumer classifies a missing table, column or schema (SQLSTATE 42P01, 42703, 3F000, …) as a deploy
that lacks a migration: it must neither skip nor dead-letter the events, but wait, set
`hubnet_<service>_consumer_stalled` to 1, log an error, and let `/healthz` fail once fetched records have
waited past `consumer_stall_timeout_s`, so an orchestrator notices. Once the table is back, every event is
applied exactly once and the alerts clear.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.matching import SERVICE
from services.matching import tables as matching_tables
from services.matching.app import create_app
from services.matching.settings import MatchingSettings
from tests.integration import events
from tests.integration.conftest import Infra, TestHub, running
from tests.support import committed_offsets, counter, end_offsets, produce, wait_for

SUBMITTED = "hubnet.consultation.submitted.v1"
EVENTS = "hubnet_matching_events_total"
STALLED = "hubnet_matching_consumer_stalled"
RETRIES = "hubnet_matching_consumer_retries_total"
STALL_TIMEOUT_S = 2.0


async def _execute(database_url: str, *statements: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _scalar(database_url: str, statement: Any) -> Any:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(statement)).scalar_one()
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "table",
    [
        pytest.param("proposals", id="a-table-the-handler-writes"),
        pytest.param("inbox", id="the-consumers-inbox"),
    ],
)
async def test_missing_table_stalls_without_dead_letters_and_fails_liveness_then_resumes_exactly_once(
    infra: Infra,
    hub: TestHub,
    database_url: str,
    service_settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    table: str,
) -> None:
    """Proves: the stall gauge is 1 and an error log names SQLSTATE 42P01 while the table is missing; nothing is
    applied or dead-lettered meanwhile; `/healthz` answers 503 past the stall timeout; after the table is
    restored every event is applied once (one proposal and one staged MatchProposed each, no duplicate), all
    offsets are committed, the gauge is 0 and `/healthz` answers 200 again."""
    schema = SERVICE.schema
    await _execute(database_url, f'ALTER TABLE {schema}."{table}" RENAME TO "{table}_moved_away"')
    sent = [events.submitted(hub.id) for _ in range(9)]  # keyed by consultation: spread over the 3 partitions
    placed = await produce(infra.bootstrap, hub.topic, [(e.subject.encode(), e.to_bytes()) for e in sent])
    expected_offsets = {partition: offset + 1 for partition, offset in placed}  # the last record of each, plus one
    assert len(expected_offsets) > 1, "events on more than one partition"
    group = SERVICE.consumer_group + hub.group_suffix
    dead_letter_topic = hub.dead_letter_topic(SERVICE.consumer_group)

    settings = MatchingSettings(
        **service_settings, consumer_stall_timeout_s=STALL_TIMEOUT_S, consumer_retry_backoff_cap_s=0.5
    )
    app = create_app(settings)
    registry = app.state.runtime.registry
    caplog.set_level(logging.ERROR, logger="shared.consumer")
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://matching") as client,
    ):

        async def healthz(status: int) -> bool:
            return (await client.get("/healthz")).status_code == status

        async def stalled() -> bool:
            return bool(registry.get_sample_value(STALLED) == 1)

        await wait_for(stalled, timeout=30, what="the stalled gauge at 1")
        assert await healthz(200), "fetched records have not yet waited past the stall timeout"
        await wait_for(lambda: healthz(503), timeout=STALL_TIMEOUT_S + 10, what="/healthz failing")
        answer = (await client.get("/healthz")).json()
        assert answer == {"status": "stalled", "consumers": group}

        assert counter(registry, RETRIES, reason="schema") >= 1
        for outcome in ("applied", "dead_lettered", "retried", "duplicate"):
            assert counter(registry, EVENTS, type=SUBMITTED, outcome=outcome) == 0, outcome
        alerts = [r for r in caplog.records if r.levelno == logging.ERROR and "stalled" in r.getMessage()]
        assert alerts, "an error log says the consumer stalled"
        assert "SQLSTATE 42P01" in alerts[0].getMessage(), alerts[0].getMessage()
        assert "hanako" not in alerts[0].getMessage(), "no statement parameters in the alert"
        assert (await committed_offsets(infra.bootstrap, group, hub.topic)) == {}, "no offset moved while stalled"

        await _execute(database_url, f'ALTER TABLE {schema}."{table}_moved_away" RENAME TO "{table}"')

        async def resumed() -> bool:
            applied = counter(registry, EVENTS, type=SUBMITTED, outcome="applied") == len(sent)
            committed = await committed_offsets(infra.bootstrap, group, hub.topic)
            # At least: the MatchProposed events matching publishes go to the same topic, and it reads past them.
            past = all(committed.get(partition, 0) >= offset for partition, offset in expected_offsets.items())
            return applied and past and registry.get_sample_value(STALLED) == 0

        await wait_for(resumed, timeout=30, what="every event applied and committed, the gauge back at 0")
        await wait_for(lambda: healthz(200), timeout=5, what="/healthz passing again")

    assert counter(registry, EVENTS, type=SUBMITTED, outcome="duplicate") == 0
    assert counter(registry, EVENTS, type=SUBMITTED, outcome="dead_lettered") == 0
    assert sum((await end_offsets(infra.bootstrap, dead_letter_topic)).values()) == 0, "nothing dead-lettered"
    proposals = select(matching_tables.Proposal.consultation_id)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            proposed = [str(row[0]) for row in await connection.execute(proposals)]
    finally:
        await engine.dispose()
    assert sorted(proposed) == sorted(e.subject for e in sent), "one proposal per event"
    inbox = select(func.count()).select_from(matching_tables.inbox_table)
    assert await _scalar(database_url, inbox) == len(sent)
    staged = select(func.count()).select_from(matching_tables.outbox_table)
    assert await _scalar(database_url, staged) == len(sent), "one MatchProposed staged per event"
