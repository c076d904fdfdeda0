"""Database wiring: one async engine and session factory per service process (SQLAlchemy + asyncpg)."""

from __future__ import annotations

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.settings import CommonSettings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """Each service owns exactly one schema; no service reads another's tables."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def create_engine(settings: CommonSettings, *, application_name: str) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # Statement parameters are applicants' names, emails and free text: never in logs or error messages.
        hide_parameters=True,
        # No pre-ping: it costs a round trip per transaction; a dead connection fails its first
        # statement, the pool is invalidated, and the caller's transient-error retry takes over.
        connect_args={"server_settings": {"application_name": application_name}},
    )


def create_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
