"""Kafka goes away: intake keeps accepting, and its outbox drains in order once the broker returns."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord

from shared.contract.topics import consultations
from tests.fault.conftest import Stack
from tests.fault.control import StackControl
from tests.support import read_until, wait_for

INTAKE_EVENTS = ("hubnet.consultation.submitted.v1", "hubnet.consultation.withdrawn.v1")


def _intake_sequences(records: list[ConsumerRecord[Any, Any]], ids: set[str]) -> dict[str, list[str]]:
    sequences: dict[str, list[str]] = defaultdict(list)
    for record in records:
        key = record.key.decode() if record.key else ""
        event_type = dict(record.headers).get("hubnet-type", b"").decode()
        if key in ids and event_type in INTAKE_EVENTS:
            sequences[key].append(event_type)
    return sequences


@pytest.mark.usefixtures("new_mail")  # the mail it causes, removed after it
async def test_intake_accepts_while_kafka_is_down_and_outbox_drains_in_order_when_it_returns(
    stack: Stack, http: httpx.AsyncClient, control: StackControl
) -> None:
    body = {
        "language": "ja",
        "applicant_kind": "startup",
        "organization": "障害試験株式会社",
        "title": "障害時の受付",
        "product_kind": "medical_device",
        "development_stage": "clinical",
        "topics": ["regulation"],
        "contact_name": "障害 試験",
        "email": "outage@example.jp",
        "body": "Kafka 停止中の相談",
    }
    await control.stop("kafka")
    try:
        accepted = []
        for _ in range(6):
            response = await http.post(f"{stack.intake}/v1/hubs/medic/consultations", json=body)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["consultation_id"])
        withdrawn = accepted[:3]
        for consultation_id in withdrawn:
            response = await http.post(
                f"{stack.intake}/v1/hubs/medic/consultations/{consultation_id}/withdrawal",
                json={"reason": "duplicate"},
                headers=stack.staff("medic"),
            )
            assert response.status_code == 202, response.text
        ready = await http.get(f"{stack.intake}/readyz")
        assert ready.status_code == 200
        assert ready.json()["kafka"] == "unavailable"
    finally:
        await control.start("kafka")

    expected = {cid: list(INTAKE_EVENTS) if cid in withdrawn else [INTAKE_EVENTS[0]] for cid in accepted}
    records = await read_until(
        stack.bootstrap,
        consultations("medic"),
        lambda rs: _intake_sequences(rs, set(accepted)) == expected,
        timeout=120,
    )
    assert _intake_sequences(records, set(accepted)) == expected

    async def reporting_caught_up() -> bool:
        for consultation_id in accepted:
            view = await http.get(
                f"{stack.reporting}/v1/hubs/medic/consultations/{consultation_id}", headers=stack.staff("medic")
            )
            if view.status_code != 200:
                return False
            status = view.json()["status"]
            if (consultation_id in withdrawn) != (status == "withdrawn"):
                return False
        return True

    await wait_for(reporting_caught_up, timeout=120, interval=0.5, what="reporting to catch up after the outage")
