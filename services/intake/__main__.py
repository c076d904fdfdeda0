"""Entry point: `python -m services.intake serve|migrate|outbox|staff-add`."""

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from services.intake import staff, tables
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared import auth, db
from shared.cli import main

PASSWORD_VAR = "HUBNET_STAFF_PASSWORD"


def staff_add(settings: IntakeSettings, args: Sequence[str]) -> int | str:
    """Open a staff account (the first hub admin of a hub, say): the password from HUBNET_STAFF_PASSWORD or
    asked for without echo."""
    parser = argparse.ArgumentParser(prog="python -m services.intake staff-add")
    parser.add_argument("--hub", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", required=True, help="the name colleagues know the person by")
    parser.add_argument("--role", action="append", required=True, choices=[role.value for role in auth.StaffRole])
    options = parser.parse_args(args)
    password = os.environ.get(PASSWORD_VAR) or getpass.getpass("password: ")
    if len(password) < staff.MIN_PASSWORD:
        return f"the password needs at least {staff.MIN_PASSWORD} characters"

    async def add() -> None:
        engine = db.create_engine(settings, application_name="intake-staff-add")
        try:
            async with db.create_sessions(engine).begin() as session:
                await staff.create_account(
                    session,
                    hub=options.hub,
                    email=options.email,
                    display_name=options.name,
                    roles=[auth.StaffRole(role) for role in options.role],
                    password=password,
                )
        finally:
            await engine.dispose()

    try:
        asyncio.run(add())
    except staff.AccountExists:
        return f"{options.hub} already has an account for {options.email}"
    sys.stdout.write(f"opened {options.email} at {options.hub}: {', '.join(options.role)}\n")
    return 0


main(
    "intake",
    settings_type=IntakeSettings,
    create_app=create_app,
    migrations_dir=Path(__file__).parent / "migrations",
    metadata=tables.metadata,
    commands={"staff-add": staff_add},
)
