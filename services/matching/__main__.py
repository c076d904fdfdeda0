"""Entry point: `python -m services.matching serve|migrate|outbox`."""

from pathlib import Path

from services.matching import tables
from services.matching.app import create_app
from services.matching.settings import MatchingSettings
from shared.cli import main

main(
    "matching",
    settings_type=MatchingSettings,
    create_app=create_app,
    migrations_dir=Path(__file__).parent / "migrations",
    metadata=tables.metadata,
)
