"""Fault fixtures: the whole-stack fixtures of e2e, the means to break the stack, its database, its mail.

Whatever a fault test did to the stack, the next test finds it whole again: every component that is
not running is started after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.e2e.conftest import Stack, http, stack
from tests.fault.control import StackControl
from tests.support import NewMail

__all__ = ["Stack", "control", "database", "http", "new_mail", "stack"]


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[StackControl]:
    control = StackControl(stack.env)
    yield control
    await control.up()


@pytest.fixture
async def database(stack: Stack) -> AsyncIterator[AsyncEngine]:
    """The stack's database, every service's schema; connections are checked before use, so those an
    outage broke are replaced."""
    engine = create_async_engine(stack.env["HUBNET_DATABASE_URL"], pool_pre_ping=True)
    yield engine
    await engine.dispose()


@pytest.fixture
def new_mail(stack: Stack) -> Iterator[NewMail]:
    """The messages sent during the test, removed after it: a fault test sends thousands."""
    mail = NewMail(stack.maildir)
    yield mail
    mail.discard()
