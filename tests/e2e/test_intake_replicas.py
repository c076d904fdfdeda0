"""Two intake instances behind a gateway, taking requests in turn: each outbox row is published exactly once,
and each consultation's events in the order they were committed, though its commands were taken by
different instances and both relays compete for the same outbox."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deploy.local.stack import gateway
from deploy.local.stack.instance import ROOT, SERVICES
from shared.contract import Envelope
from shared.contract.topics import consultations
from tests.e2e.conftest import Stack
from tests.support import read_to_end, wait_for

HUB = "fukushima"
CONSULTATIONS = 40
IN_FLIGHT = 12  # consultations in progress at once: within what each instance takes before it sheds load
STEPS = (
    ("screening", {"decision": "accepted"}),
    ("notes", {"text": "二つのインスタンスの試験"}),
    ("closure", {"outcome": "advice_given"}),
)
REQUEST = {
    "applicant_kind": "sme",
    "organization": "株式会社レプリカ",
    "title": "二重化の試験",
    "product_kind": "medical_device",
    "development_stage": "non_clinical",
    "topics": ["business_planning"],
    "contact_name": "複製 花子",
    "email": "replicas@example.jp",
    "body": "二つの intake が同じ outbox を持つ試験です。",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
async def second_intake(stack: Stack, tmp_path: Path) -> AsyncIterator[str]:
    """Another intake process on the stack's database and Kafka, with its own relay."""
    port = _free_port()
    env = {**os.environ, **stack.env, "HUBNET_INTAKE_PORT": str(port), "HUBNET_LOG_JSON": "false"}
    with (tmp_path / "intake-2.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.intake", "serve", env=env, stdout=log, stderr=log, cwd=ROOT
        )
    address = f"127.0.0.1:{port}"
    try:
        await wait_for(lambda: _ready(f"http://{address}/readyz"), timeout=60, interval=0.2, what="a second intake")
        yield address
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


@pytest.fixture
async def origin(stack: Stack, second_intake: str, tmp_path: Path) -> AsyncIterator[str]:
    """A gateway like the stack's, sending intake's paths to both instances in turn."""
    port = _free_port()
    worker = gateway._worker_user()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / sub).mkdir()
        if worker is not None:
            os.chown(tmp_path / sub, worker.pw_uid, worker.pw_gid)
    shutil.copyfile(gateway.CLUSTER_DIRS[0] / "openapi.json", tmp_path / "openapi.json")
    upstreams: dict[str, str | list[str]] = {
        service: stack.env[f"HUBNET_{service.upper()}_URL"].removeprefix("http://") for service in SERVICES
    }
    upstreams["intake"] = [upstreams["intake"], second_intake]  # type: ignore[list-item]
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        gateway.render(
            listen=f"127.0.0.1:{port}",
            upstreams=upstreams,
            files=gateway.Files(tmp_path / "nginx.pid", tmp_path / "error.log", tmp_path / "access.log", tmp_path),
            openapi=tmp_path / "openapi.json",
            worker_user=worker.pw_name if worker else None,
            rate_exempt=("127.0.0.1",),
        ),
        encoding="utf-8",
    )
    nginx = await asyncio.create_subprocess_exec(
        str(gateway.nginx_binary()),
        "-p",
        str(tmp_path),
        "-e",
        str(tmp_path / "error.log"),
        "-c",
        str(conf),
        "-g",
        "daemon off;",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for(lambda: _ready(url + gateway.HEALTH_PATH), timeout=20, interval=0.1, what="the gateway")
        yield url
    finally:
        nginx.terminate()
        await asyncio.wait_for(nginx.wait(), timeout=15)


async def test_each_outbox_row_is_published_once_and_in_order_when_two_intakes_share_the_work(
    stack: Stack, origin: str, second_intake: str
) -> None:
    staff = stack.staff(HUB)

    in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def life(client: httpx.AsyncClient) -> str:
        async with in_flight:
            return await _life(client)

    async def _life(client: httpx.AsyncClient) -> str:
        # Keep-alive is off, so that nginx takes each request to the next instance in turn.
        submitted = await client.post(f"{origin}/v1/hubs/{HUB}/consultations", json=REQUEST)
        assert submitted.status_code == 202, submitted.text
        consultation_id: str = submitted.json()["consultation_id"]
        for step, body in STEPS:
            answer = await client.post(
                f"{origin}/v1/hubs/{HUB}/consultations/{consultation_id}/{step}", json=body, headers=staff
            )
            assert answer.status_code == 202, answer.text
        return consultation_id

    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        ids = set(await asyncio.gather(*(life(client) for _ in range(CONSULTATIONS))))

    topic = consultations(HUB)
    expected = ["submitted", "screened", "note_added", "closed"]

    async def all_published() -> list[Envelope] | None:
        records = await read_to_end(stack.bootstrap, topic, timeout=30)
        ours = [Envelope.model_validate_json(record.value) for record in records if record.key.decode() in ids]
        ours = [event for event in ours if event.source == "/hubnet/intake"]
        return ours if len(ours) >= CONSULTATIONS * len(expected) else None

    events = await wait_for(all_published, timeout=60, interval=1, what="every event on the topic")
    assert len({event.id for event in events}) == len(events) == CONSULTATIONS * len(expected), "published once"
    for consultation_id in ids:
        kinds = [event.type.split(".")[2] for event in events if event.subject == consultation_id]
        assert kinds == expected, f"{consultation_id}: {kinds}"

    async with httpx.AsyncClient(timeout=5) as client:
        metrics = (await client.get(f"http://{second_intake}/metrics")).text
    published = [line for line in metrics.splitlines() if line.startswith("hubnet_intake_outbox_published_total")]
    [counter] = published
    assert float(counter.split()[-1]) > 0, "the second instance's relay published rows too"
