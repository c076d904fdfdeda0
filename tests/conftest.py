"""Markers come from the folder a test lives in: the folder says what infrastructure it needs."""

from __future__ import annotations

import pytest

TIERS = ("unit", "integration", "e2e", "fault")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
