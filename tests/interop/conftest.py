"""Fixtures for the interop suite: Helia installed from the lockfile once per session, Helia peers per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helia import HeliaError, HeliaPeer, ensure_installed, node_problem


@pytest.fixture(scope="session")
def helia_installed() -> None:
    """Make sure ``node_modules`` matches package-lock.json (``npm ci`` when missing or stale).

    Skips when Node >= 20 and npm are not on PATH (the suite runs wherever they are, CI included).
    """
    problem = node_problem()
    if problem is not None:
        pytest.skip(f"Helia interop: {problem}")
    try:
        ensure_installed()
    except HeliaError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def start_helia(helia_installed: None, tmp_path: Path) -> Iterator[Callable[..., list[HeliaPeer]]]:
    """``start_helia(count=1)`` starts peers side by side and returns them; all are stopped (killed if need be) after the test."""
    peers: list[HeliaPeer] = []

    def start(count: int = 1) -> list[HeliaPeer]:
        started = HeliaPeer.start(tmp_path / "helia-logs", count)
        peers.extend(started)
        return started

    yield start
    for peer in peers:
        peer.close()
