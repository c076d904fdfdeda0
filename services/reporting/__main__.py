"""Entry point: `python -m services.reporting serve|migrate|outbox|rebuild`."""

from collections.abc import Sequence
from pathlib import Path

import uvloop
from rich.console import Console

from services.reporting import rebuild, tables
from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared.cli import main

USAGE = "usage: python -m services.reporting rebuild [--check] [--keep-old] [--workers N]"


def _rebuild(settings: ReportingSettings, args: Sequence[str]) -> int | str:
    """`rebuild [--check] [--keep-old] [--workers N]`: replay the log into a shadow schema, then swap (or only
    compare), with N processes (by default, one per 100,000 events, at most one per core)."""
    flags, workers, rest = set(), None, list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("--check", "--keep-old"):
            flags.add(arg)
        elif arg == "--workers" and rest and rest[0].isdigit() and int(rest[0]) >= 1:
            workers = int(rest.pop(0))
        else:
            return f"{USAGE} (not {arg})"
    console = Console(stderr=True)
    outcome = uvloop.run(
        rebuild.rebuild(
            settings, check_only="--check" in flags, keep_old="--keep-old" in flags, workers=workers, console=console
        )
    )
    rebuild.report(outcome, Console())
    return 0 if outcome.swapped or outcome.equal else 1


if __name__ == "__main__":  # not in the rebuild's worker processes, which import this module as `__mp_main__`
    main(
        "reporting",
        settings_type=ReportingSettings,
        create_app=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
        metadata=tables.metadata,
        commands={"rebuild": _rebuild},
    )
