"""HTTP behaviour decided before any I/O: validation, unknown hubs, authentication; bilingual errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from shared import auth

VALID = {
    "language": "en",
    "applicant_kind": "startup",
    "organization": "Example Med Inc.",
    "title": "Regulatory path for a SaMD",
    "product_kind": "samd",
    "development_stage": "clinical",
    "topics": ["regulation"],
    "contact_name": "Alex Doe",
    "email": "alex@example.com",
    "body": "We need advice on the PMDA consultation.",
}


@pytest.fixture(scope="module")
def staff_key() -> auth.PrivateKey:
    return auth.PrivateKey.generate()


@pytest.fixture(scope="module")
def intake(staff_key: auth.PrivateKey) -> TestClient:
    # No `with`: the lifespan (Kafka, database) is not started; these requests never reach it.
    settings = IntakeSettings(
        auth_public_key=auth.public_pem(staff_key.public_key()), auth_private_key=SecretStr(auth.private_pem(staff_key))
    )
    return TestClient(create_intake(settings))


@pytest.fixture(scope="module")
def reporting(staff_key: auth.PrivateKey) -> TestClient:
    return TestClient(create_reporting(ReportingSettings(auth_public_key=auth.public_pem(staff_key.public_key()))))


def test_submission_gets_404_when_hub_unknown(intake: TestClient) -> None:
    response = intake.post("/v1/hubs/nowhere/consultations", json=VALID, headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "nowhere" in response.json()["messages"]["en"]


def test_submission_names_invalid_fields_in_japanese_when_caller_reads_japanese(intake: TestClient) -> None:
    body = {**VALID, "email": "not-an-email", "topics": []}
    del body["organization"]
    response = intake.post("/v1/hubs/mediso/consultations", json=body, headers={"Accept-Language": "ja"})
    assert response.status_code == 422
    payload = response.json()
    fields = {item["field"]: item for item in payload["fields"]}
    assert set(fields) == {"email", "topics", "organization"}
    assert fields["organization"]["message"] == "必須項目です"
    assert fields["email"]["message"] == "メールアドレスの形式が正しくありません"
    assert payload["message"].startswith("入力内容に誤りがあります")


def test_submission_errors_are_english_when_caller_reads_english(intake: TestClient) -> None:
    response = intake.post(
        "/v1/hubs/mediso/consultations",
        json={**VALID, "topics": ["astrology"]},
        headers={"Accept-Language": "en-GB,en;q=0.9"},
    )
    assert response.status_code == 422
    assert response.json()["message"] == "Some fields are invalid: topics.0"


def test_submission_gets_422_when_body_is_not_json(intake: TestClient) -> None:
    response = intake.post(
        "/v1/hubs/mediso/consultations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert [field["field"] for field in response.json()["fields"]] == ["body"]


def test_withdrawal_gets_401_when_no_token(intake: TestClient) -> None:
    response = intake.post("/v1/hubs/mediso/consultations/0b6f1f0e-5d7a-4c1e-9a59-0d8a3c2e7f11/withdrawal", json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_reporting_gets_401_when_token_forged(reporting: TestClient) -> None:
    forged = auth.issue_staff_token(auth.PrivateKey.generate(), hub="mediso", subject="mallory")
    response = reporting.get("/v1/hubs/mediso/consultations", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_reporting_gets_404_when_token_is_another_hubs(reporting: TestClient, staff_key: auth.PrivateKey) -> None:
    token = auth.issue_staff_token(staff_key, hub="cariso", subject="staff")
    response = reporting.get(
        "/v1/hubs/mediso/consultations/0b6f1f0e-5d7a-4c1e-9a59-0d8a3c2e7f11",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 404


def test_correlation_id_is_echoed(intake: TestClient) -> None:
    response = intake.post("/v1/hubs/nowhere/consultations", json=VALID, headers={"X-Correlation-ID": "abc-123"})
    assert response.headers["x-correlation-id"] == "abc-123"


def test_booleans_are_json_booleans_and_offsets_stay_in_range(
    intake: TestClient, reporting: TestClient, staff_key: auth.PrivateKey
) -> None:
    """Found by Schemathesis: 0 was taken for false, and an offset past PostgreSQL's bigint was a 500."""
    refused = intake.post("/v1/hubs/mediso/consultations", json={**VALID, "consent_to_share": 0})
    assert refused.status_code == 422
    assert [item["field"] for item in refused.json()["fields"]] == ["consent_to_share"]
    token = auth.issue_staff_token(staff_key, hub="mediso", subject="unit")
    answer = reporting.get(
        "/v1/hubs/mediso/consultations?offset=121977596924938141696", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 422
    assert answer.json()["fields"][0]["field"] == "offset"
