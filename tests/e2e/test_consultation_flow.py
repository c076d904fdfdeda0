"""A consultation travels the whole stack: intake → Kafka → matching, notify, reporting; every request through
the gateway, the one origin people and clients use."""

from __future__ import annotations

import time
import uuid
from email.header import decode_header, make_header
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.support import wait_for


def _request(language: str, email: str) -> dict[str, Any]:
    return {
        "language": language,
        "applicant_kind": "startup",
        "organization": "株式会社エンドツーエンド",
        "title": "プログラム医療機器の承認申請について" if language == "ja" else "Approval of our SaMD",
        "product_kind": "samd",
        "development_stage": "clinical",
        "topics": ["regulation"],
        "contact_name": "試験 太郎",
        "email": email,
        "body": "相談内容の本文です。",
    }


async def _register_supporter(http: httpx.AsyncClient, stack: Stack, hub: str) -> None:
    response = await http.put(
        f"{stack.origin}/v1/hubs/{hub}/supporters/e2e-regulation",
        json={"display_name": "E2E 規制担当", "fields": ["regulation"], "languages": ["ja", "en"]},
        headers=stack.staff(hub),
    )
    assert response.status_code == 200, response.text


async def test_consultation_appears_in_reporting_with_match_and_acknowledgement_within_two_seconds(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    await _register_supporter(http, stack, "mediso")
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.jp"

    started = time.monotonic()
    response = await http.post(f"{stack.origin}/v1/hubs/mediso/consultations", json=_request("ja", email))
    assert response.status_code == 202, response.text
    consultation_id = response.json()["consultation_id"]

    async def complete_view() -> dict[str, Any] | None:
        answer = await http.get(
            f"{stack.origin}/v1/hubs/mediso/consultations/{consultation_id}", headers=stack.staff("mediso")
        )
        if answer.status_code != 200:
            return None
        view: dict[str, Any] = answer.json()
        candidates = view["match_candidates"] or []
        matched = any(c["supporter_id"] == "e2e-regulation" for c in candidates)
        return view if matched and view["acknowledged_at"] else None

    view = await wait_for(complete_view, timeout=2.0, interval=0.02, what="match proposal and acknowledgement")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert view["status"] == "screening"
    assert next(entry["type"] for entry in view["timeline"]) == "hubnet.consultation.submitted.v1"
    assert {entry["type"] for entry in view["timeline"]} == {
        "hubnet.consultation.submitted.v1",
        "hubnet.match.proposed.v1",
        "hubnet.notification.sent.v1",
    }

    [mail] = stack.mail.about(consultation_id)  # exactly once
    assert mail["To"] == email
    assert mail["Content-Language"] == "ja"
    assert "ご相談を受け付けました" in str(make_header(decode_header(mail["Subject"])))


async def test_english_consultation_is_acknowledged_in_english(stack: Stack, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{stack.origin}/v1/hubs/cariso/consultations", json=_request("en", f"e2e-{uuid.uuid4().hex[:8]}@example.com")
    )
    consultation_id = response.json()["consultation_id"]

    async def mailed() -> list[Any]:
        return stack.mail.about(consultation_id)

    [mail] = await wait_for(mailed, timeout=10, what="the acknowledgement email")
    assert mail["Content-Language"] == "en"
    body = mail.get_payload(decode=True).decode()
    assert "We have received your consultation" in body


async def test_staff_see_only_their_own_hubs_consultations(stack: Stack, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{stack.origin}/v1/hubs/mediso/consultations", json=_request("ja", "privacy@example.jp")
    )
    consultation_id = response.json()["consultation_id"]
    url = f"{stack.origin}/v1/hubs/mediso/consultations/{consultation_id}"

    async def visible() -> bool:
        return (await http.get(url, headers=stack.staff("mediso"))).status_code == 200

    await wait_for(visible, timeout=10, what="the consultation in reporting")
    assert (await http.get(url)).status_code == 401
    assert (await http.get(url, headers=stack.staff("cariso"))).status_code == 404
    other_hub_path = f"{stack.origin}/v1/hubs/cariso/consultations/{consultation_id}"
    assert (await http.get(other_hub_path, headers=stack.staff("cariso"))).status_code == 404


async def test_withdrawal_by_staff_reaches_reporting(stack: Stack, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{stack.origin}/v1/hubs/innohub/consultations", json=_request("en", "withdraw@example.com")
    )
    consultation_id = response.json()["consultation_id"]
    withdrawal = f"{stack.origin}/v1/hubs/innohub/consultations/{consultation_id}/withdrawal"
    answer = await http.post(withdrawal, json={"reason": "applicant_request"}, headers=stack.staff("innohub"))
    assert answer.status_code == 202, answer.text
    again = await http.post(withdrawal, json={}, headers={**stack.staff("innohub"), "Accept-Language": "ja"})
    assert again.status_code == 409
    assert again.json()["message"] == "この相談は既に取り下げられています"

    async def withdrawn() -> dict[str, Any] | None:
        view = await http.get(
            f"{stack.origin}/v1/hubs/innohub/consultations/{consultation_id}", headers=stack.staff("innohub")
        )
        body: dict[str, Any] = view.json()
        return body if view.status_code == 200 and body["status"] == "withdrawn" else None

    view = await wait_for(withdrawn, timeout=10, what="withdrawn status in reporting")
    assert "hubnet.consultation.withdrawn.v1" in [entry["type"] for entry in view["timeline"]]
