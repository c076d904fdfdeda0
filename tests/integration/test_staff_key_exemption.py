"""The local stack's exemption: a service serves with a committed placeholder key only when HUBNET_ENVIRONMENT=local."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx

from tests.integration.conftest import ROOT, Infra
from tests.support import wait_for

PLACEHOLDER = ROOT / "deploy" / "compose" / "staff-token.pub"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_service_serves_with_the_placeholder_key_when_environment_is_local(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    """A verifier (reporting); intake, the issuer, would need the placeholder's private half, which nobody has."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUBNET_")}
    env |= {
        "HUBNET_DATABASE_URL": database_url,
        "HUBNET_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "HUBNET_REPORTING_PORT": str(port),
        "HUBNET_AUTH_PUBLIC_KEY_FILE": str(PLACEHOLDER),
        "HUBNET_ENVIRONMENT": "local",
        "HUBNET_LOG_JSON": "false",
    }
    log = tmp_path / "reporting.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.reporting", "serve", env=env, cwd=ROOT, stdout=output, stderr=output
        )

    async def serving() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"reporting exited {process.returncode}:\n{log.read_text(encoding='utf-8')}")
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await wait_for(serving, timeout=60, interval=0.2, what="reporting serving with the placeholder key")
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
    assert "placeholder key of deploy/compose/staff-token.pub" in log.read_text(encoding="utf-8")
