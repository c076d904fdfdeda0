"""Entry point: `python -m services.intake serve|migrate|outbox`."""

from pathlib import Path

from services.intake import tables
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.cli import main

main(
    "intake",
    settings_type=IntakeSettings,
    create_app=create_app,
    migrations_dir=Path(__file__).parent / "migrations",
    metadata=tables.metadata,
)
