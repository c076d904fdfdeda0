"""`python -m services.<name> serve|migrate`: the same two commands for every service."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared import auth, migrations
from shared.observability import configure_logging
from shared.settings import CommonSettings

SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def main(
    service: str,
    *,
    settings_type: type[SettingsT],
    create_app: Callable[[SettingsT], FastAPI],
    migrations_dir: Path,
) -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    settings = settings_type()
    configure_logging(service, level=settings.log_level, json=settings.log_json)
    if command == "migrate":
        migrations.upgrade(migrations_dir, settings.database_url)
    elif command == "serve":
        try:
            auth.verification_key(settings)  # every service, whether it has staff routes yet or not
            app = create_app(settings)
        except auth.KeyRefused as error:
            sys.exit(f"hubnet {service} refuses to start: {error}")
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.http_port,
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    else:
        sys.exit(f"usage: python -m services.{service} [serve|migrate]")
