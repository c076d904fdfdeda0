"""Entry point: `python -m services.notify serve|migrate|outbox`."""

from pathlib import Path

from services.notify import tables
from services.notify.app import create_app
from services.notify.settings import NotifySettings
from shared.cli import main

main(
    "notify",
    settings_type=NotifySettings,
    create_app=create_app,
    migrations_dir=Path(__file__).parent / "migrations",
    metadata=tables.metadata,
)
