"""A record aiokafka cannot read is skipped by its position and dead-lettered; nothing else is lost.

aiokafka here lacks the optional `cramjam` package, so a zstd-compressed batch is unreadable for it
(`UnsupportedCodecError` at fetch). Such a batch is written with Kafka's own Java console producer, between
valid records of the same partition, while other partitions hold valid records fetched alongside it. The
consumer's careful mode (`shared/consumer.py`: `_rewind_to_fetched`, `_fetch_carefully`, `_skip_unreadable`)
must read around it: every valid record applied once, the unreadable one dead-lettered once as a marker
naming its topic, partition and offset, counted `unreadable`, and the partition's committed offset past it.
"""

from __future__ import annotations

import importlib.util
import logging
import uuid
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from services.matching import SERVICE
from services.matching import tables as matching_tables
from services.matching.app import create_app
from services.matching.settings import MatchingSettings
from shared.contract import Envelope
from tests.integration import events
from tests.integration.conftest import Infra, TestHub, running
from tests.support import (
    committed_offsets,
    counter,
    end_offsets,
    key_for_partition,
    produce,
    produce_with_kafka_tools,
    read_topic,
    wait_for,
)

SUBMITTED = "hubnet.consultation.submitted.v1"
PROPOSED = "hubnet.match.proposed.v1"
EVENTS = "hubnet_matching_events_total"
PARTITIONS = 3  # the `hub` fixture's topic


def _submitted_elsewhere(hub: str, partition: int) -> Envelope:
    """A submission whose consultation id, the key of matching's MatchProposed, is not on `partition`: matching's
    own output never lands behind the unreadable record, so that partition ends with what this test put there."""
    while True:
        consultation_id = uuid.uuid4()
        if (murmur2(str(consultation_id).encode()) & 0x7FFFFFFF) % PARTITIONS != partition:
            return events.submitted(hub, consultation_id)


def _keyed(envelopes: list[Envelope], key: bytes) -> list[tuple[bytes, bytes]]:
    return [(key, envelope.to_bytes()) for envelope in envelopes]


async def _proposed(database_url: str) -> list[str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(matching_tables.Proposal.consultation_id))
            return sorted(str(row[0]) for row in rows)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("bad_partition", "after_count"),
    [
        pytest.param(0, 3, id="in-partition-0"),
        pytest.param(1, 3, id="in-partition-1"),
        pytest.param(2, 0, id="in-partition-2-last-record"),
    ],
)
async def test_zstd_record_is_dead_lettered_by_position_and_every_readable_record_around_it_is_applied(
    infra: Infra,
    hub: TestHub,
    database_url: str,
    service_settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    bad_partition: int,
    after_count: int,
) -> None:
    """Proves: valid records before and after the unreadable one in its partition, and on the other partitions
    in the same fetch, are all applied exactly once; the unreadable record is not applied, is dead-lettered
    exactly once (empty value, reason `unreadable record: UnsupportedCodecError`, its topic, partition and
    offset) and counted `unreadable` once; the partition's committed offset moves past it, also when it is the
    partition's last record; the unreadable batch is met a bounded number of times (no hot loop) and no
    dead-letter publish fails."""
    assert importlib.util.find_spec("cramjam") is None, "this test needs an aiokafka that cannot read zstd"
    key = key_for_partition(bad_partition, PARTITIONS)
    before = [_submitted_elsewhere(hub.id, bad_partition) for _ in range(3)]
    after = [_submitted_elsewhere(hub.id, bad_partition) for _ in range(after_count)]
    unreadable = events.submitted(hub.id)  # a valid event: only its compression makes it unreadable
    neighbours = {
        partition: [_submitted_elsewhere(hub.id, bad_partition) for _ in range(2)]
        for partition in range(PARTITIONS)
        if partition != bad_partition
    }

    placed = await produce(infra.bootstrap, hub.topic, _keyed(before, key))
    for partition, envelopes in neighbours.items():
        placed += await produce(infra.bootstrap, hub.topic, _keyed(envelopes, key_for_partition(partition, PARTITIONS)))
    await produce_with_kafka_tools(infra.bootstrap, hub.topic, _keyed([unreadable], key), compression="zstd")
    placed += await produce(infra.bootstrap, hub.topic, _keyed(after, key))
    bad_offset = len(before)  # the console producer's record, between `before` and `after` in one partition
    offsets = [offset for partition, offset in placed if partition == bad_partition]
    assert offsets == [*range(bad_offset), *range(bad_offset + 1, bad_offset + 1 + after_count)]
    bad_partition_end = bad_offset + 1 + after_count
    assert (await end_offsets(infra.bootstrap, hub.topic))[bad_partition] == bad_partition_end
    readable = before + after + [e for envelopes in neighbours.values() for e in envelopes]

    caplog.set_level(logging.WARNING, logger="shared.consumer")
    group = SERVICE.consumer_group + hub.group_suffix
    app = create_app(MatchingSettings(**service_settings))
    registry = app.state.runtime.registry
    async with running(app):

        async def settled() -> bool:
            # Matching publishes a MatchProposed per applied event onto the same topic, and reads it back
            # (ignored): settled once those are read too and every partition is committed to its end.
            applied = counter(registry, EVENTS, type=SUBMITTED, outcome="applied")
            ignored = counter(registry, EVENTS, type=PROPOSED, outcome="ignored")
            if applied != len(readable) or ignored != len(readable):
                return False
            committed = await committed_offsets(infra.bootstrap, group, hub.topic)
            return committed == await end_offsets(infra.bootstrap, hub.topic) and bool(committed)

        await wait_for(settled, timeout=60, what="every readable record applied and every partition committed")
        committed = await committed_offsets(infra.bootstrap, group, hub.topic)
        assert committed[bad_partition] == bad_partition_end, "committed past the unreadable record"

    assert counter(registry, EVENTS, type="unknown", outcome="unreadable") == 1
    for outcome in ("duplicate", "dead_lettered", "retried"):
        assert counter(registry, EVENTS, type=SUBMITTED, outcome=outcome) == 0, outcome
    assert registry.get_sample_value("hubnet_matching_dead_letter_publish_failures_total") == 0
    assert await _proposed(database_url) == sorted(e.subject for e in readable), "the unreadable one not applied"

    dead_letter_topic = hub.dead_letter_topic(SERVICE.consumer_group)
    [marker] = await read_topic(infra.bootstrap, dead_letter_topic, count=1, timeout=10)
    assert sum((await end_offsets(infra.bootstrap, dead_letter_topic)).values()) == 1, "dead-lettered once"
    assert marker.value == b""
    headers = {name: value.decode() for name, value in marker.headers}
    assert headers["hubnet-dlt-reason"] == "unreadable record: UnsupportedCodecError"
    assert headers["hubnet-dlt-topic"] == hub.topic
    assert headers["hubnet-dlt-partition"] == str(bad_partition)
    assert headers["hubnet-dlt-offset"] == str(bad_offset)
    assert headers["hubnet-dlt-group"] == group

    unreadable_batches = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert 1 <= len(unreadable_batches) <= 3, f"the unreadable batch met {len(unreadable_batches)} times"
