"""Suite-wide pytest hooks: tests marked ``long`` run only with ``PINION_LONG_TESTS=1`` (``make test-long``)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.long`` tests, saying how to run them, unless PINION_LONG_TESTS=1."""
    if os.environ.get("PINION_LONG_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="long test (minutes): run it with `make test-long` (PINION_LONG_TESTS=1)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
