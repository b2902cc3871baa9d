"""The provide queue and reprovider on real LevelDB repos: durability across reopen, resumed passes, strategies,
exclusion of the cluster's CRDT blocks, retries with back-off, parallel announcements; the sans-I/O core with hypothesis."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswap.routing.provide_queue import (
    PassCursor,
    ProvideConfig,
    ProvideQueue,
    RateWindow,
    Reprovider,
    backoff,
    next_pass_due,
    strategy_source,
)
import libipld

from blockstore.cid import DAG_CBOR, RAW, cid_for, multihash_of
from blockstore.dagwalk import walk_dag
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_bytes
from blockstore.pins import DIRECT, Pins
from blockstore.store import BlockStore
from cluster.crdt import Replica
from cluster.crdt.layout import BLOCK as CRDT_BLOCK
from cluster.crdt.provide_exclusion import crdt_exclusion

FAST = dict(initial_delay=0.0, retry_backoff=0.01, max_backoff=0.05, rate_window=60.0)


# ----------------------------------------------------------------------------- sans-I/O core
@given(st.lists(st.one_of(st.none(), st.binary(min_size=1, max_size=4)), min_size=1, max_size=40), st.randoms())
def test_pass_cursor_never_passes_an_unfinished_batch(boundaries: list[bytes | None], rnd) -> None:  # type: ignore[no-untyped-def]
    cursor = PassCursor()
    tickets = [cursor.issue(b) for b in boundaries]
    order = tickets[:]
    rnd.shuffle(order)
    done: set[int] = set()
    committed: bytes | None = None
    for t in order:
        moved, b = cursor.complete(t)
        done.add(t)
        if moved:
            committed = b
        prefix = 0
        while prefix in done:
            prefix += 1
        expected = next((boundaries[i] for i in range(prefix - 1, -1, -1) if boundaries[i] is not None), None)
        assert committed == expected
        assert cursor.in_flight == len(tickets) - len(done)


def test_backoff_rate_and_due() -> None:
    assert [backoff(n, 60, 3600) for n in (1, 2, 3, 7, 20)] == [60, 120, 240, 3600, 3600]
    assert next_pass_due(None, 100, 1000, 60) == 1060
    assert next_pass_due(950, 100, 1000, 60) == 1050
    assert next_pass_due(800, 100, 1000, 60) == 1000  # overdue: now
    w = RateWindow(10)
    for second in range(20):
        w.add(5, 1000 + second + 0.5)
    assert w.rate(1019.9) == pytest.approx(5.0)
    assert w.rate(2000) == 0


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown provide strategy 'everything'"):
        ProvideConfig(strategy="everything")
    with pytest.raises(ValueError):
        ProvideConfig(workers=0)
    with pytest.raises(ValueError, match="48 h"):
        ProvideConfig(interval=49 * 3600)
    assert ProvideConfig().interval == 22 * 3600 and ProvideConfig().strategy == "all"


# ----------------------------------------------------------------------------- helpers
class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.open()

    def open(self) -> None:
        self.db = open_db(self.path)
        self.store = BlockStore(self.db)
        self.pins = Pins(self.db)

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def repo(tmp_path: Path):  # type: ignore[no-untyped-def]
    r = Repo(tmp_path / "repo")
    yield r
    r.close()


def raw_blocks(store: BlockStore, n: int, tag: bytes = b"") -> list[bytes]:
    """Store ``n`` raw blocks; return their multihashes."""
    blocks = [(cid_for(tag + i.to_bytes(4, "big") * 8, RAW), tag + i.to_bytes(4, "big") * 8) for i in range(n)]
    store.put_many(blocks)
    return [multihash_of(c) for c, _ in blocks]


class Announcer:
    """Records what is announced; can fail chosen keys, or stop answering after some keys."""

    def __init__(self, fail: Callable[[bytes, int], bool] | None = None, stall_after: int | None = None, delay: float = 0.0) -> None:
        self.calls: list[list[bytes]] = []
        self.announced: list[bytes] = []
        self.tries: dict[bytes, int] = {}
        self.fail = fail
        self.stall_after = stall_after
        self.delay = delay
        self.active = 0
        self.max_active = 0

    async def __call__(self, keys: list[bytes]) -> Sequence[bool]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.stall_after is not None and len(self.announced) >= self.stall_after:
                await asyncio.sleep(3600)
            if self.delay:
                await asyncio.sleep(self.delay)
            self.calls.append(keys)
            out = []
            for k in keys:
                n = self.tries[k] = self.tries.get(k, 0) + 1
                ok = not (self.fail and self.fail(k, n))
                out.append(ok)
                if ok:
                    self.announced.append(k)
            return out
        finally:
            self.active -= 1


async def run_until(rp: Reprovider, cond: Callable[[], bool], timeout: float = 60.0) -> None:
    task = asyncio.ensure_future(rp.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not cond():
            assert loop.time() < deadline, f"condition not met within {timeout} s: {rp.stats()}"
            assert not task.done(), task
            await asyncio.sleep(0.01)
    finally:
        await rp.stop()
        await asyncio.gather(task, return_exceptions=True)


# ----------------------------------------------------------------------------- durability
def test_queue_survives_reopen_and_redoes_unfinished_keys(repo: Repo) -> None:
    cfg = ProvideConfig(**FAST)
    q = ProvideQueue(repo.db)
    keys = raw_blocks(repo.store, 1000)
    assert q.enqueue(keys) == 1000
    first = q.take_new(300)
    assert [e.mh for e in first] == keys[:300]
    assert [e.mh for e in q.take_new(100)] == keys[300:400]  # handed-out keys are not handed out twice
    q.complete(first[:200], first[200:250], 1000.0, cfg)
    c = q.counts()
    assert (c["queued_new"], c["queued_retry"], c["provided"], c["errors"]) == (750, 50, 200, 50)
    repo.close()
    repo.open()
    q = ProvideQueue(repo.db)
    assert q.counts() == c
    again = q.take_new(1000)
    # the 300..400 batch was handed out but never completed: after a restart it comes again
    assert [e.mh for e in again] == keys[250:300] + keys[300:]
    retries = q.take_retries(1000, now=1000.0 + 3600)
    assert sorted(e.mh for e in retries) == sorted(keys[200:250]) and all(e.attempts == 1 for e in retries)
    assert q.take_retries(10, now=2000.0 + 3600) == []


def test_all_strategy_pass_announces_every_block_once_and_records_the_pass(repo: Repo) -> None:
    keys = raw_blocks(repo.store, 2000)

    async def main() -> None:
        ann = Announcer()
        cfg = ProvideConfig(batch_size=64, workers=4, interval=3600, **FAST)
        rp = Reprovider(ProvideQueue(repo.db), ann, strategy_source("all", repo.store), cfg)
        rp.REOPEN_EVERY = 150  # the pass's LevelDB iterator is reopened ~13 times: no key lost or repeated
        await run_until(rp, lambda: rp.stats().last_pass_end is not None)
        assert sorted(ann.announced) == sorted(keys)
        assert all(len(c) <= 64 for c in ann.calls)
        s = rp.stats()
        assert s.provided_total == s.last_pass_keys == 2000 and not s.pass_running
        assert s.last_pass_duration is not None and s.last_pass_duration >= 0
        assert s.next_pass_due == pytest.approx(s.last_pass_start + 3600)
        assert s.provided_per_second > 0 and s.queued == 0 and s.errors_total == 0 and not s.behind
        doc = s.to_json()
        assert doc["provided_total"] == 2000 and doc["queued"] == 0 and doc["last_pass_duration"] == s.last_pass_duration

    asyncio.run(main())


def test_a_pass_resumes_after_a_restart_from_where_it_was(repo: Repo) -> None:
    keys = raw_blocks(repo.store, 3000)
    cfg = ProvideConfig(batch_size=100, workers=2, **FAST)

    async def first_run() -> list[bytes]:
        ann = Announcer(stall_after=1200)
        rp = Reprovider(ProvideQueue(repo.db), ann, strategy_source("all", repo.store), cfg)
        await run_until(rp, lambda: rp.stats().pass_provided >= 1200)
        assert rp.stats().pass_running
        return ann.announced

    async def second_run() -> tuple[list[bytes], Reprovider]:
        ann = Announcer()
        rp = Reprovider(ProvideQueue(repo.db), ann, strategy_source("all", repo.store), cfg)
        assert rp.stats().pass_running and rp.stats().pass_provided >= 1200  # read back from LevelDB
        await run_until(rp, lambda: rp.stats().last_pass_end is not None)
        return ann.announced, rp

    before = asyncio.run(first_run())
    repo.close()  # a restart
    repo.open()
    after, rp = asyncio.run(second_run())
    assert set(before) | set(after) == set(keys)
    assert len(after) <= 3000 - 1200 + 2 * 100  # resumed near the cursor, not from the start
    assert min(after) > min(keys)
    assert rp.stats().last_pass_keys >= 3000 - 2 * 100


def test_a_stopped_reprovider_runs_again_in_the_same_process(repo: Repo) -> None:
    keys = raw_blocks(repo.store, 600)

    async def main() -> None:
        ann = Announcer(stall_after=150)
        rp = Reprovider(ProvideQueue(repo.db), ann, strategy_source("all", repo.store), ProvideConfig(batch_size=50, **FAST))
        rp.enqueue(keys[:100])
        await run_until(rp, lambda: rp.stats().provided_total >= 150)  # then batches hang in announce
        ann.stall_after = None
        await run_until(rp, lambda: rp.stats().last_pass_end is not None and rp.stats().queued == 0)
        assert set(ann.announced) == set(keys)

    asyncio.run(main())


def test_a_pass_under_another_strategy_starts_over(repo: Repo) -> None:
    keys = raw_blocks(repo.store, 500)

    async def first_run() -> None:
        rp = Reprovider(ProvideQueue(repo.db), Announcer(stall_after=200), strategy_source("all", repo.store), ProvideConfig(batch_size=50, **FAST))
        await run_until(rp, lambda: rp.stats().pass_provided >= 200)

    async def second_run() -> list[bytes]:
        ann = Announcer()
        cfg = ProvideConfig(strategy="pinned", batch_size=50, **FAST)
        rp = Reprovider(ProvideQueue(repo.db), ann, strategy_source("pinned", repo.store), cfg)
        assert not rp.stats().pass_running  # the "all" pass's cursor is dropped
        await run_until(rp, lambda: rp.stats().last_pass_end is not None)
        assert rp.stats().last_pass_keys == 20
        return ann.announced

    asyncio.run(first_run())
    pinned = [cid_for(i.to_bytes(4, "big") * 8, RAW) for i in range(20)]  # 20 of the stored raw blocks
    repo.pins.add_many(pinned)
    assert sorted(asyncio.run(second_run())) == sorted(multihash_of(c) for c in pinned)
    assert len(keys) == 500


# ----------------------------------------------------------------------------- strategies
def test_strategies_roots_pinned_all(repo: Repo) -> None:
    pinned_root = import_bytes(os.urandom(300_000), repo.store, ImportParams(chunk_size=16_384, max_links=4)).cid
    pinned_blocks = {multihash_of(c) for c, _ in walk_dag(pinned_root, repo.store.get)}
    direct = cid_for(b"direct pin", RAW)
    repo.store.put(direct, b"direct pin")
    loose = raw_blocks(repo.store, 50, b"loose")  # stored, not pinned
    repo.pins.add(pinned_root)
    repo.pins.add(direct, DIRECT)

    def keys(strategy: str) -> set[bytes]:
        return {mh for _b, mh in strategy_source(strategy, repo.store)(None) if mh is not None}

    assert keys("roots") == {multihash_of(pinned_root), multihash_of(direct)}
    assert keys("pinned") == pinned_blocks | {multihash_of(direct)}
    assert keys("all") == pinned_blocks | {multihash_of(direct)} | set(loose)
    # resuming after a pin skips that pin's DAG entirely; inside a DAG there is no boundary
    first_pin = min(pinned_root, direct)
    rest = {mh for _b, mh in strategy_source("pinned", repo.store)(first_pin) if mh is not None}
    assert rest == (pinned_blocks if first_pin == direct else {multihash_of(direct)})
    boundaries = [b for b, _ in strategy_source("pinned", repo.store)(None) if b is not None]
    assert sorted(boundaries) == sorted([pinned_root, direct])
    with pytest.raises(ValueError):
        strategy_source("flat", repo.store)


# ----------------------------------------------------------------------------- cluster blocks
def test_cluster_crdt_blocks_are_never_announced(repo: Repo) -> None:
    replica = Replica(repo.db, repo.store, peer_id="me")
    for i in range(20):
        replica.put(cid_for(b"pin %d" % i, RAW), b"pin value %d" % i)
    replica.create_snapshot()
    crdt = {multihash_of(c) for c in replica.block_cids()}
    assert len(crdt) > 20  # deltas and snapshot blocks
    assert all(repo.store.has_multihash(mh) for mh in crdt)
    user = raw_blocks(repo.store, 100, b"user")
    exclude = crdt_exclusion(repo.db)
    # a CRDT block stored before the replica marks it (its store write and its mark are two writes)
    late_data = libipld.encode_dag_cbor({"delta": "stored, marked after queueing"})
    late = cid_for(late_data, DAG_CBOR)
    repo.store.put(late, late_data)

    async def main() -> None:
        ann = Announcer()
        q = ProvideQueue(repo.db, exclude=exclude)
        # new keys: CRDT blocks are dropped when queued...
        assert q.enqueue(sorted(crdt)[:5] + user[:5]) == 5
        # ...and a block marked as the CRDT's after it was queued is still caught before announcing
        assert q.enqueue([multihash_of(late)]) == 1
        repo.db.put(CRDT_BLOCK + late, b"")
        rp = Reprovider(q, ann, strategy_source("all", repo.store), ProvideConfig(batch_size=32, **FAST))
        await run_until(rp, lambda: rp.stats().last_pass_end is not None and rp.stats().queued == 0)
        announced = set(ann.announced)
        assert announced.isdisjoint(crdt) and multihash_of(late) not in announced
        assert set(user) <= announced
        s = rp.stats()
        assert s.excluded_total == 5 + 1 + len(crdt) + 1  # at enqueue, at dispatch, and every CRDT block in the pass

    asyncio.run(main())


def test_steady_new_keys_do_not_starve_the_pass(repo: Repo) -> None:
    stored = raw_blocks(repo.store, 400)

    async def main() -> None:
        ann = Announcer(delay=0.002)
        cfg = ProvideConfig(batch_size=20, workers=4, **FAST)
        rp = Reprovider(ProvideQueue(repo.db), ann, strategy_source("all", repo.store), cfg)
        fresh = [b"\x12\x20" + bytes([1]) + i.to_bytes(31, "big") for i in range(4000)]  # not in the store
        rp.enqueue(fresh)
        await run_until(rp, lambda: rp.stats().last_pass_end is not None)
        order = {k: i for i, k in enumerate(ann.announced)}
        # the pass finished while most new keys were still waiting: it had its share of batches
        assert max(order[k] for k in stored) < len(fresh) * 0.6
        assert set(stored) <= set(order)

    asyncio.run(main())


# ----------------------------------------------------------------------------- retries, workers
def test_retries_with_backoff_then_give_up(repo: Repo) -> None:
    keys = raw_blocks(repo.store, 200)
    flaky = set(keys[:30])
    broken = set(keys[30:40])

    async def main() -> None:
        ann = Announcer(fail=lambda k, n: (k in flaky and n <= 2) or k in broken)
        cfg = ProvideConfig(batch_size=25, workers=3, max_attempts=4, interval=0, **FAST)
        q = ProvideQueue(repo.db)
        rp = Reprovider(q, ann, strategy_source("all", repo.store), cfg)
        rp.enqueue(keys)
        await run_until(rp, lambda: rp.stats().queued == 0 and rp.stats().in_flight == 0)
        s = rp.stats()
        assert set(ann.announced) == set(keys) - broken
        assert all(ann.tries[k] == 3 for k in flaky) and all(ann.tries[k] == 4 for k in broken)
        assert s.provided_total == 190 and s.failed_total == 10
        assert s.errors_total == 30 * 2 + 10 * 4
        assert not s.pass_running and s.next_pass_due is None  # interval 0: no pass

    asyncio.run(main())


def test_announce_raising_fails_the_batch_and_workers_run_in_parallel(repo: Repo) -> None:
    keys = raw_blocks(repo.store, 400)
    calls = {"n": 0}

    async def main() -> None:
        inner = Announcer(delay=0.05)

        async def announce(batch: list[bytes]) -> Sequence[bool]:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ConnectionError("no DHT peers yet")
            return await inner(batch)

        cfg = ProvideConfig(batch_size=20, workers=5, interval=0, **FAST)
        rp = Reprovider(ProvideQueue(repo.db), announce, strategy_source("all", repo.store), cfg)
        rp.enqueue(keys)
        await run_until(rp, lambda: rp.stats().provided_total == 400)
        assert inner.max_active == 5
        assert rp.stats().errors_total == 20 and rp.stats().failed_total == 0

    asyncio.run(main())
