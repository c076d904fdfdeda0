"""Every staff channel and command of intake, on the real database: what each stores, which event each stages
(with the acting person), and what each refuses; staff sign-in with argon2 and lockout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.intake import staff, tables
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared import auth, db
from shared.contract import Envelope
from shared.contract.topics import consultations
from shared.settings import CommonSettings
from tests.integration.conftest import Infra, TestHub
from tests.integration.test_intake_input import REQUEST

JAPAN = ZoneInfo("Asia/Tokyo")
# 2027-01-12 is a Tuesday and no public holiday; 2027-01-11 is 成人の日 (Coming of Age Day).
SLOT = datetime(2027, 1, 12, 10, 0, tzinfo=JAPAN)


@pytest.fixture
async def intake(service_settings: dict[str, Any]) -> AsyncIterator[FastAPI]:
    app = create_app(IntakeSettings(**service_settings))
    yield app
    await app.state.runtime.engine.dispose()


@pytest.fixture
async def client(intake: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(intake), base_url="http://intake") as http:
        yield http


def _staff(infra: Infra, hub: str, *roles: auth.StaffRole, subject: str = "sato@hub.example.jp") -> dict[str, str]:
    token = auth.issue_staff_token(auth.signing_key(infra.env), hub=hub, subject=subject, roles=roles)
    return {"Authorization": f"Bearer {token}"}


async def _events(database_url: str, consultation_id: str) -> list[Envelope]:
    """The consultation's events staged in intake's outbox, in order."""
    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    try:
        async with engine.connect() as connection:
            outbox = tables.outbox_table
            rows = await connection.execute(
                select(outbox.c.payload).where(outbox.c.key == consultation_id).order_by(outbox.c.id)
            )
            return [Envelope.model_validate_json(row.payload) for row in rows]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("channel", ["phone", "email", "event"])
async def test_staff_enter_a_consultation_received_by_phone_email_or_at_an_event(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra, database_url: str, channel: str
) -> None:
    answer = await client.post(
        f"/v1/hubs/{hub.id}/entries",
        json={**REQUEST, "channel": channel},
        headers=_staff(infra, hub.id, auth.StaffRole.SCREENER),
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["reference"].startswith(hub.id.upper())
    [event] = await _events(database_url, answer.json()["consultation_id"])
    assert event.type == "hubnet.consultation.submitted.v1"
    assert event.data["channel"] == channel
    assert event.data["entered_by"] == "sato@hub.example.jp"
    assert event.data["open_hours_slot"] is None


async def test_open_hours_are_booked_on_a_weekday_slot_once_and_refused_elsewhere(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra, database_url: str
) -> None:
    url, headers = f"/v1/hubs/{hub.id}/entries", _staff(infra, hub.id, auth.StaffRole.HUB_ADMIN)
    booked = await client.post(
        url, json={**REQUEST, "channel": "open_hours", "open_hours_slot": SLOT.isoformat()}, headers=headers
    )
    assert booked.status_code == 202, booked.text
    [event] = await _events(database_url, booked.json()["consultation_id"])
    assert datetime.fromisoformat(event.data["open_hours_slot"]) == SLOT

    again = await client.post(
        url, json={**REQUEST, "channel": "open_hours", "open_hours_slot": SLOT.isoformat()}, headers=headers
    )
    assert (again.status_code, again.json()["error"]) == (409, "slot_taken")
    # The refused booking's one statement (consultation, link, outbox row) failed whole: nothing of it staged.
    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    try:
        async with engine.connect() as connection:
            payloads = await connection.scalars(
                select(tables.outbox_table.c.payload).where(tables.outbox_table.c.topic == consultations(hub.id))
            )
            booked_slots = [
                event.data["open_hours_slot"]
                for event in map(Envelope.model_validate_json, payloads)
                if event.data.get("open_hours_slot")
            ]
    finally:
        await engine.dispose()
    assert len(booked_slots) == 1

    for wrong in (
        datetime(2027, 1, 11, 10, 0, tzinfo=JAPAN),  # a public holiday
        datetime(2027, 1, 16, 10, 0, tzinfo=JAPAN),  # a Saturday
        datetime(2027, 1, 12, 14, 0, tzinfo=JAPAN),  # not 10:00 or 11:00
    ):
        refused = await client.post(
            url, json={**REQUEST, "channel": "open_hours", "open_hours_slot": wrong.isoformat()}, headers=headers
        )
        assert refused.status_code == 422, wrong
        assert [field["field"] for field in refused.json()["fields"]] == ["open_hours_slot"]
    missing = await client.post(url, json={**REQUEST, "channel": "open_hours"}, headers=headers)
    assert [field["field"] for field in missing.json()["fields"]] == ["open_hours_slot"]
    stray = await client.post(
        url, json={**REQUEST, "channel": "phone", "open_hours_slot": SLOT.isoformat()}, headers=headers
    )
    assert stray.status_code == 422


async def test_a_consultation_is_screened_noted_and_closed_each_step_an_event_naming_the_actor(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra, database_url: str
) -> None:
    submitted = await client.post(f"/v1/hubs/{hub.id}/consultations", json=REQUEST)
    consultation_id = submitted.json()["consultation_id"]
    base = f"/v1/hubs/{hub.id}/consultations/{consultation_id}"
    screener = _staff(infra, hub.id, auth.StaffRole.SCREENER, subject="screener@hub.example.jp")
    expert = _staff(infra, hub.id, auth.StaffRole.EXPERT_SUPPORTER, subject="expert@hub.example.jp")

    early = await client.post(f"{base}/closure", json={"outcome": "advice_given"}, headers=screener)
    assert (early.status_code, early.json()["error"]) == (409, "not_screened")
    screened = await client.post(f"{base}/screening", json={"decision": "accepted"}, headers=screener)
    assert screened.json() == {"consultation_id": consultation_id, "status": "accepted"}
    twice = await client.post(f"{base}/screening", json={"decision": "accepted"}, headers=screener)
    assert (twice.status_code, twice.json()["error"]) == (409, "already_screened")
    noted = await client.post(f"{base}/notes", json={"text": "電話で状況を確認。\n来週面談。"}, headers=expert)
    assert noted.status_code == 202, noted.text
    closed = await client.post(f"{base}/closure", json={"outcome": "matched_with_expert"}, headers=screener)
    assert closed.json()["status"] == "closed"
    late = await client.post(f"{base}/withdrawal", json={}, headers=screener)
    assert (late.status_code, late.json()["error"]) == (409, "closed")

    events = await _events(database_url, consultation_id)
    assert [(event.type.split(".")[2], event.data.get("recorded_by")) for event in events] == [
        ("submitted", None),
        ("screened", "screener@hub.example.jp"),
        ("note_added", "expert@hub.example.jp"),
        ("closed", "screener@hub.example.jp"),
    ]
    assert events[2].data["personal"]["text"] == "電話で状況を確認。\n来週面談。"
    assert events[3].data["outcome"] == "matched_with_expert"


async def test_out_of_scope_needs_a_reason_code_and_ends_the_consultation(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra, database_url: str
) -> None:
    consultation_id = (await client.post(f"/v1/hubs/{hub.id}/consultations", json=REQUEST)).json()["consultation_id"]
    base = f"/v1/hubs/{hub.id}/consultations/{consultation_id}"
    headers = _staff(infra, hub.id, auth.StaffRole.SCREENER)
    bare = await client.post(f"{base}/screening", json={"decision": "out_of_scope"}, headers=headers)
    assert (bare.status_code, bare.json()["error"]) == (422, "reason_required")
    screened = await client.post(
        f"{base}/screening", json={"decision": "out_of_scope", "reason": "better_at_another_hub"}, headers=headers
    )
    assert screened.json()["status"] == "out_of_scope"
    closing = await client.post(f"{base}/closure", json={"outcome": "advice_given"}, headers=headers)
    assert closing.status_code == 409
    [_, event] = await _events(database_url, consultation_id)
    assert (event.data["decision"], event.data["reason"]) == ("out_of_scope", "better_at_another_hub")


async def test_staff_withdraw_on_request_once(client: httpx.AsyncClient, hub: TestHub, infra: Infra) -> None:
    consultation_id = (await client.post(f"/v1/hubs/{hub.id}/consultations", json=REQUEST)).json()["consultation_id"]
    url = f"/v1/hubs/{hub.id}/consultations/{consultation_id}/withdrawal"
    headers = _staff(infra, hub.id, auth.StaffRole.HUB_ADMIN)
    assert (await client.post(url, json={"reason": "applicant_request"}, headers=headers)).json()[
        "status"
    ] == "withdrawn"
    again = await client.post(url, json={}, headers=headers)
    assert (again.status_code, again.json()["error"]) == (409, "already_withdrawn")


async def test_staff_sign_in_with_their_own_account_and_get_a_token_with_their_roles(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra
) -> None:
    admin = _staff(infra, hub.id, auth.StaffRole.HUB_ADMIN)
    account = {
        "email": "Yamada@Hub.example.jp",
        "display_name": "山田 花子",
        "roles": ["screener"],
        "password": "correct horse battery",
    }
    opened = await client.post(f"/v1/hubs/{hub.id}/staff", json=account, headers=admin)
    assert opened.status_code == 201, opened.text
    assert (await client.post(f"/v1/hubs/{hub.id}/staff", json=account, headers=admin)).status_code == 409

    signed = await client.post(
        "/v1/staff/sessions",
        json={"hub": hub.id, "email": "yamada@hub.example.jp", "password": "correct horse battery"},
    )
    assert signed.status_code == 200, signed.text
    principal = auth.verify_staff_token(
        auth.verification_key(IntakeSettings.model_validate(_keys(infra))), signed.json()["token"]
    )
    assert principal == auth.StaffPrincipal(hub.id, "yamada@hub.example.jp", frozenset({auth.StaffRole.SCREENER}))
    # The token works: a screener enters a phone consultation with it.
    entered = await client.post(
        f"/v1/hubs/{hub.id}/entries",
        json={**REQUEST, "channel": "phone"},
        headers={"Authorization": f"Bearer {signed.json()['token']}"},
    )
    assert entered.status_code == 202


async def test_repeated_failures_lock_the_account_and_no_answer_tells_an_account_exists(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra, database_url: str
) -> None:
    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    try:
        async with db.create_sessions(engine).begin() as session:
            await staff.create_account(
                session,
                hub=hub.id,
                email="kato@hub.example.jp",
                display_name="加藤",
                roles=[auth.StaffRole.ANALYST],
                password="a long enough password",
            )
    finally:
        await engine.dispose()

    async def sign_in(email: str, password: str) -> httpx.Response:
        return await client.post("/v1/staff/sessions", json={"hub": hub.id, "email": email, "password": password})

    unknown = await sign_in("nobody@hub.example.jp", "whatever")
    for _ in range(staff.LOCK_AFTER):
        wrong = await sign_in("kato@hub.example.jp", "not the password")
        assert wrong.status_code == 401
        assert wrong.json() == unknown.json()
    locked = await sign_in("kato@hub.example.jp", "a long enough password")
    assert (locked.status_code, locked.json()) == (401, unknown.json())


def _keys(infra: Infra) -> dict[str, str]:
    return {"auth_public_key_file": infra.env["HUBNET_AUTH_PUBLIC_KEY_FILE"], "environment": "local"}


async def test_a_token_from_elsewhere_gets_404_and_a_role_without_the_right_gets_403(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra
) -> None:
    consultation_id = (await client.post(f"/v1/hubs/{hub.id}/consultations", json=REQUEST)).json()["consultation_id"]
    url = f"/v1/hubs/{hub.id}/consultations/{consultation_id}/screening"
    elsewhere = await client.post(
        url, json={"decision": "accepted"}, headers=_staff(infra, "mediso", auth.StaffRole.HUB_ADMIN)
    )
    missing = await client.post(
        f"/v1/hubs/{hub.id}/consultations/{uuid.uuid4()}/screening",
        json={"decision": "accepted"},
        headers=_staff(infra, hub.id, auth.StaffRole.SCREENER),
    )
    assert elsewhere.status_code == missing.status_code == 404
    assert elsewhere.json()["error"] == missing.json()["error"] == "not_found"
    analyst = await client.post(
        url, json={"decision": "accepted"}, headers=_staff(infra, hub.id, auth.StaffRole.ANALYST)
    )
    assert (analyst.status_code, analyst.json()["error"]) == (403, "forbidden")


async def test_likely_duplicates_are_accepted_and_flagged_never_merged(
    client: httpx.AsyncClient, hub: TestHub, database_url: str
) -> None:
    url = f"/v1/hubs/{hub.id}/consultations"
    first = {**REQUEST, "email": "dup@example.jp", "corporate_number": "7000012050002", "product_name": "ＡＩ 診断"}
    earlier = (await client.post(url, json=first)).json()["consultation_id"]
    # The same address and the same product, however typed: flagged.
    again = (await client.post(url, json={**first, "product_name": "ai診断", "title": "再送"})).json()
    # The same corporate number from another person, same product: flagged too.
    colleague = {**first, "email": "colleague@example.jp"}
    third = (await client.post(url, json=colleague)).json()
    # Another product of the same company: not a duplicate.
    other = (await client.post(url, json={**first, "product_name": "別の製品"})).json()

    async def flagged(consultation_id: str) -> list[str]:
        [event] = await _events(database_url, consultation_id)
        return [str(found) for found in event.data["possible_duplicates"]]

    assert await flagged(earlier) == []
    assert await flagged(again["consultation_id"]) == [earlier]
    assert await flagged(third["consultation_id"]) == [earlier, again["consultation_id"]]
    assert await flagged(other["consultation_id"]) == []
    # Each is a consultation of its own.
    assert len({earlier, again["consultation_id"], third["consultation_id"], other["consultation_id"]}) == 4


async def test_a_leaked_applicant_link_is_revoked_by_staff_and_then_opens_nothing(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra
) -> None:
    submitted = (await client.post(f"/v1/hubs/{hub.id}/consultations", json=REQUEST)).json()
    page = "/portal/my/" + submitted["applicant_page"].rsplit("/", 1)[1]
    opened = await client.get(page)
    assert opened.status_code == 200
    assert submitted["reference"] in opened.text
    assert opened.headers["Referrer-Policy"] == "no-referrer"

    revoked = await client.post(
        f"/v1/hubs/{hub.id}/consultations/{submitted['consultation_id']}/applicant-links/revocation",
        headers=_staff(infra, hub.id, auth.StaffRole.SCREENER),
    )
    assert revoked.json() == {"consultation_id": submitted["consultation_id"], "revoked": 1}
    gone = await client.get(page)
    unknown = await client.get("/portal/my/" + "x" * 43)
    assert gone.status_code == unknown.status_code == 404
    assert gone.text == unknown.text  # nothing tells a revoked link from one that never was


async def test_the_applicants_page_says_what_staff_did_in_plain_words(
    client: httpx.AsyncClient, hub: TestHub, infra: Infra
) -> None:
    submitted = (await client.post(f"/v1/hubs/{hub.id}/consultations", json=REQUEST)).json()
    page = "/portal/my/" + submitted["applicant_page"].rsplit("/", 1)[1]
    base = f"/v1/hubs/{hub.id}/consultations/{submitted['consultation_id']}"
    headers = _staff(infra, hub.id, auth.StaffRole.SCREENER)
    assert "受付済み" in (await client.get(page)).text
    await client.post(f"{base}/screening", json={"decision": "accepted"}, headers=headers)
    accepted = await client.get(f"{page}?lang=en")
    assert "Being handled" in accepted.text
    assert 'action="/portal/my/' in accepted.text  # still open: the applicant may add information
    await client.post(f"{base}/closure", json={"outcome": "advice_given"}, headers=headers)
    closed = await client.get(f"{page}?lang=en")
    assert "Closed" in closed.text
    assert 'action="/portal/my/' not in closed.text  # nothing more to add, nothing to withdraw
    # A form sent from a page opened before the closure changes nothing, and says so.
    late = await client.post(f"{page}/supplement?lang=en", data={"note": "追加です"})
    assert (late.status_code, late.headers["location"]) == (303, f"{page}?lang=en&done=closed")
    withdrawn = await client.post(f"{page}/withdraw?lang=en")
    assert withdrawn.headers["location"].endswith("done=closed")
