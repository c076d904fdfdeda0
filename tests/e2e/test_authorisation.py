"""The authorisation matrix through the gateway: every staff route × every role × own hub or another's.

Allowed (by `shared.auth.PERMISSIONS`) means the route did its work or refused on the record's state (409),
never 401/403/404; a role without the right gets 403; another hub's token gets 404 on every route, whatever
its role, exactly as for a consultation that does not exist; no token gets 401.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared import auth
from shared.auth import Action, StaffRole
from tests.e2e.conftest import Stack
from tests.support import wait_for

HUB = "innohub"
OTHER = "fukushima"
REQUEST = {
    "applicant_kind": "academia",
    "organization": "認可試験大学",
    "title": "権限の試験",
    "product_kind": "diagnostics",
    "development_stage": "applied_research",
    "topics": ["ip_strategy"],
    "contact_name": "権限 試験",
    "email": "matrix@example.jp",
    "body": "権限の試験です。",
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {hub} and {id} filled in per call
    action: Action
    body: dict[str, Any] | None = None


ROUTES = (
    Route("POST", "/v1/hubs/{hub}/entries", Action.ENTER, {**REQUEST, "channel": "phone"}),
    Route("POST", "/v1/hubs/{hub}/consultations/{id}/screening", Action.SCREEN, {"decision": "accepted"}),
    Route("POST", "/v1/hubs/{hub}/consultations/{id}/notes", Action.NOTE, {"text": "権限の試験のメモ"}),
    Route("POST", "/v1/hubs/{hub}/consultations/{id}/closure", Action.CLOSE, {"outcome": "advice_given"}),
    Route("POST", "/v1/hubs/{hub}/consultations/{id}/withdrawal", Action.WITHDRAW, {"reason": "applicant_request"}),
    Route("POST", "/v1/hubs/{hub}/consultations/{id}/applicant-links/revocation", Action.REVOKE_LINKS),
    Route("GET", "/v1/hubs/{hub}/consultations", Action.READ),
    Route("GET", "/v1/hubs/{hub}/consultations/{id}", Action.READ),
    Route("GET", "/v1/hubs/{hub}/supporters", Action.READ),
    Route(
        "PUT",
        "/v1/hubs/{hub}/supporters/matrix-ip",
        Action.MANAGE_ROSTER,
        {"display_name": "権限試験", "fields": ["ip_strategy"], "languages": ["ja"]},
    ),
    Route(
        "POST",
        "/v1/hubs/{hub}/staff",
        Action.MANAGE_STAFF,
        {"display_name": "権限 試験", "roles": ["analyst"], "password": "a password long enough"},
    ),
)


def _token(stack: Stack, hub: str, role: StaffRole) -> dict[str, str]:
    token = auth.issue_staff_token(auth.signing_key(stack.env), hub=hub, subject=f"{role}@{hub}", roles=[role])
    return {"Authorization": f"Bearer {token}"}


async def _call(
    http: httpx.AsyncClient, stack: Stack, route: Route, consultation_id: str, headers: dict[str, str]
) -> httpx.Response:
    url = stack.origin + route.path.format(hub=HUB, id=consultation_id)
    body = route.body
    if route.action is Action.MANAGE_STAFF:  # a new address each time: 201, not 409
        body = {**(body or {}), "email": f"matrix-{uuid.uuid4().hex[:8]}@example.jp"}
    return await http.request(route.method, url, json=body, headers=headers)


def test_the_matrix_covers_every_staff_route_the_api_documents(stack: Stack) -> None:
    document = httpx.get(f"{stack.origin}/openapi.json", timeout=10).json()
    staff_routes = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "401" in operation.get("responses", {}) and path != "/v1/staff/sessions"  # (signing in itself)
    }
    covered = {(route.method, route.path.replace("{id}", "{consultation_id}")) for route in ROUTES}
    covered = {
        (method, "/v1/hubs/{hub}/supporters/{supporter_id}" if "matrix-ip" in path else path)
        for method, path in covered
    }
    assert staff_routes == covered


@pytest.fixture(scope="module")
async def consultation_id(stack: Stack) -> str:
    """One consultation of HUB, visible in reporting (so that reads answer 200 where allowed)."""
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(f"{stack.origin}/v1/hubs/{HUB}/consultations", json=REQUEST)
        assert answer.status_code == 202, answer.text
        consultation_id: str = answer.json()["consultation_id"]

        async def projected() -> bool:
            view = await http.get(
                f"{stack.origin}/v1/hubs/{HUB}/consultations/{consultation_id}", headers=stack.staff(HUB)
            )
            return view.status_code == 200

        await wait_for(projected, timeout=15, what="the consultation in reporting")
    return consultation_id


@pytest.mark.parametrize(
    ("route", "role"), list(itertools.product(ROUTES, StaffRole)), ids=lambda v: str(getattr(v, "path", v))
)
async def test_each_role_is_allowed_or_refused_as_designed_and_another_hub_learns_nothing(
    stack: Stack, http: httpx.AsyncClient, consultation_id: str, route: Route, role: StaffRole
) -> None:
    own = await _call(http, stack, route, consultation_id, _token(stack, HUB, role))
    if role in auth.PERMISSIONS[route.action]:
        assert own.status_code in (200, 201, 202, 409), f"{role} {route.method} {route.path}: {own.text}"
    else:
        assert (own.status_code, own.json()["error"]) == (403, "forbidden"), own.text

    elsewhere = await _call(http, stack, route, consultation_id, _token(stack, OTHER, role))
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found"), elsewhere.text
    assert consultation_id not in elsewhere.text

    anonymous = await _call(http, stack, route, consultation_id, {})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthenticated")
