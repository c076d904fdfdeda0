"""Each service's migrations produce exactly the schema its `tables.py` declares (no drift either way)."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from shared import migrations
from tests.integration.conftest import SERVICES


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_tables_when_applied_to_a_fresh_database(service: str, database_url: str) -> None:
    metadata: MetaData = importlib.import_module(f"services.{service}.tables").metadata
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(lambda sync: migrations.drift(metadata, sync))
    finally:
        await engine.dispose()
    assert differences == [], f"tables.py and migrations of {service} differ; run `make migration`: {differences}"
