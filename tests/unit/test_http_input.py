"""Bad input refused before any I/O: control characters, oversized bodies; errors in the negotiated language."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.types import Message, Scope

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from shared import auth
from shared.http import install_error_handlers, install_load_shedding
from tests.unit.test_http_contract import VALID

URL = "/v1/hubs/mediso/consultations"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # No lifespan: nothing here may reach the database or Kafka.
    key = auth.PrivateKey.generate()
    return create_intake(
        IntakeSettings(
            http_max_body_bytes=LIMIT,
            auth_public_key=auth.public_pem(key.public_key()),
            auth_private_key=SecretStr(auth.private_pem(key)),
        )
    )


@pytest.fixture(scope="module")
def intake(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", "a\u0000b"),
        ("body", "bell\u0007"),
        ("body", "escape \u001b[31m"),
        ("title", "tab\tin a title"),
        ("organization", "line\nbreak"),
        ("contact_name", "delete\u007f"),
        ("phone", "03\u0085 1234"),
    ],
)
def test_submission_gets_422_naming_the_field_when_text_holds_control_characters(
    intake: TestClient, field: str, value: str
) -> None:
    # json.dumps escapes as "\u0000", as a client's JSON would carry them.
    response = intake.post(
        URL,
        content=json.dumps({**VALID, field: value}),
        headers={"Content-Type": "application/json", "Accept-Language": "ja"},
    )
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "validation_failed"
    [item] = payload["fields"]
    assert item["field"] == field
    assert item["message"] == "制御文字（NUL など）は使用できません"
    assert item["message_en"] == "Control characters (such as NUL) are not allowed"
    assert payload["message"] == f"入力内容に誤りがあります: {field}"


def test_submission_gets_422_when_text_holds_a_lone_surrogate(intake: TestClient) -> None:
    response = intake.post(
        URL, content=json.dumps({**VALID, "body": "\ud800"}), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["message_en"] == "The text holds characters that are not valid Unicode"


def test_control_character_error_is_english_when_caller_reads_english(intake: TestClient) -> None:
    response = intake.post(URL, json={**VALID, "body": "a\u0000b"}, headers={"Accept-Language": "en"})
    assert response.status_code == 422
    payload = response.json()
    assert payload["message"] == "Some fields are invalid: body"
    assert payload["fields"][0]["message"] == "Control characters (such as NUL) are not allowed"
    assert payload["messages"] == {"ja": "入力内容に誤りがあります: body", "en": "Some fields are invalid: body"}


def test_free_text_keeps_line_breaks_and_tabs_when_only_they_are_present(intake: TestClient) -> None:
    # Validation passes, so the request goes on to the unknown hub's 404, not a 422.
    response = intake.post("/v1/hubs/nowhere/consultations", json={**VALID, "body": "line one\r\nline two\n\tindented"})
    assert response.status_code == 404


def test_errors_follow_quality_values_when_several_languages_are_acceptable(intake: TestClient) -> None:
    response = intake.post(
        "/v1/hubs/nowhere/consultations", json=VALID, headers={"Accept-Language": "en;q=0.1, ja;q=0.9"}
    )
    assert response.status_code == 404
    assert response.json()["message"] == "窓口 'nowhere' が見つかりません"
    assert response.headers["content-language"] == "ja"
    response = intake.post(
        "/v1/hubs/nowhere/consultations", json=VALID, headers={"Accept-Language": "ja;q=0.2, en-US;q=0.8"}
    )
    assert response.json()["message"] == "Hub 'nowhere' not found"
    assert response.headers["content-language"] == "en"


def test_unknown_path_gets_a_bilingual_404(intake: TestClient) -> None:
    response = intake.get("/v1/nothing-here", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "Not found",
        "messages": {"ja": "見つかりません", "en": "Not found"},
    }


def test_wrong_method_gets_a_bilingual_405_keeping_the_allow_header(intake: TestClient) -> None:
    response = intake.delete(URL, headers={"Accept-Language": "ja"})
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response.json()["message"] == "このメソッドは使用できません"
    assert "POST" in response.headers["allow"]


async def test_submission_gets_413_before_the_body_is_read_when_content_length_is_over_the_limit(
    app: FastAPI,
) -> None:
    asked_for_body = False
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal asked_for_body
        asked_for_body = True
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = {"content-type": "application/json", "content-length": str(LIMIT + 1), "accept-language": "en"}
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("intake", 80),
    }
    await app(scope, receive, send)
    start, *body = sent
    assert start["status"] == 413
    assert not asked_for_body, "the body must not be read"
    assert (b"content-language", b"en") in start["headers"]
    payload = json.loads(b"".join(message["body"] for message in body))
    assert payload["error"] == "body_too_large"
    assert payload["message"] == f"The request body is larger than {LIMIT} bytes"


def test_submission_gets_bilingual_413_when_declared_length_is_over_the_limit(intake: TestClient) -> None:
    response = intake.post(
        URL, content=b"x" * (LIMIT + 1), headers={"Content-Type": "application/json", "Accept-Language": "ja"}
    )
    assert response.status_code == 413
    payload = response.json()
    assert payload["error"] == "body_too_large"
    assert payload["message"] == f"リクエストの本文が大きすぎます（上限 {LIMIT} バイト）"
    assert payload["messages"]["en"] == f"The request body is larger than {LIMIT} bytes"


async def test_chunked_submission_is_cut_off_at_the_limit_while_streaming(app: FastAPI) -> None:
    chunk = b" " * 8192
    chunks_total = 4 * LIMIT // len(chunk)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(chunks_total):
            sent += 1
            yield chunk

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://intake") as client:
        response = await client.post(
            URL, content=body(), headers={"Content-Type": "application/json", "Accept-Language": "en"}
        )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert response.json()["error"] == "body_too_large"
    assert response.json()["messages"]["ja"].startswith("リクエストの本文が大きすぎます")
    assert sent <= LIMIT // len(chunk) + 1, f"read {sent} of {chunks_total} chunks: not cut off at the limit"


async def test_chunked_submission_within_the_limit_is_read_whole(app: FastAPI) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"language": '
        yield b'"xx"}'

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://intake") as client:
        response = await client.post(URL, content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "language" in {item["field"] for item in response.json()["fields"]}


async def test_requests_past_the_limit_in_progress_get_503_with_retry_after_at_once_but_probes_still_answer() -> None:
    release = asyncio.Event()
    inner = FastAPI()
    install_error_handlers(inner)

    @inner.get("/slow")
    async def slow() -> dict[str, str]:
        await release.wait()
        return {"status": "done"}

    @inner.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_load_shedding(inner, 1)
    transport = httpx.ASGITransport(inner)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        first = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.05)
        refused = await client.get("/slow", headers={"Accept-Language": "en"})
        probe = await client.get("/healthz")
        release.set()
        assert (await first).status_code == 200
    assert (refused.status_code, refused.headers["Retry-After"], refused.json()["error"]) == (503, "1", "overloaded")
    assert refused.json()["messages"]["ja"] == "ただいま混み合っています。少し時間をおいて再度お試しください"
    assert probe.status_code == 200
