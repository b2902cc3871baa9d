"""The memory plan of ``Datastore.MemoryBudget`` and the bounds it puts on imports."""

from __future__ import annotations

import io
import random
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockstore import carimport, importer
from blockstore.batchwriter import BatchWriter
from blockstore.car import write_car
from blockstore.db import open_db
from blockstore.memory import DEFAULT_BUDGET, MAX_BUDGET, MIN_BATCH_BYTES, MIN_BUDGET, MemoryPlan, budget_for_limit
from blockstore.store import BlockStore

MiB = 1024 * 1024


def test_default_plan_keeps_the_sizes_used_before_the_budget() -> None:
    plan = MemoryPlan.from_budget(DEFAULT_BUDGET)
    assert plan.write_buffer_size == 32 * MiB
    assert plan.block_cache_size == 8 * MiB
    assert plan.write_batch_bytes == 4 * MiB
    assert plan.upload_buffer_bytes == 8 * MiB


@given(st.integers(min_value=MIN_BUDGET, max_value=MAX_BUDGET))
def test_the_parts_fit_in_the_budget(budget: int) -> None:
    plan = MemoryPlan.from_budget(budget)
    # two memtables, the cache, two batches plus LevelDB's copy of one (twice its size at most), the upload buffer
    used = 2 * plan.write_buffer_size + plan.block_cache_size + 4 * plan.write_batch_bytes + plan.upload_buffer_bytes
    assert used <= budget
    assert plan.write_batch_bytes >= MIN_BATCH_BYTES


@pytest.mark.parametrize("bad", [0, MIN_BUDGET - 1, MAX_BUDGET + 1, -5, True, 1.5e7, "64MiB"])
def test_a_budget_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="memory budget"):
        MemoryPlan.from_budget(bad)  # type: ignore[arg-type]


def test_budget_for_a_container_limit() -> None:
    assert budget_for_limit(None) == DEFAULT_BUDGET
    assert budget_for_limit(128 * MiB) == 16 * MiB
    assert budget_for_limit(32 * MiB) == MIN_BUDGET
    assert budget_for_limit(64 * 1024 * MiB) == DEFAULT_BUDGET


def test_open_db_takes_the_plan(tmp_path) -> None:
    db = open_db(tmp_path / "db", memory=MemoryPlan.from_budget(MIN_BUDGET))
    store = BlockStore(db)
    res = importer.import_bytes(b"x" * 3_000_000, store)
    assert store.get(res.cid) is not None
    db.close()


# ------------------------------------------------------------------ BatchWriter
def test_batch_writer_keeps_one_batch_in_flight() -> None:
    """submit() returns only once the writer has stored the batch before: two batches alive at most."""
    release = threading.Event()
    written: list[int] = []

    def write(batch: list[tuple[bytes, bytes]]) -> None:
        if written:  # the first is written inline; the second blocks in the writer thread
            assert release.wait(60)
        written.append(len(batch))

    w = BatchWriter(write)
    w.submit([(b"a", b"1")])
    w.submit([(b"b", b"2")] * 2)  # handed to the thread, which blocks
    third_done = threading.Event()
    t = threading.Thread(target=lambda: (w.submit([(b"c", b"3")] * 3), third_done.set()))
    t.start()
    time.sleep(0.2)  # the third must still wait (proving absence needs a bounded wait)
    assert not third_done.is_set()
    assert w.busy
    release.set()
    t.join(60)
    assert third_done.is_set()
    w.close()
    assert written == [1, 2, 3]


def test_batch_writer_reraises_the_writer_error_and_drops_later_batches() -> None:
    calls: list[int] = []

    def write(batch: list[tuple[bytes, bytes]]) -> None:
        calls.append(len(batch))
        if len(calls) == 2:
            raise OSError("disk full")

    w = BatchWriter(write)
    w.submit([(b"a", b"")])
    w.submit([(b"b", b"")] * 2)
    with pytest.raises(OSError, match="disk full"):
        for _ in range(100):  # the error reaches the submitter at the latest by close()
            w.submit([(b"c", b"")] * 3)
            time.sleep(0.01)
        w.close()
    with pytest.raises(OSError):
        w.close()
    assert calls[:2] == [1, 2] and len(calls) <= 3


# ------------------------------------------------------------------ importers
class _CountingSink:
    """A sink that records each batch's bytes and how many blocks were alive (made, not yet stored)."""

    def __init__(self, write_batch_bytes: int) -> None:
        self.write_batch_bytes = write_batch_bytes
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        with self.lock:
            self.batches.append(sum(len(d) for _, d in blocks))
        time.sleep(0.002)  # a slow disk: the importer runs ahead as far as it may
        return len(blocks)


def _pseudo_random(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def test_unixfs_import_uses_the_sinks_batch_size_and_same_cid() -> None:
    data = _pseudo_random(6 * MiB)
    small = _CountingSink(512 * 1024)
    res = importer.import_file(io.BytesIO(data), small)
    chunk = importer.ImportParams().chunk_size
    # a batch closes at the first block that reaches the size: at most one block more
    assert max(small.batches) < 512 * 1024 + chunk + 1024
    assert len(small.batches) >= 6 * MiB // (512 * 1024 + chunk + 1024)
    big = _CountingSink(64 * MiB)
    assert importer.import_file(io.BytesIO(data), big).cid == res.cid
    assert len(big.batches) < len(small.batches)


def test_unixfs_import_holds_two_batches_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks made but not yet stored never pass two batches (plus the block that closes one)."""
    chunk = 64 * 1024
    batch = 256 * 1024
    made = stored = 0
    peak = 0
    lock = threading.Lock()
    real_add = importer._Batcher.add

    def add(self: importer._Batcher, cid: bytes, data: bytes) -> None:
        nonlocal made, peak
        with lock:
            made += len(data)
            peak = max(peak, made - stored)
        real_add(self, cid, data)

    class Sink:
        write_batch_bytes = batch

        def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
            nonlocal stored
            time.sleep(0.003)
            with lock:
                stored += sum(len(d) for _, d in blocks)
            return len(blocks)

    monkeypatch.setattr(importer._Batcher, "add", add)
    params = importer.ImportParams(chunk_size=chunk, raw_leaves=True, cid_version=1)
    importer.import_file(io.BytesIO(_pseudo_random(8 * MiB)), Sink(), params)
    assert stored >= 8 * MiB
    assert peak <= 2 * (batch + chunk) + chunk


def test_car_import_uses_the_stores_batch_size(tmp_path) -> None:
    db = open_db(tmp_path / "src")
    src = BlockStore(db)
    root = importer.import_bytes(_pseudo_random(3 * MiB), src).cid
    blocks = [(mh_cid, src.get(mh_cid)) for mh_cid in _all_cids(src, root)]
    car = io.BytesIO(b"".join(write_car([root], blocks)))
    db.close()

    dst_db = open_db(tmp_path / "dst")
    dst = BlockStore(dst_db, write_batch_bytes=300 * 1024)
    sizes: list[int] = []
    real = dst.put_many

    def put_many(batch, **kw):  # type: ignore[no-untyped-def]
        sizes.append(sum(len(d) for _, d in batch))
        return real(batch, **kw)

    dst.put_many = put_many  # type: ignore[method-assign]
    car.seek(0)
    res = carimport.import_car(car, dst)
    assert res.roots == [root] and dst.has(root)
    assert max(sizes) < 300 * 1024 + 262_200
    assert len(sizes) >= 3 * MiB // (300 * 1024 + 262_200)
    dst_db.close()


def _all_cids(store: BlockStore, root: bytes) -> list[bytes]:
    from blockstore.links import iter_links

    out, todo = [], [root]
    while todo:
        cid = todo.pop()
        out.append(cid)
        todo.extend(iter_links(cid, store.get(cid)))
    return out
