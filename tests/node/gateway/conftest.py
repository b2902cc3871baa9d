"""Fixtures for the gateway tests: a block store with the conformance fixtures and a live gateway over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from blockstore.store import BlockStore
from node.gateway import StoreBlockSource, make_gateway_app

from .helpers import LiveGateway, import_fixtures, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlockStore]:
    """An empty block store of this test."""
    s = open_store(tmp_path)
    yield s
    s.db.close()


@pytest.fixture
def gateway(store: BlockStore) -> Iterator[LiveGateway]:
    """A live gateway over ``store`` with every conformance fixture CAR imported."""
    import_fixtures(store)
    gw = LiveGateway(make_gateway_app(StoreBlockSource(store))).start()
    yield gw
    gw.stop()


@pytest.fixture
def empty_gateway(store: BlockStore) -> Iterator[LiveGateway]:
    """A live gateway over the (initially empty) ``store``; tests add their own blocks."""
    gw = LiveGateway(make_gateway_app(StoreBlockSource(store))).start()
    yield gw
    gw.stop()
