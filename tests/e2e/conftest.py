"""End-to-end fixtures: the whole stack, as `hubnet stack up` started it, reached over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from shared import auth
from tests.e2e.browser import browser, page  # noqa: F401  (fixtures: Chromium, a fresh page per test)
from tests.support import NewMail, stack_env


@dataclass(frozen=True)
class Stack:
    env: dict[str, str]
    origin: str  # the gateway
    intake: str
    matching: str
    reporting: str
    bootstrap: str
    maildir: str
    mail: NewMail
    """What the SMTP sink stores from the session's start on."""

    def token(self, hub: str, subject: str = "e2e-staff") -> str:
        return auth.issue_staff_token(auth.signing_key(self.env), hub=hub, subject=subject)

    def staff(self, hub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(hub)}"}


@pytest.fixture(scope="session")
def stack() -> Stack:
    env = stack_env()
    return Stack(
        env,
        env["HUBNET_GATEWAY_URL"],
        env["HUBNET_INTAKE_URL"],
        env["HUBNET_MATCHING_URL"],
        env["HUBNET_REPORTING_URL"],
        env["HUBNET_KAFKA_BOOTSTRAP_SERVERS"],
        env["HUBNET_MAILDIR"],
        NewMail(env["HUBNET_MAILDIR"]),
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
