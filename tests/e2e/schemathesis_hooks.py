"""Schemathesis hooks (`SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks`): generated requests behave as a
client does where the API's contract asks it to."""

from __future__ import annotations

import random
import re
import uuid
from datetime import datetime, time, timedelta
from typing import Any

import schemathesis

from services.intake.record import JAPAN, open_hours_slot_problem
from shared.contract.vocabulary import check_digit, corporate_number_is_valid


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A client makes a new Idempotency-Key for each new request (and reuses it only to retry the same one);
    the generator would send a few values with different bodies, which intake rightly refuses (422)."""
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = str(uuid.uuid4())

    # 法人番号: JSON Schema states its 13 digits; a check digit over the other twelve is beyond it. A client
    # sends a real number, whose first digit is right: make it so (`corporate_number_is_valid` decides).
    body = case.body
    number = body.get("corporate_number") if isinstance(body, dict) else None
    if isinstance(number, str) and re.fullmatch(r"[1-9][0-9]{12}", number) and not corporate_number_is_valid(number):
        body["corporate_number"] = f"{check_digit(number[1:])}{number[1:]}"

    # An Open Hours slot: the schema says a date-time; the hub holds them on weekdays that are not public
    # holidays, at 10:00 or 11:00 Japan time. A client books one of those (a taken one answers 409).
    if isinstance(body, dict) and body.get("channel") == "open_hours" and isinstance(body.get("open_hours_slot"), str):
        body["open_hours_slot"] = _open_hours_slot().isoformat()


def _open_hours_slot() -> datetime:
    day = datetime.now(JAPAN).date() + timedelta(days=random.randint(1, 3650))
    while open_hours_slot_problem(datetime.combine(day, time(10), JAPAN)) is not None:
        day += timedelta(days=1)
    return datetime.combine(day, time(random.choice((10, 11))), JAPAN)
