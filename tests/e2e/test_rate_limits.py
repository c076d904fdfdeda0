"""The gateway limits each client address: public submissions, staff sign-in and the portal answer 429 with
Retry-After past their rate. Sent from 127.0.0.2: the test stack exempts only its own driver, 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from deploy.local.stack import gateway
from shared import i18n
from shared.http import TOO_MANY_REQUESTS
from tests.e2e.conftest import Stack
from tests.support import wait_for

ELSEWHERE = "127.0.0.2"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=ELSEWHERE)
    async with httpx.AsyncClient(transport=transport, timeout=10) as http:
        yield http


async def _until_limited(send: Callable[[], Awaitable[httpx.Response]], most: int) -> httpx.Response:
    for _ in range(most):
        answer = await send()
        if answer.status_code == 429:
            return answer
    raise AssertionError(f"no 429 within {most} requests")


async def test_public_submissions_past_the_rate_get_429_with_retry_after_in_both_languages(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    limit = gateway.LIMITS["/v1/hubs/{hub}/consultations"]
    url = f"{stack.origin}/v1/hubs/medic/consultations"

    async def submit() -> httpx.Response:
        # An empty body: intake refuses it (422) and stores nothing, but the gateway counts it.
        return await client.post(url, json={}, headers={"Accept-Language": "en"})

    limited = await _until_limited(submit, limit.burst + 5)
    assert limited.headers["Retry-After"] == str(limit.retry_after)
    assert limited.json()["error"] == "too_many_requests"
    assert limited.json()["messages"] == i18n.in_every_locale(TOO_MANY_REQUESTS)
    # Only submissions count: reads on the same path go on (and answer as ever, here 401 without a token).
    assert (await client.get(url)).status_code == 401


async def test_the_portal_past_its_rate_gets_a_bilingual_429_page_while_its_stylesheet_still_loads(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    limit = gateway.LIMITS["/portal/"]

    async def page() -> httpx.Response:
        return await client.get(f"{stack.origin}/portal/")

    limited = await _until_limited(page, limit.burst + 10)
    assert limited.headers["Retry-After"] == str(limit.retry_after)
    assert limited.headers["Content-Type"].startswith("text/html")
    for text in i18n.in_every_locale(TOO_MANY_REQUESTS).values():
        assert text in limited.text
    assert (await client.get(f"{stack.origin}/portal/static/portal.css")).status_code == 200


async def test_the_test_driver_itself_is_exempt(stack: Stack, http: httpx.AsyncClient) -> None:
    for _ in range(gateway.LIMITS["/portal/"].burst + 10):
        assert (await http.get(f"{stack.origin}/portal/")).status_code == 200


async def test_one_address_gets_at_most_five_acknowledgements_an_hour_though_every_consultation_is_accepted(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    email = f"flood-{uuid.uuid4().hex[:8]}@example.jp"
    request = {
        "applicant_kind": "other",
        "organization": "大量送信",
        "title": "同じ宛先",
        "product_kind": "other",
        "development_stage": "basic_research",
        "topics": ["marketing"],
        "contact_name": "宛先 同一",
        "email": email,
        "body": "同じアドレスへの受付確認は1時間に5通まで。",
    }
    notify_metrics = f"{stack.env['HUBNET_NOTIFY_URL']}/metrics"

    async def suppressed() -> float:
        text = (await http.get(notify_metrics)).text
        line = 'hubnet_notify_deliveries_total{channel="email",outcome="suppressed"}'
        return next((float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)), 0.0)

    before = await suppressed()
    ids = []
    for _ in range(7):
        answer = await http.post(f"{stack.origin}/v1/hubs/innohub/consultations", json=request)
        assert answer.status_code == 202
        ids.append(answer.json()["consultation_id"])

    await wait_for(lambda: _at_least(suppressed, before + 2), timeout=20, what="two acknowledgements suppressed")
    assert sum(len(stack.mail.about(consultation_id)) for consultation_id in ids) == 5


async def _at_least(probe: Callable[[], Awaitable[float]], value: float) -> bool:
    return await probe() >= value
