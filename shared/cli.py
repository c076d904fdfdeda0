"""`python -m services.<name> serve|migrate|outbox`: the same commands for every service."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.table import Table as RichTable
from sqlalchemy import MetaData

from shared import auth, db, migrations, outbox
from shared.observability import configure_logging
from shared.settings import CommonSettings

SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def main(
    service: str,
    *,
    settings_type: type[SettingsT],
    create_app: Callable[[SettingsT], FastAPI],
    migrations_dir: Path,
    metadata: MetaData,
    commands: Mapping[str, Callable[[SettingsT, Sequence[str]], int | str]] | None = None,
) -> None:
    """Runs the command of `sys.argv`; `commands` adds a service's own (name → function of settings and
    the remaining arguments, returning an exit status or a message)."""
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
    elif command == "outbox":
        sys.exit(_outbox(service, settings, metadata, sys.argv[2:]))
    elif commands and command in commands:
        sys.exit(commands[command](settings, sys.argv[2:]))
    else:
        own = "".join(f"|{name} …" for name in commands or {})
        sys.exit(f"usage: python -m services.{service} [serve|migrate|outbox parked|outbox requeue ID…{own}]")


def _outbox(service: str, settings: CommonSettings, metadata: MetaData, args: Sequence[str]) -> int | str:
    """`outbox parked` lists rows the relay gave up on; `outbox requeue ID…` gives them a fresh start."""
    table = metadata.tables.get(f"{metadata.schema}.outbox")
    if table is None:
        return f"{service} publishes no events: it has no outbox"
    verb = args[0] if args else "parked"

    async def run() -> int | str:
        engine = db.create_engine(settings, application_name=f"hubnet-{service}-cli")
        sessions = db.create_sessions(engine)
        try:
            async with sessions.begin() as session:
                if verb == "parked":
                    parked = await outbox.list_parked(session, table)
                    view = RichTable(title=f"{service}: parked outbox rows ({len(parked)})", title_justify="left")
                    for column in ("id", "event type", "key", "topic", "attempts", "parked at", "last error"):
                        view.add_column(column)
                    for row in parked:
                        view.add_row(
                            str(row.id),
                            row.event_type,
                            row.key,
                            row.topic,
                            str(row.attempts),
                            row.parked_at.isoformat(timespec="seconds"),
                            row.last_error or "",
                        )
                    Console(width=200).print(view)
                    return 0
                if verb == "requeue" and args[1:] and all(arg.isdigit() for arg in args[1:]):
                    count = await outbox.requeue(session, table, [int(arg) for arg in args[1:]])
                    Console().print(f"requeued {count} of {len(args) - 1} rows")
                    return 0
                return f"usage: python -m services.{service} outbox [parked | requeue ID…]"
        finally:
            await engine.dispose()

    return asyncio.run(run())
