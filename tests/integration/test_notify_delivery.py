"""Notify's deliverer against a real SMTP server (aiosmtpd, in this process), PostgreSQL and Kafka: one
connection carries many messages, a connection the server dropped is replaced, the per-address limit
counts within a claim, and a claim never sends past its lease."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from email import message_from_bytes
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.notify.app import create_app
from services.notify.settings import NotifySettings
from shared.contract import new_envelope
from shared.contract.consultation import ApplicantPersonal
from tests.integration import events
from tests.integration.conftest import Infra, TestHub, running
from tests.support import produce, wait_for


class Recorder:
    """An SMTP server's handler that keeps what it was sent and over which connection (the client's port)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.received: list[tuple[Any, str, str]] = []  # (peer, recipient, Message-ID)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay_s)
        content = envelope.original_content or b""
        message = message_from_bytes(content)
        self.received.append((session.peer, envelope.rcpt_tos[0], str(message["Message-ID"])))
        return "250 OK"

    def connections(self) -> int:
        return len({peer for peer, _, _ in self.received})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _submitted(hub: str, email: str | None = None) -> tuple[bytes, bytes]:
    envelope = events.submitted(hub)
    if email is not None:
        data = events.submitted_data(envelope)
        personal = data.personal.model_copy(update={"email": email}) if data.personal else None
        assert isinstance(personal, ApplicantPersonal)
        data = data.model_copy(update={"personal": personal})
        envelope = new_envelope(data, source="/hubnet/intake", hub=hub, subject=str(data.consultation_id))
    return envelope.subject.encode(), envelope.to_bytes()


async def _statuses(database_url: str) -> Counter[str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT status, count(*) FROM notify.deliveries GROUP BY status"))
            return Counter({status: int(count) for status, count in rows})
    finally:
        await engine.dispose()


async def _claimed_twice(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text("SELECT count(*) FROM notify.deliveries WHERE attempts > 1")) or 0)
    finally:
        await engine.dispose()


def _settings(service_settings: dict[str, Any], port: int, **overrides: Any) -> NotifySettings:
    return NotifySettings(
        **service_settings
        | {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_timeout_s": 5.0,
            "delivery_poll_interval_s": 0.05,
            "delivery_retry_base_s": 0.1,
            "delivery_retry_cap_s": 0.5,
        }
        | overrides
    )


async def test_one_connection_carries_many_messages_and_one_the_server_dropped_is_replaced(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    recorder = Recorder()
    port = _free_port()
    # The server closes a connection idle for a second, as a relay with a short timeout would.
    server = Controller(recorder, hostname="127.0.0.1", port=port, timeout=1)
    server.start()
    try:
        first = [_submitted(hub.id) for _ in range(6)]
        # Seven for one address: five go out, in the order claimed, and two are suppressed.
        address = f"same-{uuid.uuid4().hex[:8]}@example.jp"
        shared = [_submitted(hub.id, email=address) for _ in range(7)]
        # Produced before the consumer starts, so that its first look at the topics finds this new one.
        await produce(infra.bootstrap, hub.topic, first + shared)
        async with running(create_app(_settings(service_settings, port))):

            async def first_sent() -> bool:
                return len(recorder.received) >= 11 and (await _statuses(database_url))["suppressed"] == 2

            await wait_for(first_sent, timeout=30, what="eleven acknowledgements sent, two suppressed")
            assert recorder.connections() == 1

            await asyncio.sleep(2)  # the server drops the idle connection
            later = [_submitted(hub.id) for _ in range(3)]
            await produce(infra.bootstrap, hub.topic, later)

            async def all_sent() -> Counter[str] | None:
                statuses = await _statuses(database_url)
                return statuses if statuses["sent"] == 14 and len(recorder.received) >= 14 else None

            statuses = await wait_for(all_sent, timeout=30, what="the later acknowledgements sent")
    finally:
        server.stop()
    assert statuses == Counter({"sent": 14, "suppressed": 2})
    assert recorder.connections() == 2
    assert sum(recipient == address for _, recipient, _ in recorder.received) == 5
    message_ids = [message_id for _, _, message_id in recorder.received]
    assert len(message_ids) == len(set(message_ids)) == 14  # none twice


async def test_a_claim_sends_one_at_a_time_and_leaves_what_it_cannot_begin_within_half_its_lease(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    # Each message takes 0.6 s at the server; a lease of 2 s: of a claim of four, two are begun within
    # half the lease and the rest wait for their lease to lapse, then go out. Nothing is sent twice.
    recorder = Recorder(delay_s=0.6)
    port = _free_port()
    server = Controller(recorder, hostname="127.0.0.1", port=port)
    server.start()
    try:
        settings = _settings(service_settings, port, delivery_lease_s=2.0, delivery_claim_size=4)
        # One key, one partition: the four arrive in one batch, so their deliveries are claimed together.
        await produce(
            infra.bootstrap, hub.topic, [(b"one", value) for _, value in (_submitted(hub.id) for _ in range(4))]
        )
        async with running(create_app(settings)):

            async def sent() -> Counter[str] | None:
                statuses = await _statuses(database_url)
                return statuses if statuses["sent"] == 4 else None

            statuses = await wait_for(sent, timeout=30, what="four acknowledgements sent")
    finally:
        server.stop()
    assert statuses == Counter({"sent": 4})
    assert await _claimed_twice(database_url) >= 1  # left to its lease, claimed again
    message_ids = [message_id for _, _, message_id in recorder.received]
    assert len(message_ids) == len(set(message_ids)) == 4
