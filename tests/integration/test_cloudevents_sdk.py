"""Records hubnet publishes, read back from the real broker by the official CloudEvents SDK (`cloudevents` 2.x).

Intake and matching run as composed in production: a submission over HTTP is staged in intake's outbox and
relayed by `shared.kafka.OutboxProducer`; matching consumes it and relays its `match.proposed` (which
carries `causationid`) through the same publisher. Both records, as the broker hands them out, must be
structured-mode CloudEvents for the SDK, equal attribute for attribute to the envelope each service staged.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake import tables as intake_tables
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.matching import tables as matching_tables
from services.matching.app import create_app as create_matching
from services.matching.settings import MatchingSettings
from shared.contract import Envelope
from tests import cloudevents_sdk
from tests.integration.conftest import Infra, TestHub, running
from tests.support import read_topic

REQUEST = {
    "language": "ja",
    "applicant_kind": "startup",
    "organization": "株式会社クラウドイベンツ",
    "title": "SaMDの承認申請について",
    "product_kind": "samd",
    "development_stage": "clinical",
    "topics": ["regulation"],
    "contact_name": "佐藤 一郎",
    "email": "ichiro@example.jp",
    "body": "承認申請の進め方を相談したいです。",
}
CORRELATION = "0d5e7f3a-8c1b-4e29-b6a4-2f9c0e1d7b35"


async def _staged(database_url: str) -> dict[str, bytes]:
    """Every envelope the two services staged, by event type, as the bytes they put in their outbox."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            staged: dict[str, bytes] = {}
            for table in (intake_tables.outbox_table, matching_tables.outbox_table):
                for row in await connection.execute(select(table.c.event_type, table.c.payload)):
                    assert row.event_type not in staged, f"{row.event_type} staged twice"
                    staged[row.event_type] = row.payload
    finally:
        await engine.dispose()
    return staged


async def test_records_relayed_to_the_broker_are_structured_cloudevents_equal_to_the_staged_envelopes(
    infra: Infra, hub: TestHub, database_url: str, service_settings: dict[str, Any]
) -> None:
    intake, matching = (
        create_intake(IntakeSettings(**service_settings)),
        create_matching(MatchingSettings(**service_settings)),
    )
    async with (
        running(intake),
        running(matching),
        httpx.AsyncClient(transport=httpx.ASGITransport(intake), base_url="http://intake") as client,
    ):
        response = await client.post(
            f"/v1/hubs/{hub.id}/consultations", json=REQUEST, headers={"X-Correlation-ID": CORRELATION}
        )
        assert response.status_code == 202, response.text
        records = await read_topic(infra.bootstrap, hub.topic, count=2, timeout=60)
    consultation_id = response.json()["consultation_id"]
    staged = await _staged(database_url)
    assert set(staged) == {"hubnet.consultation.submitted.v1", "hubnet.match.proposed.v1"}

    events = {}
    for record in records:
        assert record.value is not None
        message = cloudevents_sdk.message(record.headers, record.key, record.value)
        event = cloudevents_sdk.read_structured(message)
        envelope = Envelope.model_validate_json(staged[event.get_type()])
        assert record.value == staged[event.get_type()], "the record's value is the staged envelope, byte for byte"
        assert record.key == consultation_id.encode()
        cloudevents_sdk.assert_same_event(event, envelope, key=record.key)
        events[event.get_type()] = event

    submitted, proposed = events["hubnet.consultation.submitted.v1"], events["hubnet.match.proposed.v1"]
    assert submitted.get_source() == "/hubnet/intake"
    assert proposed.get_source() == "/hubnet/matching"
    assert submitted.get_extension("correlationid") == proposed.get_extension("correlationid") == CORRELATION
    assert proposed.get_extension("causationid") == submitted.get_id()
    assert submitted.get_extension("hub") == proposed.get_extension("hub") == hub.id
    data = submitted.get_data()
    assert isinstance(data, dict)
    assert data["personal"]["email"] == "ichiro@example.jp"
    assert data["title"] == REQUEST["title"]
