"""Entry point: `python -m services.reporting serve|migrate|outbox`."""

from pathlib import Path

from services.reporting import tables
from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared.cli import main

main(
    "reporting",
    settings_type=ReportingSettings,
    create_app=create_app,
    migrations_dir=Path(__file__).parent / "migrations",
    metadata=tables.metadata,
)
