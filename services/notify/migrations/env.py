"""Alembic environment for schema `notify`."""

from services.notify.tables import metadata
from shared.migrations import run_env

run_env(metadata)
