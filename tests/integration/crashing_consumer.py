"""Runs matching with a kill switch: the process dies, as if SIGKILLed, right after the first
transaction that applied an event commits, before the offset commit can happen."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from services.matching.app import create_app
from services.matching.settings import MatchingSettings
from shared.inbox import APPLIED_EVENTS


def _die_once_applied(session: Session) -> None:
    if session.info.get(APPLIED_EVENTS):
        os._exit(9)


async def _run(settings: MatchingSettings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await asyncio.Event().wait()


def main() -> None:
    overrides: dict[str, Any] = json.loads(sys.argv[1])
    event.listen(Session, "after_commit", _die_once_applied)
    asyncio.run(_run(MatchingSettings(**overrides)))


if __name__ == "__main__":
    main()
