"""A service's runtime on the real database and broker: liveness follows its workers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.integration.conftest import running
from tests.support import wait_for


async def test_liveness_fails_once_a_worker_has_stopped(service_settings: dict[str, Any]) -> None:
    app = create_app(IntakeSettings(**service_settings))
    failed = asyncio.Event()

    async def crashing_worker() -> None:
        await failed.wait()
        raise RuntimeError("a bug in a loop meant to run until shutdown")

    app.state.runtime.workers.append(crashing_worker)
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://intake") as client:
        assert (await client.get("/healthz")).status_code == 200
        failed.set()

        async def unhealthy() -> httpx.Response | None:
            answer = await client.get("/healthz")
            return answer if answer.status_code == 503 else None

        answer = await wait_for(unhealthy, timeout=5, what="liveness to fail")

    assert answer.json() == {"status": "stopped", "workers": "intake-worker-0"}, "the crashed worker, not the relay"
