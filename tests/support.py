"""Helpers shared by the tiers that talk to the real stack: its environment, Kafka reads and writes (crafted
records too), bounded waits, received mail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from email import message_from_binary_file
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import RecordMetadata
from prometheus_client import CollectorRegistry

from deploy.local.stack.kafka import java_binary, kafka_libs_dir
from shared.kafka import partition_for

T = TypeVar("T")


def stack_env() -> dict[str, str]:
    """The running stack's connection settings: `.local/<HUBNET_STACK>/stack.env` (written by `hubnet stack up`)."""
    instance = os.environ.get("HUBNET_STACK", "test")
    path = Path(__file__).resolve().parent.parent / ".local" / instance / "stack.env"
    env: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                env[key.strip()] = value.strip()
    # Explicit environment wins, so a developer can point the tests at another stack.
    env.update({key: value for key, value in os.environ.items() if key.startswith("HUBNET_")})
    return env


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll until `probe` returns something truthy, and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def read_topic(bootstrap: str, topic: str, *, count: int, timeout: float) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning until `count` records arrived (no group, nothing committed)."""
    return await read_until(bootstrap, topic, lambda records: len(records) >= count, timeout=timeout)


def _reader(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer of the whole topic from its beginning: no group, nothing committed."""
    return AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )


async def read_until(
    bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord[Any, Any]]], bool], *, timeout: float
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning until `done(records)` holds; fail after `timeout` seconds."""
    consumer = _reader(bootstrap, topic)
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while not done(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s reading {topic} ({len(records)} records)")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def read_to_end(bootstrap: str, topic: str, *, timeout: float = 30) -> list[ConsumerRecord[Any, Any]]:
    """Every record a topic holds now: read from the beginning up to the end offsets taken at the start."""
    consumer = _reader(bootstrap, topic)
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout

        async def assigned() -> set[TopicPartition]:
            return set(consumer.assignment())

        ends = await consumer.end_offsets(list(await wait_for(assigned, timeout=timeout, what=f"{topic} assigned")))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s reading {topic} to its end ({len(records)} records)")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


class NewMail:
    """The messages the SMTP sink stores in its Maildir from the moment this is made on (told apart by file
    name). The test stack's Maildir outlives its runs and may hold hundreds of thousands of messages: those are
    listed once, never read; each new message's headers are read once."""

    def __init__(self, maildir: str) -> None:
        self._dirs = [os.path.join(maildir, "new"), os.path.join(maildir, "cur")]
        self._before = set(self._paths())
        self._consultation: dict[str, str | None] = {}
        """Each new message's X-Hubnet-Consultation, by its path."""

    def _paths(self) -> list[str]:
        return [os.path.join(folder, name) for folder in self._dirs for name in os.listdir(folder)]

    def _new(self) -> dict[str, str | None]:
        parser = BytesHeaderParser()
        for path in self._paths():
            if path not in self._before and path not in self._consultation:
                with open(path, "rb") as handle:  # delivered whole: the sink writes to tmp/, then renames
                    self._consultation[path] = parser.parse(handle)["X-Hubnet-Consultation"]
        return self._consultation

    def per_consultation(self) -> Counter[str]:
        """How many new messages each consultation got."""
        return Counter(consultation for consultation in self._new().values() if consultation)

    def about(self, consultation_id: str) -> list[Message]:
        """The new messages about one consultation, read whole."""
        found = []
        for path, consultation in self._new().items():
            if consultation == consultation_id:
                with open(path, "rb") as handle:
                    found.append(message_from_binary_file(handle))
        return found

    def discard(self) -> None:
        """Remove the new messages: a fault test sends thousands, and the Maildir outlives the run."""
        for path in self._new():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._consultation.clear()


def counter(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Current value of a counter sample (0 when it has not been touched yet)."""
    return registry.get_sample_value(name, labels) or 0.0


async def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """Send keyed records one at a time, in order, each acknowledged; returns each one's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        placed = []
        for key, value in messages:
            sent = await producer.send_and_wait(topic, value, key=key)
            placed.append((sent.partition, sent.offset))
        return placed
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset of every partition of `topic`: how many records each has ever had."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, f"topic {topic}: error {described['error_code']}"
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in offsets.items()}


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets `group` has committed on `topic`'s partitions (those without a commit are absent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def key_for_partition(partition: int, partitions: int) -> bytes:
    """A key the default partitioner (murmur2, the same in aiokafka and Kafka's Java clients) puts on `partition`."""
    for n in range(10_000):
        key = f"key-{n}".encode()
        if partition_for(key, partitions) == partition:
            return key
    raise AssertionError(f"no key found for partition {partition} of {partitions}")


async def produce_with_kafka_tools(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]], *, compression: str, timeout: float = 60.0
) -> None:
    """Send keyed records with Kafka's own Java console producer (the jars the local stack runs), e.g. with a
    compression codec aiokafka cannot read here. Fails unless the topic then holds exactly that many more records."""
    lines = []
    for key, value in messages:
        if any(bad in part for part in (key, value) for bad in (b"\t", b"\n", b"\r")):
            raise ValueError("the console producer reads one tab-separated key and value per line")
        lines.append(key + b"\t" + value + b"\n")
    before = sum((await end_offsets(bootstrap, topic)).values())
    argv = [
        *(java_binary(), "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
        *("-cp", f"{kafka_libs_dir()}/*", "kafka.tools.ConsoleProducer"),
        *("--bootstrap-server", bootstrap, "--topic", topic, "--compression-codec", compression, "--sync"),
        *("--request-required-acks", "all", "--property", "parse.key=true", "--property", "key.separator=\t"),
        *("--producer-property", f"max.block.ms={int(timeout * 500)}"),
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(b"".join(lines)), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the console producer did not finish within {timeout}s") from None
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"the console producer failed ({process.returncode}): {text}"
    after = sum((await end_offsets(bootstrap, topic)).values())
    assert after - before == len(messages), f"{after - before} of {len(messages)} records arrived: {text}"


async def produce_with_headers(
    bootstrap: str,
    topic: str,
    value: bytes,
    *,
    key: bytes,
    headers: Sequence[tuple[str, bytes | None]] = (),
    partition: int | None = None,
) -> RecordMetadata:
    """One record, with any headers Kafka allows (a null value, bytes that are not UTF-8); returns its
    position (topic, partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value, key=key, headers=list(headers), partition=partition)
    finally:
        await producer.stop()


_NAME_PLACEHOLDER = "x-hubnet-header-name-?"


async def produce_with_undecodable_header_name(
    bootstrap: str, topic: str, value: bytes, *, key: bytes, partition: int
) -> RecordMetadata:
    """One record, alone in its batch, whose header name is not UTF-8 (`x-hubnet-header-name-\\xff`).

    Kafka's protocol says header names are UTF-8 strings; a producer that does not check (the broker
    does not) can still write one, and aiokafka then fails to decode the record. aiokafka will not
    encode such a name, so the batch is built with a placeholder and patched: the placeholder's last
    byte replaced, the batch's CRC-32C (over everything after the CRC field) recomputed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)  # not idempotent: the batch goes out as built
    await producer.start()
    try:
        batch = producer.create_batch()
        batch.append(key=key, value=value, timestamp=None, headers=[(_NAME_PLACEHOLDER, b"value")])
        buffer = batch._build()  # built once and kept: these are the bytes send_batch sends
        placeholder = _NAME_PLACEHOLDER.encode()
        assert buffer.count(placeholder) == 1
        buffer[buffer.index(placeholder) + len(placeholder) - 1] = 0xFF
        crc_at = 17  # v2 batch: base offset (8), length (4), leader epoch (4), magic (1), then the CRC (4)
        struct.pack_into(">I", buffer, crc_at, calc_crc32c(bytes(buffer[crc_at + 4 :])))
        metadata = await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()
    assert isinstance(metadata, RecordMetadata)
    return metadata
