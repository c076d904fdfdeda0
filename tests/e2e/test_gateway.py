"""The gateway routes each path to its owner and keeps the services' operational endpoints off the public origin."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import Stack
from tests.e2e.test_consultation_flow import _request
from tests.support import wait_for


async def test_reads_go_to_reporting_and_commands_to_intake_under_one_path(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    path = "/v1/hubs/mediso/consultations"
    submitted = await http.post(f"{stack.origin}{path}", json=_request("ja", f"gw-{uuid.uuid4().hex[:8]}@example.jp"))
    assert submitted.status_code == 202, submitted.text
    detail = f"{path}/{submitted.json()['consultation_id']}"

    async def projected() -> httpx.Response | None:
        answer = await http.get(f"{stack.origin}{detail}", headers=stack.staff("mediso"))
        return answer if answer.status_code == 200 else None

    through_gateway = await wait_for(projected, timeout=10, what="the submission, read through the gateway")
    from_reporting = await http.get(f"{stack.reporting}{detail}", headers=stack.staff("mediso"))
    assert through_gateway.json()["id"] == from_reporting.json()["id"] == submitted.json()["consultation_id"]
    # intake has no GET here, reporting no POST: each answer could only come from its owner.
    assert (await http.get(f"{stack.intake}{path}", headers=stack.staff("mediso"))).status_code == 405
    assert (await http.post(f"{stack.reporting}{path}", json={})).status_code == 405

    roster = await http.get(f"{stack.origin}/v1/hubs/mediso/supporters", headers=stack.staff("mediso"))
    assert roster.status_code == 200
    assert (
        roster.json()
        == (await http.get(f"{stack.matching}/v1/hubs/mediso/supporters", headers=stack.staff("mediso"))).json()
    )


async def test_operational_endpoints_are_not_public_and_unknown_paths_get_a_bilingual_404(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    for path in ("/metrics", "/healthz", "/readyz", "/no-such-page"):
        answer = await http.get(f"{stack.origin}{path}", headers={"Accept-Language": "en;q=0.5, ja;q=0.9"})
        assert answer.status_code == 404, path
        body = answer.json()
        assert body["error"] == "not_found"
        assert body["message"] == body["messages"]["ja"]
        assert set(body["messages"]) == {"ja", "en"}
    assert (await http.get(f"{stack.intake}/metrics")).status_code == 200, "still on the service's own port"


async def test_each_services_openapi_is_published_on_the_origin(stack: Stack, http: httpx.AsyncClient) -> None:
    for service in ("intake", "matching", "notify", "reporting"):
        answer = await http.get(f"{stack.origin}/openapi/{service}.json")
        assert answer.status_code == 200, service
        assert answer.json()["info"]["title"] == f"hubnet {service}"
    assert (await http.get(f"{stack.origin}/", follow_redirects=False)).headers["location"] == "/portal/"
