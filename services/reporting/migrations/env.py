"""Alembic environment for schema `reporting`."""

from services.reporting.tables import metadata
from shared.migrations import run_env

run_env(metadata)
