"""Fixtures that run real ``pinion daemon`` processes on temp repos.

``pinion_node`` initialises a repo with ``--profile test`` (every port 0) under
``tmp_path``, and ``node.start()`` launches ``pinion daemon`` and waits for
``endpoints.json``. Every process started is SIGTERMed at the end of the
test (all at once), then killed if it does not exit in time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node_proc import PinionNode, kill_all


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Any]:
    """A factory of initialised repos (``make_node("name")``, ``make_node("name", "--secret", s)``
    for more ``pinion init`` arguments); their daemons are stopped at the end."""
    nodes: list[PinionNode] = []

    def make(name: str = "repo", *init_args: str) -> PinionNode:
        node = PinionNode(tmp_path / name)
        node.cli("init", "--profile", "test", *init_args)
        nodes.append(node)
        return node

    yield make
    kill_all(nodes)


@pytest.fixture
def pinion_node(make_node: Any) -> PinionNode:
    """One initialised repo (daemon not started)."""
    return make_node()


@pytest.fixture
def daemon(pinion_node: PinionNode) -> PinionNode:
    """One repo with its daemon running offline (no libp2p hosts: the RPC tests need none)."""
    pinion_node.start("--offline")
    return pinion_node
