"""Rebuilding reporting's views from the log, on the real broker and database: into a shadow schema while
the live consumer goes on, then swapped; the rebuilt views equal the live ones."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from rich.console import Console
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting import rebuild, tables
from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared import db, kafka
from shared.contract import Envelope, new_envelope
from shared.contract.consultation import ConsultationScreened, NoteAdded, NotePersonal
from shared.contract.vocabulary import ScreeningDecision
from tests.integration import events
from tests.integration.conftest import Infra, TestHub, running
from tests.support import key_for_partition, produce_with_undecodable_header_name, wait_for

CONSULTATIONS = 300


async def publish(infra: Infra, hub: TestHub, count: int) -> None:
    """Submissions, and for every third a screening and a note, as intake publishes them."""
    envelopes: list[Envelope] = []
    for index in range(count):
        submitted = events.submitted(hub.id)
        later = []
        if index % 3 == 0:
            consultation_id = uuid.UUID(submitted.subject)
            now = datetime.now(UTC)
            later = [
                ConsultationScreened(
                    consultation_id=consultation_id,
                    screened_at=now,
                    decision=ScreeningDecision.ACCEPTED,
                    recorded_by="screener@hub.example.jp",
                ),
                NoteAdded(
                    consultation_id=consultation_id,
                    note_id=uuid.uuid4(),
                    noted_at=now,
                    recorded_by="screener@hub.example.jp",
                    personal=NotePersonal(text=f"メモ {index}"),
                ),
            ]
        envelopes += [submitted] + [
            new_envelope(data, source="/hubnet/intake", hub=hub.id, subject=data.subject, causation=submitted)
            for data in later
        ]
    await send(infra.bootstrap, hub.topic, envelopes)


async def send(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    """Each envelope as a record, keyed and with the headers intake's relay gives it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send(
                topic, envelope.to_bytes(), key=envelope.subject.encode(), headers=kafka.record_headers(envelope.type)
            )
        await producer.flush()
    finally:
        await producer.stop()


async def inbox_holds_the_timeline(engine: AsyncEngine) -> bool:
    """The inbox claims exactly the events the timeline holds (the rebuild fills it from the timeline)."""
    async with engine.connect() as connection:  # one statement: one snapshot, while the live consumer goes on
        unmatched, claimed = (
            await connection.execute(
                text(
                    "SELECT count(*) FILTER (WHERE i.event_id IS NULL OR t.event_id IS NULL), count(i.event_id) "
                    "FROM reporting.inbox i FULL JOIN reporting.timeline t ON t.event_id = i.event_id"
                )
            )
        ).one()
    return bool(unmatched == 0 and claimed > 0)


async def test_rebuild_equals_the_live_views_and_swaps_while_the_live_consumer_goes_on(
    infra: Infra, hub: TestHub, service_settings: dict[str, Any]
) -> None:
    settings = ReportingSettings(**service_settings)
    app = create_app(settings)
    engine = db.create_engine(settings, application_name="test")
    quiet = Console(quiet=True)

    async def projected(count: int) -> bool:
        async with engine.connect() as connection:
            found = await connection.scalar(select(func.count()).select_from(tables.ConsultationView))
        return found == count

    try:
        async with running(app):
            await publish(infra, hub, CONSULTATIONS)
            await wait_for(lambda: projected(CONSULTATIONS), timeout=60, what="the live views")

            checked = await rebuild.rebuild(settings, check_only=True, workers=3, console=quiet)
            assert checked.workers == 3
            assert not checked.careful
            assert not checked.swapped
            assert checked.equal, (checked.live, checked.rebuilt)
            assert checked.rebuilt["consultations"].rows == CONSULTATIONS
            assert checked.rebuilt["timeline"].rows == CONSULTATIONS + 2 * (CONSULTATIONS // 3)

            # More events arrive while the next rebuild replays and swaps: none is lost or applied twice.
            await publish(infra, hub, 60)
            swapped = await rebuild.rebuild(settings, console=quiet)
            assert swapped.swapped
            assert await inbox_holds_the_timeline(engine), "a redelivered event is found claimed, after the swap too"
            await publish(infra, hub, 30)
            await wait_for(lambda: projected(CONSULTATIONS + 90), timeout=60, what="events after the swap, live")

        after = await rebuild.rebuild(settings, check_only=True, console=quiet)
        assert after.equal, (after.live, after.rebuilt)
        assert after.live["consultations"].rows == CONSULTATIONS + 90
    finally:
        await engine.dispose()


async def test_a_row_the_database_refuses_makes_the_rebuild_careful_and_still_equal(
    infra: Infra, hub: TestHub, service_settings: dict[str, Any]
) -> None:
    """A note whose text PostgreSQL cannot store (a NUL): the live consumer passes it over alone; the
    rebuild's COPY is refused, and it replays the careful way, passing over the same event."""
    settings = ReportingSettings(**service_settings)
    app = create_app(settings)
    engine = db.create_engine(settings, application_name="test")
    submitted = events.submitted(hub.id)
    consultation_id = uuid.UUID(submitted.subject)
    refused = NoteAdded(
        consultation_id=consultation_id,
        note_id=uuid.uuid4(),
        noted_at=datetime.now(UTC),
        recorded_by="screener@hub.example.jp",
        personal=NotePersonal(text="a\x00b"),
    )
    kept = ConsultationScreened(
        consultation_id=consultation_id,
        screened_at=datetime.now(UTC),
        decision=ScreeningDecision.ACCEPTED,
        recorded_by="screener@hub.example.jp",
    )
    caused = [
        new_envelope(data, source="/hubnet/intake", hub=hub.id, subject=data.subject, causation=submitted)
        for data in (refused, kept)
    ]
    await send(infra.bootstrap, hub.topic, [submitted, *caused])

    async def screened() -> bool:
        async with engine.connect() as connection:
            status = await connection.scalar(
                select(tables.ConsultationView.status).where(tables.ConsultationView.id == consultation_id)
            )
        return status == "in_support"

    try:
        async with running(app):
            await wait_for(screened, timeout=60, what="the screening after the refused note, live")
        checked = await rebuild.rebuild(settings, check_only=True, workers=2, console=Console(quiet=True))
        assert checked.careful, "a worker's COPY was refused, and the whole log replayed the careful way"
        assert checked.equal, (checked.live, checked.rebuilt)
        assert checked.rebuilt["timeline"].rows == 2
    finally:
        await engine.dispose()


async def test_an_unreadable_record_is_passed_over_by_the_rebuild_as_by_the_live_consumer(
    infra: Infra, hub: TestHub, service_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record aiokafka cannot decode, behind a few hundred others in its partition: the live consumer
    dead-letters it, the rebuild passes over it and equals the live views. Reading up to it record by record
    hands the records over from one fetch: a seek per record would fetch the partition again for each
    (up to `FETCH_BYTES` every time, minutes and gigabytes on a long log)."""
    settings = ReportingSettings(**service_settings)
    app = create_app(settings)
    engine = db.create_engine(settings, application_name="test")
    await publish(infra, hub, CONSULTATIONS)
    undecodable = events.submitted(hub.id)
    await produce_with_undecodable_header_name(
        infra.bootstrap, hub.topic, undecodable.to_bytes(), key=key_for_partition(0, 3), partition=0
    )
    await publish(infra, hub, 30)

    async def projected() -> bool:
        async with engine.connect() as connection:
            found = await connection.scalar(select(func.count()).select_from(tables.ConsultationView))
        return found == CONSULTATIONS + 30

    fetches = 0
    send = AIOKafkaClient.send

    async def counted(client: AIOKafkaClient, node_id: int, request: Any, **options: Any) -> Any:
        nonlocal fetches
        fetches += isinstance(request, FetchRequest)
        return await send(client, node_id, request, **options)

    try:
        async with running(app):
            await wait_for(projected, timeout=60, what="the live views, past the unreadable record")
        monkeypatch.setattr(AIOKafkaClient, "send", counted)
        checked = await rebuild.rebuild(settings, check_only=True, workers=1, console=Console(quiet=True))
        assert checked.equal, (checked.live, checked.rebuilt)
        assert checked.rebuilt["consultations"].rows == CONSULTATIONS + 30, "the unreadable one passed over"
        assert fetches <= 20, f"{fetches} fetches to read {checked.events} events of 3 partitions"
    finally:
        await engine.dispose()


def _worker_processes() -> list[int]:
    """This process's rebuild workers (spawned interpreters; not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


async def test_a_worker_killed_makes_the_rebuild_careful_and_complete(
    infra: Infra, hub: TestHub, service_settings: dict[str, Any]
) -> None:
    """A worker process killed (as the kernel kills one out of memory) while it starts: the rebuild does not
    fail, it replays the whole log the careful way, in this process."""
    settings = ReportingSettings(**service_settings)
    await publish(infra, hub, 60)
    rebuilding = asyncio.ensure_future(
        rebuild.rebuild(settings, check_only=True, workers=2, console=Console(quiet=True))
    )

    async def killed() -> bool:
        for pid in _worker_processes():  # a fresh interpreter takes a second to import: time enough
            os.kill(pid, signal.SIGKILL)
            return True
        return rebuilding.done()

    await wait_for(killed, timeout=60, interval=0.02, what="a rebuild worker to kill")
    outcome = await asyncio.wait_for(rebuilding, timeout=120)
    assert outcome.careful, "the lost worker's part was replayed the careful way"
    assert outcome.rebuilt["consultations"].rows == 60
    assert outcome.rebuilt["timeline"].rows == 60 + 2 * 20
