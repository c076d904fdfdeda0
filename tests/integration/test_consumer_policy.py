"""The one consumer policy, on the real broker and database: effects once, dead letters, offsets after effects."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services.matching import SERVICE
from services.matching import tables as matching_tables
from services.matching.app import create_app
from services.matching.settings import MatchingSettings
from shared.consumer import on
from shared.contract import Envelope, Event, new_envelope
from shared.contract.consultation import (
    ConsultationScreened,
    ConsultationSubmitted,
    MatchProposed,
    NoteAdded,
    NotePersonal,
)
from shared.contract.vocabulary import ScreeningDecision
from shared.runtime import create_http_app, create_runtime
from tests.integration import events
from tests.integration.conftest import ROOT, Infra, TestHub, running
from tests.support import (
    committed_offsets,
    counter,
    produce_with_headers,
    produce_with_undecodable_header_name,
    read_topic,
    wait_for,
)

SUBMITTED = "hubnet.consultation.submitted.v1"
EVENTS = "hubnet_matching_events_total"


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, value, key=key)).offset for key, value in messages]
    finally:
        await producer.stop()


async def _count(database_url: str, statement: Any) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())
    finally:
        await engine.dispose()


def _partition_of(records: list[Any], key: bytes) -> TopicPartition:
    record = next(r for r in records if r.key == key)
    return TopicPartition(record.topic, record.partition)


async def test_event_is_applied_once_when_consumer_killed_after_effect_before_offset_commit(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    envelope = events.submitted(hub.id)
    key = envelope.subject.encode()
    [offset] = await _produce(infra.bootstrap, hub.topic, [(key, envelope.to_bytes())])
    group = SERVICE.consumer_group + hub.group_suffix

    crashing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.crashing_consumer",
        json.dumps(service_settings, default=str),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(crashing.wait(), timeout=90) == 9, "the consumer should die right after its effect"

    proposals = select(func.count()).select_from(matching_tables.Proposal)
    assert await _count(database_url, proposals) == 1, "the effect committed before the crash"
    partition = (await read_topic(infra.bootstrap, hub.topic, count=1, timeout=10))[0].partition
    assert (await committed_offsets(infra.bootstrap, group, hub.topic)).get(partition, 0) <= offset, (
        "offset not committed"
    )

    app = create_app(MatchingSettings(**service_settings))
    async with running(app):
        registry = app.state.runtime.registry

        async def redelivered_and_committed() -> bool:
            duplicates = counter(registry, EVENTS, type=SUBMITTED, outcome="duplicate")
            committed = (await committed_offsets(infra.bootstrap, group, hub.topic)).get(partition, 0)
            return duplicates == 1 and committed > offset

        await wait_for(redelivered_and_committed, timeout=60, what="redelivery recognised and offset committed")

    assert await _count(database_url, proposals) == 1
    staged = select(func.count()).select_from(matching_tables.outbox_table)
    assert await _count(database_url, staged) == 1, "MatchProposed staged exactly once"


async def test_malformed_messages_go_to_dead_letter_topic_and_next_message_is_processed(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    valid = events.submitted(hub.id)
    broken_payload = json.loads(valid.to_bytes())
    broken_payload["id"] = str(uuid.uuid4())
    del broken_payload["data"]["topics"]
    key = valid.subject.encode()  # one key: all three on one partition, in this order
    await _produce(
        infra.bootstrap,
        hub.topic,
        [
            (key, b"\xff not json at all"),
            (key, json.dumps(broken_payload).encode()),
            (key, valid.to_bytes()),
        ],
    )

    app = create_app(MatchingSettings(**service_settings))
    proposal = (
        select(func.count())
        .select_from(matching_tables.Proposal)
        .where(matching_tables.Proposal.consultation_id == uuid.UUID(valid.subject))
    )
    async with running(app):
        await wait_for(lambda: _count(database_url, proposal), timeout=60, what="the valid message applied")

    dead = await read_topic(infra.bootstrap, hub.dead_letter_topic(SERVICE.consumer_group), count=2, timeout=10)
    assert [record.value for record in dead] == [b"\xff not json at all", json.dumps(broken_payload).encode()]
    reasons = [dict(record.headers)["hubnet-dlt-reason"].decode() for record in dead]
    assert reasons[0].startswith("not a hubnet envelope")
    assert reasons[1].startswith(f"invalid {SUBMITTED} payload")
    assert "topics" in reasons[1]
    assert all(dict(record.headers)["hubnet-dlt-topic"].decode() == hub.topic for record in dead)
    assert all(record.key == key for record in dead)


async def test_same_event_delivered_twice_is_applied_once(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    envelope = events.submitted(hub.id)
    await _produce(infra.bootstrap, hub.topic, [(envelope.subject.encode(), envelope.to_bytes())] * 2)
    app = create_app(MatchingSettings(**service_settings))
    async with running(app):
        registry = app.state.runtime.registry

        async def both_seen() -> bool:
            applied = counter(registry, EVENTS, type=SUBMITTED, outcome="applied")
            return applied == 1 and counter(registry, EVENTS, type=SUBMITTED, outcome="duplicate") == 1

        await wait_for(both_seen, timeout=60, what="one applied and one duplicate")
    assert await _count(database_url, select(func.count()).select_from(matching_tables.Proposal)) == 1


async def test_failing_event_is_dead_lettered_and_its_batch_neighbours_are_applied(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    first, last = events.submitted(hub.id), events.submitted(hub.id)
    # Valid for its model, refused by PostgreSQL (a NUL in text): the database error, not the payload.
    clash = events.submitted(hub.id)
    clash = clash.model_copy(update={"data": {**clash.data, "hub": "poison\u0000hub"}})
    key = b"one-partition"
    await _produce(infra.bootstrap, hub.topic, [(key, e.to_bytes()) for e in (first, clash, last)])

    app = create_app(MatchingSettings(**service_settings))
    async with running(app):
        registry = app.state.runtime.registry

        async def settled() -> bool:
            applied = counter(registry, EVENTS, type=SUBMITTED, outcome="applied")
            return applied == 2 and counter(registry, EVENTS, type=SUBMITTED, outcome="dead_lettered") == 1

        await wait_for(settled, timeout=60, what="two applied, one dead-lettered")

    proposals = select(matching_tables.Proposal.consultation_id)
    engine = create_async_engine(database_url)
    async with engine.connect() as connection:
        applied_ids = {str(row[0]) for row in await connection.execute(proposals)}
    await engine.dispose()
    assert applied_ids == {first.subject, last.subject}
    [dead] = await read_topic(infra.bootstrap, hub.dead_letter_topic(SERVICE.consumer_group), count=1, timeout=10)
    assert json.loads(dead.value)["id"] == str(clash.id)
    reason = dict(dead.headers)["hubnet-dlt-reason"].decode()
    assert "SQLSTATE 22" in reason, reason  # data exception: the type and code are named
    assert "poison" not in reason, "no statement parameters in a dead-letter reason"


async def test_record_whose_header_name_is_not_utf8_is_dead_lettered_by_position_and_the_partition_moves_on(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    undecodable, after = events.submitted(hub.id), events.submitted(hub.id)
    written = await produce_with_undecodable_header_name(
        infra.bootstrap, hub.topic, undecodable.to_bytes(), key=undecodable.subject.encode(), partition=0
    )
    await produce_with_headers(infra.bootstrap, hub.topic, after.to_bytes(), key=after.subject.encode(), partition=0)

    def proposals_for(envelope: Any) -> Any:
        consultation_id = uuid.UUID(envelope.subject)
        proposal = matching_tables.Proposal
        return select(func.count()).select_from(proposal).where(proposal.consultation_id == consultation_id)

    app = create_app(MatchingSettings(**service_settings))
    async with running(app):
        await wait_for(
            lambda: _count(database_url, proposals_for(after)), timeout=60, what="the record after it applied"
        )

    [dead] = await read_topic(infra.bootstrap, hub.dead_letter_topic(SERVICE.consumer_group), count=1, timeout=10)
    headers = dict(dead.headers)
    assert headers["hubnet-dlt-reason"] == b"unreadable record: UnicodeDecodeError"
    assert headers["hubnet-dlt-topic"].decode() == hub.topic
    assert (headers["hubnet-dlt-partition"], headers["hubnet-dlt-offset"]) == (b"0", str(written.offset).encode())
    assert await _count(database_url, proposals_for(undecodable)) == 0, "aiokafka cannot read it, so it is not applied"


async def test_each_consultations_events_apply_in_order_while_batches_and_lanes_overlap(
    infra: Infra, hub: TestHub, service_settings: dict[str, Any]
) -> None:
    """Proves: with batches of a few records (a consultation's events spread over several), two batches in flight
    and lanes that end in random order, every consultation's events are applied in the order they were written,
    each once."""
    rng = random.Random(7)
    lifecycles = []
    for _ in range(40):
        submitted = events.submitted(hub.id)
        consultation_id = uuid.UUID(submitted.subject)
        later = [
            ConsultationScreened(
                consultation_id=consultation_id,
                screened_at=datetime.now(UTC),
                decision=ScreeningDecision.ACCEPTED,
                recorded_by="screener",
            ),
            *(
                NoteAdded(
                    consultation_id=consultation_id,
                    note_id=uuid.uuid4(),
                    noted_at=datetime.now(UTC),
                    recorded_by="screener",
                    personal=NotePersonal(text=f"note {n}"),
                )
                for n in range(3)
            ),
        ]
        lifecycles.append(
            [
                submitted,
                *(
                    new_envelope(d, source="/hubnet/intake", hub=hub.id, subject=submitted.subject, causation=submitted)
                    for d in later
                ),
            ]
        )
    written: list[Envelope] = []
    while any(lifecycles):  # consultations interleaved at random, each one's events in its order
        written.append(rng.choice([lifecycle for lifecycle in lifecycles if lifecycle]).pop(0))
    await _produce(infra.bootstrap, hub.topic, [(e.subject.encode(), e.to_bytes()) for e in written])

    applied: list[uuid.UUID] = []

    async def record(_: AsyncSession, batch: Sequence[Event[Any]]) -> None:
        await asyncio.sleep(rng.random() / 50)  # lanes and batches end in no particular order
        applied.extend(event.envelope.id for event in batch)

    settings = MatchingSettings(**service_settings | {"consumer_batch_size": 7, "consumer_lanes": 2})
    runtime = create_runtime(SERVICE, settings, matching_tables.metadata)
    runtime.consume(on(ConsultationSubmitted, record), on(ConsultationScreened, record), on(NoteAdded, record))
    async with running(create_http_app(runtime, title="ordering", description="")):
        await wait_for(lambda: _at_least(len(applied), len(written)), timeout=60, what="every event applied")
    assert len(applied) == len(set(applied)) == len(written), "each event applied once"
    by_subject: dict[str, list[uuid.UUID]] = {}
    for envelope in written:
        by_subject.setdefault(envelope.subject, []).append(envelope.id)
    place = {event_id: index for index, event_id in enumerate(applied)}
    for subject, ids in by_subject.items():
        assert sorted(ids, key=place.__getitem__) == ids, f"{subject}: applied out of order"


async def _at_least(value: int, target: int) -> bool:
    return value >= target


async def test_a_replica_without_the_relay_stages_and_a_replica_with_it_publishes(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    """Proves: with `outbox_relay` off a process applies events and stages what they cause, and publishes
    nothing; a replica of the service that relays publishes it."""
    envelope = events.submitted(hub.id)
    await _produce(infra.bootstrap, hub.topic, [(envelope.subject.encode(), envelope.to_bytes())])
    staging = create_app(MatchingSettings(**service_settings, outbox_relay=False))
    unpublished = select(func.count()).where(matching_tables.outbox_table.c.published_at.is_(None))
    async with running(staging):
        registry = staging.state.runtime.registry

        async def applied() -> bool:
            return counter(registry, EVENTS, type=SUBMITTED, outcome="applied") == 1

        await wait_for(applied, timeout=60, what="the submission applied")
        await asyncio.sleep(1)  # five poll intervals of a relay, had one run
        assert counter(registry, "hubnet_matching_outbox_published_total") == 0
    assert await _count(database_url, unpublished) == 1, "the proposal staged, not published"

    async with running(create_app(MatchingSettings(**service_settings))):
        records = await read_topic(infra.bootstrap, hub.topic, count=2, timeout=30)
    assert [json.loads(r.value)["type"] for r in records] == [SUBMITTED, MatchProposed.event_type]
    assert await _count(database_url, unpublished) == 0
