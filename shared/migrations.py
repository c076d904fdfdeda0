"""Alembic wiring: each service migrates its own schema, with its own version table inside it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def config(migrations_dir: Path, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(migrations_dir: Path, database_url: str, revision: str = "head") -> None:
    command.upgrade(config(migrations_dir, database_url), revision)


def autogenerate(migrations_dir: Path, database_url: str, *, message: str, revision_id: str) -> None:
    """Write the next revision from the difference between `tables.py` and a database at head.
    `tables.py` is the only source of a schema; a test fails when the two drift apart."""
    command.upgrade(config(migrations_dir, database_url), "head")
    command.revision(config(migrations_dir, database_url), message=message, autogenerate=True, rev_id=revision_id)


def drift(metadata: MetaData, connection: Connection) -> list[Any]:
    """What `tables.py` declares that the migrated database lacks, or the reverse (empty: none)."""
    schema = metadata.schema
    context_ = MigrationContext.configure(
        connection,
        opts={
            "target_metadata": metadata,
            "include_schemas": True,
            "include_name": lambda name, type_, _: type_ != "schema" or name == schema,
            "compare_type": True,
            "compare_server_default": True,
            "version_table_schema": schema,
        },
    )
    return list(compare_metadata(context_, metadata))


def run_env(metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (online mode, asyncpg)."""
    schema = metadata.schema
    assert schema is not None, "service metadata must name its schema"
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def migrate(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        # Replicas starting together must not run the same migration twice.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:schema))"), {"schema": schema})
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            # Compare (autogenerate) only this service's schema; other services' are none of its business.
            include_schemas=True,
            include_name=lambda name, type_, _: type_ != "schema" or name == schema,
            compare_type=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    asyncio.run(main())
