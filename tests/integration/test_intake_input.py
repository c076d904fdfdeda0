"""Intake's input on the real database: idempotency keys bound to their request, bad input, schema drift."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from services.intake import tables
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared import db
from shared.settings import CommonSettings
from tests.integration.conftest import TestHub

REQUEST = {
    "language": "ja",
    "applicant_kind": "startup",
    "organization": "株式会社サンプル",
    "title": "治験計画の相談",
    "product_kind": "drug",
    "development_stage": "clinical",
    "topics": ["regulation", "fundraising"],
    "contact_name": "山田 花子",
    "email": "hanako@example.jp",
    "body": "治験計画について\n助言をお願いします。",
}


@pytest.fixture
async def intake(service_settings: dict[str, Any]) -> AsyncIterator[FastAPI]:
    # The routes alone: the relay and broker are not needed to store a consultation.
    app = create_app(IntakeSettings(**service_settings))
    yield app
    await app.state.runtime.engine.dispose()


@pytest.fixture
async def client(intake: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(intake), base_url="http://intake") as http:
        yield http


async def _stored(database_url: str) -> list[tuple[uuid.UUID, str | None, str | None]]:
    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(tables.Consultation.id, tables.Consultation.idempotency_key, tables.Consultation.request_sha256)
            )
            return [(row.id, row.idempotency_key, row.request_sha256) for row in rows]
    finally:
        await engine.dispose()


async def test_same_idempotency_key_answers_the_first_id_when_the_request_is_the_same_in_another_json_form(
    client: httpx.AsyncClient, hub: TestHub, database_url: str
) -> None:
    url = f"/v1/hubs/{hub.id}/consultations"
    first = await client.post(url, json=REQUEST, headers={"Idempotency-Key": "form-1"})
    reordered = json.dumps(dict(reversed(list(REQUEST.items()))), indent=2, ensure_ascii=True)
    again = await client.post(
        url, content=reordered, headers={"Idempotency-Key": "form-1", "Content-Type": "application/json"}
    )
    assert (first.status_code, again.status_code) == (202, 202), again.text
    assert again.json()["consultation_id"] == first.json()["consultation_id"]
    [(_, key, request_sha256)] = await _stored(database_url)
    assert key == "form-1"
    assert request_sha256 is not None
    assert len(request_sha256) == 64


async def test_same_idempotency_key_gets_422_when_the_request_differs(
    client: httpx.AsyncClient, hub: TestHub, database_url: str
) -> None:
    url = f"/v1/hubs/{hub.id}/consultations"
    first = await client.post(url, json=REQUEST, headers={"Idempotency-Key": "form-2"})
    assert first.status_code == 202
    changed = {**REQUEST, "title": "別の相談"}
    japanese = await client.post(url, json=changed, headers={"Idempotency-Key": "form-2"})
    english = await client.post(url, json=changed, headers={"Idempotency-Key": "form-2", "Accept-Language": "en"})
    assert japanese.status_code == english.status_code == 422
    assert japanese.json()["error"] == "idempotency_key_reused"
    assert japanese.json()["message"] == "この Idempotency-Key は内容の異なるリクエストで既に使われています"
    assert english.json()["message"] == "This Idempotency-Key was already used with a different request"
    assert english.json()["messages"] == japanese.json()["messages"]
    # The key stays bound to the first request; another key is a new consultation.
    assert (await client.post(url, json=REQUEST, headers={"Idempotency-Key": "form-2"})).status_code == 202
    assert (await client.post(url, json=changed, headers={"Idempotency-Key": "form-3"})).status_code == 202
    assert len(await _stored(database_url)) == 2


async def test_one_consultation_and_422s_when_concurrent_requests_share_a_key_but_differ(
    client: httpx.AsyncClient, hub: TestHub, database_url: str
) -> None:
    url = f"/v1/hubs/{hub.id}/consultations"
    answers = await asyncio.gather(
        *(
            client.post(url, json={**REQUEST, "title": f"相談 {n}"}, headers={"Idempotency-Key": "race"})
            for n in range(6)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] + [422] * 5, [answer.text for answer in answers]
    [(consultation_id, _, _)] = await _stored(database_url)
    [accepted] = [answer for answer in answers if answer.status_code == 202]
    assert accepted.json()["consultation_id"] == str(consultation_id)


async def test_submission_gets_422_and_stores_nothing_when_text_holds_a_nul(
    client: httpx.AsyncClient, hub: TestHub, database_url: str
) -> None:
    response = await client.post(
        f"/v1/hubs/{hub.id}/consultations",
        content=json.dumps({**REQUEST, "body": "a\u0000b"}),
        headers={"Content-Type": "application/json", "Accept-Language": "en"},
    )
    assert response.status_code == 422, response.text
    assert [item["field"] for item in response.json()["fields"]] == ["body"]
    assert await _stored(database_url) == []


async def test_database_errors_hide_statement_parameters_when_they_carry_personal_data(database_url: str) -> None:
    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                # The server's message names no value; SQLAlchemy's would list the parameters.
                await connection.execute(
                    text("SELECT length(CAST(:email AS text)) / 0"), {"email": "hanako@example.jp"}
                )
    finally:
        await engine.dispose()
    assert "hanako@example.jp" not in str(raised.value)
    assert "hidden" in str(raised.value)


async def test_intake_migrations_build_the_tables_and_columns_the_code_declares(database_url: str) -> None:
    schema = tables.metadata.schema

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _: kind != "schema" or name == schema,
                "version_table_schema": schema,
            },
        )
        return list(compare_metadata(context, tables.metadata))

    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    # Tables and columns (0002 adds one). Index names are left out: 0001 names the hub index
    # ix_consultations_hub where the naming convention says ix_intake_consultations_hub, which the
    # regenerated migrations settle.
    drift = [str(change) for change in diff if not isinstance(change, tuple) or "index" not in change[0]]
    assert drift == [], "\n".join(drift)


async def test_real_server_answers_413_before_the_body_arrives_when_content_length_is_over_the_limit(
    intake: FastAPI, hub: TestHub
) -> None:
    config = uvicorn.Config(intake, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Headers only: the 2 MiB the request announces are never sent.
        writer.write(
            (
                f"POST /v1/hubs/{hub.id}/consultations HTTP/1.1\r\nHost: intake\r\n"
                "Content-Type: application/json\r\nAccept-Language: ja\r\n"
                f"Content-Length: {2 * 1024 * 1024}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    payload = json.loads(body)
    assert payload["error"] == "body_too_large"
    assert payload["message"] == "リクエストの本文が大きすぎます（上限 1048576 バイト）"
