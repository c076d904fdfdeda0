"""Helpers shared by the tiers that talk to the real stack: its environment, Kafka reads, bounded waits."""

from __future__ import annotations

import asyncio
import mailbox
import os
import time
from collections.abc import Awaitable, Callable
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from prometheus_client import CollectorRegistry

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


async def read_until(
    bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord[Any, Any]]], bool], *, timeout: float
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning until `done(records)` holds; fail after `timeout` seconds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
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


def mails_about(maildir: str, consultation_id: str) -> list[Message]:
    """Messages the SMTP sink stored for one consultation."""
    box = mailbox.Maildir(maildir, create=False)
    return [message for message in box if message["X-Hubnet-Consultation"] == consultation_id]


def counter(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Current value of a counter sample (0 when it has not been touched yet)."""
    return registry.get_sample_value(name, labels) or 0.0
