"""`make bench`: reporting's rebuild of a generated log (`tests.bench.network`, 1,000,000 events by default)
beside a baseline measured in the same run on the same rows.

- The rebuild: `hubnet reporting rebuild` as an operator runs it, into the bench's database: replay into a
  shadow schema, the keys and indexes, the swap. Timed from its start to the swap (the checksums it prints
  afterwards are not counted).
- The baseline: a raw aiokafka consumer reading every record of the same topics while, side by side, asyncpg
  COPYs the rows the rebuild wrote (its consultations, timeline and inbox, read back beforehand) into tables
  of the same shape, bare; then the same keys and indexes are built. What no replay can beat: reading the
  log and writing the result, with nothing in between.

Bounded: the number of events (HUBNET_BENCH_REBUILD_EVENTS), and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console
from sqlalchemy.dialects.postgresql import JSONB

from services.reporting import rebuild, replay, tables
from services.reporting.settings import ReportingSettings
from shared import db, kafka
from shared.contract.topics import CONSULTATION_PARTITIONS
from tests.bench.network import HUB_WEIGHTS, Network, Record

EVENTS = int(os.environ.get("HUBNET_BENCH_REBUILD_EVENTS", "1000000"))
TARGET_RATE = 17_000
COPY_ROWS = replay.COPY_ROWS


async def publish(bootstrap: str, records: Sequence[Record]) -> None:
    """The records as the relays publish them: keyed, partitioned by the key, with their type header."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        partitions: dict[tuple[str, int], list[Record]] = {}
        for record in records:
            partition = kafka.partition_for(record.key, CONSULTATION_PARTITIONS)
            partitions.setdefault((record.topic, partition), []).append(record)
        pending = []
        for (topic, partition), members in partitions.items():
            batch = producer.create_batch()
            for record in members:
                headers = kafka.record_headers(record.event_type)
                if batch.append(key=record.key, value=record.value, timestamp=None, headers=headers) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=record.key, value=record.value, timestamp=None, headers=headers)
            pending.append(await producer.send_batch(batch, topic, partition=partition))
            if len(pending) > 64:
                await asyncio.wait_for(asyncio.gather(*pending), timeout=120)
                pending = []
        await asyncio.wait_for(asyncio.gather(*pending), timeout=120)
    finally:
        await producer.stop()


async def read_back(engine: Any) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every row the rebuild wrote, by table: its columns and values as asyncpg hands them over."""
    found = {}
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        await replay.Bulk.prepare(raw)
        for name in ("consultations", "timeline", "inbox"):
            table = tables.metadata.tables[f"{replay.LIVE}.{name}"]
            columns = [c.name for c in table.columns if c.name != "applied_at"]
            # JSON as the bytes of its text, as the bulk load's COPY takes it
            listed = ", ".join(
                f"convert_to(\"{c.name}\"::text, 'UTF8')" if isinstance(c.type, JSONB) else f'"{c.name}"'
                for c in table.columns
                if c.name in columns
            )
            rows = await raw.fetch(f'SELECT {listed} FROM "{replay.LIVE}"."{table.name}"')
            found[table.name] = (columns, [tuple(row) for row in rows])
        await connection.invalidate()
    return found


async def raw_consume(bootstrap: str, pattern: str, count: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if re.fullmatch(pattern, t)]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=5000
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(CONSULTATION_PARTITIONS)])
        seen, deadline = 0, time.monotonic() + 300
        while seen < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consume: {seen} of {count} records in 300 s")
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                seen += len(batch)
    finally:
        await consumer.stop()


async def baseline(engine: Any, rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> None:
    schema = f"baseline_{uuid.uuid4().hex[:8]}"
    await rebuild.create_shadow(engine, schema, bare=True)
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            await replay.Bulk.prepare(raw)
            for name in ("timeline", "inbox", "consultations"):
                columns, values = rows[name]
                for start in range(0, len(values), COPY_ROWS):
                    await raw.copy_records_to_table(
                        name, schema_name=schema, columns=columns, records=values[start : start + COPY_ROWS]
                    )
            await connection.invalidate()
        await rebuild.create_deferred_indexes(engine, schema, keys=True)
    finally:
        await rebuild.drop_schema(engine, schema)


async def bench_rebuild(url: str, bootstrap: str, settings: dict[str, Any]) -> tuple[float, float, str]:
    """(rebuild events/s, baseline events/s, what was rebuilt)."""
    run = uuid.uuid4().hex[:6]
    topics = [f"hubnet.bench-{run}-{hub}.consultations" for hub in HUB_WEIGHTS]
    pattern = rf"^hubnet\.bench-{run}-[a-z0-9-]+\.consultations$"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, CONSULTATION_PARTITIONS, 1) for t in topics])
    engine = db.create_engine(ReportingSettings(database_url=url), application_name="bench-rebuild")
    try:
        network = Network(EVENTS, topic=f"hubnet.bench-{run}-{{hub}}.consultations")
        started = time.perf_counter()
        records = network.records()
        count = len(records)
        print(f"bench: generated {count:,} events of {network.consultations:,} consultations", end="")
        print(f" in {time.perf_counter() - started:.0f} s; publishing")
        await publish(bootstrap, records)
        del records
        reporting = ReportingSettings(**settings | {"consultation_topic_pattern": pattern})
        outcome = await rebuild.rebuild(reporting, console=Console(stderr=True))
        assert outcome.swapped, outcome
        rebuild.report(outcome, Console(stderr=True))
        print("bench: the live views held the consumer measurements' consultations, not this log's: digests differ")
        assert outcome.rebuilt["timeline"].rows == count, f"{outcome.rebuilt} for {count:,} events"
        rows = await read_back(engine)
        began = time.perf_counter()
        await asyncio.gather(raw_consume(bootstrap, pattern, count), baseline(engine, rows))
        baseline_s = time.perf_counter() - began
        print(f"bench: baseline {baseline_s:.1f} s")
        what = f"{count:,} events, {network.consultations:,} consultations"
        return count / outcome.seconds, count / baseline_s, what
    finally:
        await engine.dispose()
        await admin.delete_topics(topics)
        await admin.close()
