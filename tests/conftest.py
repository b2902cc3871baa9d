"""Suite-wide pytest hooks: tests marked ``long`` run only with ``PINION_LONG_TESTS=1`` (``make test-long``);
hypothesis without time limits per example (the suite runs on 2 busy cores: time is measured by
benchmarks/, never asserted by a test)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("pinion", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pinion")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.long`` tests, saying how to run them, unless PINION_LONG_TESTS=1."""
    if os.environ.get("PINION_LONG_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="long test (minutes): run it with `make test-long` (PINION_LONG_TESTS=1)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
