"""bitswap/fetcher.py's walk on real block stores: workers are started only as blocks wait for
one (a one-block DAG costs one task), never more than ``concurrency`` fetch at once, and every
block of the DAG arrives whatever the concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitswap import fetch_dag
from blockstore.cid import RAW, cid_for
from blockstore.dagwalk import walk_dag
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_bytes
from blockstore.store import BlockStore


class Source:
    """A peer's block store seen as ``fetch_dag``'s bitswap: blocks are copied from ``src`` into
    ``store`` when asked for, each after a checkpoint; counts the fetches running at once."""

    def __init__(self, src: BlockStore, store: BlockStore) -> None:
        self.src = src
        self.store = store
        self.running = 0
        self.most = 0

    async def get_block(self, cid: bytes, timeout: float | None = None) -> bytes:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await trio.sleep(0.001)
            data = self.src.get(cid)
            assert data is not None
            self.store.put(cid, data)
            return data
        finally:
            self.running -= 1


class Spawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.tasks = 0

    def task_spawned(self, task: Any) -> None:
        self.tasks += 1


def _stores(tmp: Path) -> tuple[Any, Any, BlockStore, BlockStore]:
    a, b = open_db(tmp / "src"), open_db(tmp / "dst")
    return a, b, BlockStore(a), BlockStore(b)


def test_a_one_block_dag_starts_one_worker(tmp_path: Path) -> None:
    dbs = _stores(tmp_path)
    src, dst = dbs[2], dbs[3]
    data = b"one small block" * 50
    root = cid_for(data, RAW)
    src.put(root, data)
    source = Source(src, dst)
    spawns = Spawns()

    async def main() -> None:
        result = await fetch_dag(source, root, concurrency=64)
        assert result.fetched == 1 and result.blocks == 1

    trio.run(main, instruments=[spawns])
    # the main task, the nursery's system tasks and one worker: not the 64 of the concurrency
    assert spawns.tasks <= 4, spawns.tasks
    assert dst.get(root) == data
    for db in dbs[:2]:
        db.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 120_000), chunk=st.sampled_from([256, 1024, 4096]), concurrency=st.integers(1, 24))
def test_every_block_arrives_and_at_most_concurrency_fetch_at_once(
    tmp_path_factory: pytest.TempPathFactory, size: int, chunk: int, concurrency: int
) -> None:
    dbs = _stores(tmp_path_factory.mktemp("dag"))
    src, dst = dbs[2], dbs[3]
    root = import_bytes(bytes(i % 253 for i in range(size)), src, ImportParams(cid_version=1, chunk_size=chunk)).cid
    blocks = {cid for cid, _d in walk_dag(root, src.get)}
    source = Source(src, dst)

    async def main() -> None:
        result = await fetch_dag(source, root, concurrency=concurrency)
        assert result.fetched == len(blocks) == result.blocks

    trio.run(main)
    assert all(dst.get(cid) is not None for cid in blocks)
    assert 1 <= source.most <= concurrency
    if concurrency > 1 and len(blocks) > 2:
        assert source.most > 1  # the leaves of one parent are fetched side by side
    for db in dbs[:2]:
        db.close()
