"""Reporting rebuilt from the log while consultations keep arriving: the console keeps answering (no 5xx),
nothing is lost or doubled across the swap, and the rebuilt views equal the live ones."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.fault.conftest import Stack
from tests.support import wait_for

HUB = "innohub"
RATE = 20  # submissions a second, sent whatever the answers take
MAX_SUBMISSIONS = 3000
PASSWORD = "a long rebuild passphrase"


def consultation(number: int) -> dict[str, Any]:
    return {
        "language": "ja",
        "applicant_kind": "startup",
        "organization": f"株式会社再構築試験{number}",
        "title": f"再構築中の相談 {number}",
        "product_kind": "medical_dx_ai",
        "development_stage": "applied_research",
        "topics": ["business_planning"],
        "contact_name": "再構築 花子",
        "email": f"rebuild-{number}-{uuid.uuid4().hex[:6]}@example.jp",
        "body": "再構築の最中に届いた相談です。",
    }


async def rebuild(stack: Stack, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.reporting",
        "rebuild",
        *args,
        env={**os.environ, **stack.env, "HUBNET_LOG_JSON": "false"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=600)
    assert process.returncode is not None
    return process.returncode, stdout.decode() + stderr.decode()[-2000:]


# Two replays of the whole log: a few seconds on a fresh stack, minutes on a long-lived one (the test
# stack keeps its data between runs).
@pytest.mark.usefixtures("new_mail")  # the mail it causes, removed after it
@pytest.mark.timeout(900)
async def test_rebuild_under_load_keeps_the_console_answering_and_equals_the_live_views(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    email = f"rebuilder-{uuid.uuid4().hex[:8]}@innohub.example.jp"
    opened = await http.post(
        f"{stack.origin}/v1/hubs/{HUB}/staff",
        json={"email": email, "display_name": "再構築 太郎", "roles": ["analyst"], "password": PASSWORD},
        headers=stack.staff(HUB),
    )
    assert opened.status_code == 201, opened.text
    console = httpx.AsyncClient(base_url=stack.origin, timeout=10)
    signed_in = await console.post("/console/sign-in", data={"hub": HUB, "email": email, "password": PASSWORD})
    assert signed_in.status_code in (200, 303), signed_in.text
    assert "hubnet_console" in console.cookies

    accepted: list[str] = []
    answers: Counter[int] = Counter()
    pages: Counter[int] = Counter()
    stop = asyncio.Event()

    async def submit(number: int) -> None:
        response = await http.post(f"{stack.origin}/v1/hubs/{HUB}/consultations", json=consultation(number))
        answers[response.status_code] += 1
        if response.status_code == 202:
            accepted.append(response.json()["consultation_id"])

    async def load() -> None:
        """Open loop: a submission every 1/RATE s, not waiting for the answers."""
        started, sent, pending = time.monotonic(), 0, set()
        while not stop.is_set() and sent < MAX_SUBMISSIONS:
            pending.add(asyncio.create_task(submit(sent)))
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / RATE - time.monotonic()))
        await asyncio.gather(*pending)

    async def read_the_console() -> None:
        while not stop.is_set():
            for path in ("/console/consultations", "/console/dashboard", "/console/consultations?q=再構築"):
                page = await console.get(path)
                pages[page.status_code] += 1
            await asyncio.sleep(0.05)

    loading = asyncio.create_task(load())
    reading = asyncio.create_task(read_the_console())
    try:
        await asyncio.sleep(2)  # under way before the rebuild starts
        began = time.monotonic()
        status, output = await rebuild(stack)
        print(f"rebuild and swap: {time.monotonic() - began:.1f} s\n{output}")
        assert status == 0, output
        assert "rebuilt and swapped" in output
        await asyncio.sleep(2)  # and on after the swap
    finally:
        stop.set()
        await asyncio.gather(loading, reading)
        await console.aclose()

    assert set(answers) == {202}, answers
    assert pages
    assert all(code == 200 for code in pages), f"the console answered {dict(pages)}"
    assert len(accepted) >= 4 * RATE

    async def settled(consultation_id: str) -> bool:
        """Projected, with what matching and notify add to it: nothing more is on its way for it."""
        view = await http.get(f"{stack.origin}/v1/hubs/{HUB}/consultations/{consultation_id}", headers=stack.staff(HUB))
        if view.status_code != 200:
            return False
        body = view.json()
        return body["match_candidates"] is not None and body["acknowledged_at"] is not None

    async def all_settled() -> bool:
        for start in range(0, len(accepted), 50):
            if not all(await asyncio.gather(*(settled(one) for one in accepted[start : start + 50]))):
                return False
        return True

    began = time.monotonic()
    # The load lasts as long as the rebuild, which grows with the stack's log: so does what is left to settle
    # (matching and notify each carry 20 consultations a second with ease, and catch up at several times that).
    settle_s = max(180.0, len(accepted) / 10)
    await wait_for(
        all_settled, timeout=settle_s, interval=1, what=f"the {len(accepted)} accepted during the rebuild, settled"
    )
    # A second replay of the whole log equals the live views, row for row (once the live consumer has
    # applied what was still arriving from other tests' consultations: a few tries).
    print(f"settled: {time.monotonic() - began:.1f} s")
    for _ in range(6):
        began = time.monotonic()
        status, output = await rebuild(stack, "--check")
        print(f"check: {time.monotonic() - began:.1f} s\n{output}")
        if status == 0:
            break
        await asyncio.sleep(5)
    assert status == 0, output
    assert "equal" in output
