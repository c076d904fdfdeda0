"""What a failure means for the work that met it: retry, stall for an operator, or give the work up.

Database errors are classified by SQLSTATE, never by message text; descriptions carry the error's type
and SQLSTATE but never its message, which may quote statement parameters (names, emails, free text).
"""

from __future__ import annotations

from enum import StrEnum

from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


class PermanentError(Exception):
    """The work is well formed but can never be done; retrying cannot help."""


class Outcome(StrEnum):
    TRANSIENT = "transient"
    """A dependency is away or busy (connection, shutdown, serialization, deadlock, lock timeout,
    read-only replica): retry with backoff for as long as it takes; never give the work up."""
    SCHEMA = "schema"
    """The database lacks a table, column or schema the code expects (a migration not run): stall
    and alert an operator; never give the work up, since the fix is a deploy, not a skip."""
    POISON = "poison"
    """The work can never succeed (invalid payload, a rule refusing it): give it up at once."""
    UNKNOWN = "unknown"
    """Anything else: retry a bounded number of times, then give it up."""


# SQLSTATE classes and codes (PostgreSQL appendix A).
_TRANSIENT_CLASSES = ("08", "53")  # connection exception; insufficient resources (too many connections)
_TRANSIENT_CODES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, recovering)
        "57014",  # query_canceled (statement timeout)
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock timeout)
        "25006",  # read_only_sql_transaction (failover to a replica)
    }
)
_SCHEMA_CODES = frozenset(
    {
        "3F000",  # invalid_schema_name
        "42P01",  # undefined_table
        "42703",  # undefined_column
        "42704",  # undefined_object (a type)
        "42883",  # undefined_function
    }
)


def sqlstate(error: BaseException) -> str | None:
    if isinstance(error, DBAPIError):
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return str(code) if code else None
    return None


def constraint(error: BaseException) -> str | None:
    """The name of the constraint a database error broke (a unique key, say), when the driver tells."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        for cause in (error.orig, error.orig.__cause__):
            name = getattr(cause, "constraint_name", None)
            if isinstance(name, str):
                return name
    return None


def classify(error: BaseException) -> Outcome:
    if isinstance(error, PermanentError | ValidationError):
        return Outcome.POISON
    code = sqlstate(error)
    if code is not None:
        if code in _SCHEMA_CODES:
            return Outcome.SCHEMA
        if code in _TRANSIENT_CODES or code[:2] in _TRANSIENT_CLASSES:
            return Outcome.TRANSIENT
        return Outcome.UNKNOWN
    if isinstance(error, DBAPIError) and (error.connection_invalidated or isinstance(error, InterfaceError)):
        return Outcome.TRANSIENT
    if isinstance(error, OperationalError | OSError | TimeoutError | KafkaError):
        return Outcome.TRANSIENT
    return Outcome.UNKNOWN


def describe(error: BaseException) -> str:
    """Safe to log or publish: the error's type, and SQLSTATE for database errors; never its values."""
    code = sqlstate(error)
    if isinstance(error, DBAPIError):
        inner = type(error.orig).__name__ if error.orig is not None else "unknown"
        return f"{type(error).__name__}({inner}) SQLSTATE {code}" if code else f"{type(error).__name__}({inner})"
    if isinstance(error, ValidationError):
        # Field locations and error types only: pydantic's messages may quote the input.
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['type']}" for e in error.errors()[:10])
        return f"ValidationError: {fields}"
    if isinstance(error, PermanentError):
        return f"{type(error).__name__}: {error}"  # our own wording, written to be published
    return type(error).__name__
