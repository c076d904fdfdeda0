"""Alembic environment for schema `matching`."""

from services.matching.tables import metadata
from shared.migrations import run_env

run_env(metadata)
