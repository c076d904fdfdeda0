"""Database wiring: one async engine and session factory per service process (SQLAlchemy + asyncpg)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import ARRAY, FromClause, MetaData, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
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
        # A fixed pool: past it, a transaction waits for a connection. Overflow connections would be opened
        # and closed again under load, each a backend started by PostgreSQL, just when CPU is shortest.
        pool_size=settings.database_pool_size,
        max_overflow=0,
        # Statement parameters are applicants' names, emails and free text: never in logs or error messages.
        hide_parameters=True,
        # No pre-ping: it costs a round trip per transaction; a dead connection fails its first
        # statement, the pool is invalidated, and the caller's transient-error retry takes over.
        connect_args={"server_settings": {"application_name": application_name}},
    )


def create_sessions(engine: AsyncEngine, *, info: Mapping[str, Any] | None = None) -> async_sessionmaker[AsyncSession]:
    """Sessions of one service; `info` is copied into every session (e.g. the service's outbox binding)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=dict(info or {}))


def autocommitting(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions on the same pool whose every statement commits on its own: for a use case that writes in
    one statement, and so needs no BEGIN and COMMIT round trips around it."""
    bind = sessions.kw["bind"]
    return async_sessionmaker(
        bind.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False, info=sessions.kw.get("info")
    )


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _is_json(column_type: Any) -> bool:
    return isinstance(column_type, ARRAY | JSONB)


@functools.cache
def _insert_statement(
    table: Table, columns: tuple[str, ...], conflict: tuple[str, ...] | None, update: tuple[str, ...], returning: str
) -> Any:
    # Arrays travel as one JSON text per row (unnest would flatten an array of arrays), JSONB as text. The
    # rows are a textual SELECT; the INSERT around it is a construct, so a schema translation applies to it
    # (reporting's rebuild writes the same statements into a shadow schema).
    casts, selects = [], []
    for name in columns:
        column_type = table.c[name].type
        if _is_json(column_type):
            casts.append(f"CAST(:{name} AS text[])")
            if isinstance(column_type, JSONB):
                selects.append(f"u.{name}::jsonb")
            else:
                element = column_type.item_type.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
                selects.append(
                    f"CASE WHEN u.{name} IS NULL THEN NULL ELSE "
                    f"ARRAY(SELECT CAST(e AS {element}) FROM jsonb_array_elements_text(u.{name}::jsonb) e) END"
                )
        else:
            casts.append(f"CAST(:{name} AS {column_type.compile(dialect=_DIALECT)}[])")
            selects.append(f"u.{name}")
    rows = text(f"SELECT {', '.join(selects)} FROM unnest({', '.join(casts)}) AS u({', '.join(columns)})").columns(
        *(table.c[name] for name in columns)
    )
    statement: Any = postgresql.insert(table).from_select(list(columns), rows)
    if conflict is not None:
        target = list(conflict) or None
        if update:
            statement = statement.on_conflict_do_update(
                index_elements=target, set_={name: statement.excluded[name] for name in update}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=target)
    if returning:
        statement = statement.returning(table.c[returning])
    return statement


def json_text(value: Any) -> str:
    """A JSON column's value as text, for PostgreSQL to parse (`json.dumps` took four times as long)."""
    return to_json(value).decode()


class JsonText(str):
    """A JSON column's value already encoded, for `insert_rows`: rows that share one value (a ranking,
    a template) encode it once."""


async def insert_rows(
    session: AsyncSession,
    table: FromClause,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    update: Sequence[str] = (),
    returning: str = "",
) -> Sequence[Any]:
    """Insert many rows in one statement (`INSERT … SELECT FROM unnest(…)`), whatever their number: one
    round trip and one prepared statement per table and shape. `conflict` names the conflict target
    (empty: any constraint) and makes the insert skip, or, with `update`, overwrite those columns.
    Rows must all have the same keys; the same conflict key twice in one call cannot be updated
    twice (PostgreSQL refuses), so callers fold such rows first. Returns the `returning` column's value
    of each row inserted (or updated), when one is named."""
    if not rows:
        return []
    assert isinstance(table, Table), "insert_rows needs a table (a mapped class's __table__ is one)"
    columns = tuple(rows[0])
    statement = _insert_statement(
        table, columns, tuple(conflict) if conflict is not None else None, tuple(update), returning
    )
    params: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in columns}
    for name in columns:
        if _is_json(table.c[name].type):
            params[name] = [
                value if value is None or type(value) is JsonText else json_text(value) for value in params[name]
            ]
    result = await session.execute(statement, params)
    return result.scalars().all() if returning else []
