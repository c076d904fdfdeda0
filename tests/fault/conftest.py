"""Fault fixtures: the same whole-stack fixtures as e2e; these tests stop and restart parts of the stack."""

from tests.e2e.conftest import Stack, http, stack

__all__ = ["Stack", "http", "stack"]
