"""Schemathesis hooks (`SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks`): generated requests behave as a
client does where the API's contract asks it to."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A client makes a new Idempotency-Key for each new request (and reuses it only to retry the same one);
    the generator would send a few values with different bodies, which intake rightly refuses (422)."""
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = str(uuid.uuid4())
