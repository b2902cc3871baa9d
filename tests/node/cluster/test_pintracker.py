"""node/pintracker.py on real LevelDB repos: DAGs copied block by block from a second block store
(fast, slow, failing), PinTimeout without progress, retries to pin_failed, unpins, recover,
reconciliation, and a restart after kill -9 that resumes the queue."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blockstore.dagwalk import walk_dag
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_bytes
from blockstore.pins import Pins
from blockstore.store import BlockStore
from cluster.pin import Pin
from node.cluster.pintracker import PinTracker

ROOT = Path(__file__).resolve().parents[3]
ME = "12D3KooWTrackerPeer"
CONFIG = {"ConcurrentPins": 2, "PinTimeout": 0.5, "RetryBackoff": 0.05, "MaxRetries": 3, "RecoverInterval": 3600}


class Env:
    """A source block store holding DAGs, and the tracked repo."""

    def __init__(self, tmp: Path) -> None:
        self.src_db = open_db(tmp / "src")
        self.src = BlockStore(self.src_db)
        self.db = open_db(tmp / "repo")
        self.store = BlockStore(self.db)
        self.pins = Pins(self.db)
        self.delay = 0.0  # seconds between blocks
        self.stall_after: int | None = None  # blocks, then hang
        self.fail: str | None = None
        self.fetches: list[bytes] = []

    def dag(self, size: int, seed: int) -> bytes:
        data = bytes((seed * 7 + i) % 251 for i in range(size))
        return import_bytes(data, self.src, ImportParams(cid_version=1, chunk_size=4096)).cid

    async def fetch(self, pin: Pin, progress: Callable[[int], None]) -> None:
        self.fetches.append(pin.cid)
        if self.fail:
            raise RuntimeError(self.fail)
        depth = None if pin.max_depth < 0 else pin.max_depth
        for n, (cid, data) in enumerate(walk_dag(pin.cid, self.src.get, max_depth=depth)):
            if self.stall_after is not None and n >= self.stall_after:
                await asyncio.sleep(3600)
            self.store.put(cid, data)
            progress(1)
            if self.delay:
                await asyncio.sleep(self.delay)

    def close(self) -> None:
        self.src_db.close()
        self.db.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


async def _until(what: str, cond: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _status(t: PinTracker, pin: Pin) -> str:
    return t.status(pin.cid, pin).status


def test_pins_unpins_statuses_and_counters(env: Env) -> None:
    async def main() -> None:
        t = PinTracker(env.db, env.pins, ME, CONFIG, fetch=env.fetch)
        await t.start()
        try:
            mine = Pin(env.dag(50_000, 1), allocations=(ME, "other"), timestamp=time.time_ns())
            everywhere = Pin(env.dag(20_000, 2), timestamp=time.time_ns())
            remote = Pin(env.dag(1000, 3), allocations=("other",), timestamp=time.time_ns())
            direct = Pin(env.dag(30_000, 4), max_depth=0, timestamp=time.time_ns())
            for p in (mine, everywhere, remote, direct):
                await asyncio.to_thread(t.on_state_change, p.cid, p)
            await _until("three pins pinned", lambda: t.counts().get("pinned") == 3)
            assert _status(t, mine) == "pinned" and env.pins.get(mine.cid) == "recursive"
            assert _status(t, remote) == "remote" and remote.cid not in env.fetches
            assert env.pins.get(direct.cid) == "direct"
            assert all(env.store.has(c) for c, _ in walk_dag(mine.cid, env.src.get))
            assert [i.cid for i in t.iter_status()] == sorted([mine.cid, everywhere.cid, direct.cid])
            # the pinset drops one and re-allocates another away from this peer
            await asyncio.to_thread(t.on_state_change, mine.cid, None)
            moved = everywhere.with_(allocations=("other",))
            await asyncio.to_thread(t.on_state_change, everywhere.cid, moved)
            await _until("two unpins", lambda: t.counts() == {"pinned": 1})
            assert env.pins.get(mine.cid) is None and env.pins.get(everywhere.cid) is None
            assert _status(t, mine.with_(allocations=())) == "unexpectedly_unpinned"  # not tracked, not pinned
            assert t.status(mine.cid, None).status == "unpinned"
            # a user removing the local pin behind the tracker's back
            env.pins.remove(direct.cid)
            assert _status(t, direct) == "unexpectedly_unpinned"
            info = await t.recover(direct.cid, direct)
            await _until("the recovered pin", lambda: env.pins.get(direct.cid) == "direct")
            assert info.cid == direct.cid
            # an expired pin is not pinned
            expired = Pin(env.dag(1000, 5), expire_at=time.time_ns() - 1, timestamp=time.time_ns())
            await asyncio.to_thread(t.on_state_change, expired.cid, expired)
            assert t.store.get(expired.cid) is None
        finally:
            await t.stop()

    asyncio.run(main())


def test_timeout_without_progress_retries_and_pin_failed(env: Env) -> None:
    async def main() -> None:
        t = PinTracker(env.db, env.pins, ME, CONFIG, fetch=env.fetch)
        await t.start()
        try:
            # slow but progressing: never times out although it takes longer than PinTimeout in total
            env.delay = 0.05
            slow = Pin(env.dag(80_000, 6), timestamp=time.time_ns())  # ~21 blocks * 0.05 s > 0.5 s
            started = time.monotonic()
            await asyncio.to_thread(t.on_state_change, slow.cid, slow)
            await _until("the slow pin", lambda: _status(t, slow) == "pinned")
            assert time.monotonic() - started > CONFIG["PinTimeout"]
            # stalls after 2 blocks: cancelled after PinTimeout, retried, then pin_failed
            env.delay, env.stall_after = 0.0, 2
            stuck = Pin(env.dag(80_000, 7), timestamp=time.time_ns())
            await asyncio.to_thread(t.on_state_change, stuck.cid, stuck)
            await _until("pin_failed", lambda: _status(t, stuck) == "pin_failed", timeout=20)
            info = t.status(stuck.cid, stuck)
            assert info.attempt_count == 3 and "no block arrived" in info.error
            assert env.pins.get(stuck.cid) is None
            # recover after the content becomes fetchable
            env.stall_after = None
            await t.recover(stuck.cid, stuck)
            await _until("the recovered pin", lambda: _status(t, stuck) == "pinned")
            # a failing fetch shows its error
            env.fail = "no provider has it"
            bad = Pin(env.dag(1000, 8), timestamp=time.time_ns())
            await asyncio.to_thread(t.on_state_change, bad.cid, bad)
            await _until("pin_error", lambda: t.status(bad.cid, bad).error == "no provider has it")
            assert t.status(bad.cid, bad).status in ("pin_error", "pinning", "pin_failed")
            assert t.counts() == t.store.recount()
        finally:
            await t.stop()

    asyncio.run(main())


def test_an_unpin_cancels_a_pin_in_flight(env: Env) -> None:
    async def main() -> None:
        t = PinTracker(env.db, env.pins, ME, {**CONFIG, "PinTimeout": 30}, fetch=env.fetch)
        await t.start()
        try:
            env.stall_after = 1
            p = Pin(env.dag(50_000, 9), timestamp=time.time_ns())
            await asyncio.to_thread(t.on_state_change, p.cid, p)
            await _until("pinning", lambda: _status(t, p) == "pinning")
            await asyncio.to_thread(t.on_state_change, p.cid, None)
            await _until("the unpin done", lambda: t.store.get(p.cid) is None, timeout=5)
            assert env.pins.get(p.cid) is None and t.counts() == {}
        finally:
            await t.stop()

    asyncio.run(main())


def test_reconcile_with_the_pinset(env: Env) -> None:
    async def main() -> None:
        t = PinTracker(env.db, env.pins, ME, CONFIG, fetch=env.fetch)
        pins = [Pin(env.dag(2000, 20 + i), timestamp=time.time_ns()) for i in range(6)]
        gone = Pin(env.dag(2000, 40), timestamp=time.time_ns())
        # before start: gone is tracked as pinned, pins[0] is already pinned locally (an upload here)
        t.store.adopt_pinned(gone.cid)
        env.pins.add(gone.cid)
        env.pins.add(pins[0].cid)
        await t.start()
        try:
            state = sorted([*pins[:5], pins[5].with_(allocations=("other",))], key=lambda p: p.cid)
            await t.sync_state(state)
            await _until("the pinset's pins", lambda: t.counts() == {"pinned": 5})
            assert env.pins.get(gone.cid) is None  # no longer in the pinset: unpinned
            assert pins[0].cid not in env.fetches  # adopted, not fetched again
            assert t.status(pins[5].cid, state[[p.cid for p in state].index(pins[5].cid)]).status == "remote"
        finally:
            await t.stop()

    asyncio.run(main())


CHILD = """
import asyncio, sys, time
from blockstore.db import open_db
from blockstore.pins import Pins
from blockstore.cid import cid_for
from cluster.pin import Pin
from node.cluster.pintracker import PinTracker

async def never(pin, progress):
    await asyncio.sleep(3600)

async def main():
    db = open_db(sys.argv[1])
    t = PinTracker(db, Pins(db), "me", {"ConcurrentPins": 2, "PinTimeout": 600}, fetch=never)
    await t.start()
    for i in range(500):
        await asyncio.to_thread(t.on_state_change, cid_for(b"crash %d" % i), Pin(cid_for(b"crash %d" % i), timestamp=time.time_ns()))
    print("queued", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_kill_9_leaves_a_consistent_queue_that_resumes(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"queued"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    db = open_db(path)
    try:
        fetched: list[bytes] = []

        async def fetch(pin: Pin, progress: Callable[[int], None]) -> None:
            fetched.append(pin.cid)

        t = PinTracker(db, Pins(db), "me", CONFIG, fetch=fetch)
        assert t.counts() == t.store.recount()
        assert t.counts() == {"pinning": 2, "pin_queued": 498}

        async def main() -> None:
            await t.start()
            try:
                await _until("every queued pin done", lambda: t.counts() == {"pinned": 500}, timeout=30)
            finally:
                await t.stop()

        asyncio.run(main())
        assert len(set(fetched)) == 500
    finally:
        db.close()


def test_uploads_are_pinned_at_once_while_every_worker_waits_on_unreachable_content(env: Env) -> None:
    """Two workers stuck on pins nobody can serve and more queued behind them: a pin whose content
    was uploaded here goes through the local lane and is pinned at once; one whose content is not
    all here after all is demoted to the pin queue."""
    from blockstore.cid import cid_for
    from blockstore.uploads import Uploads

    async def fetch(pin: Pin, progress: Callable[[int], None]) -> None:
        env.fetches.append(pin.cid)
        await asyncio.sleep(3600)  # no provider: waits for blocks that never come

    async def main() -> None:
        uploads = Uploads(env.db)
        t = PinTracker(env.db, env.pins, ME, {**CONFIG, "PinTimeout": 600}, fetch=fetch, blocks=env.store, is_local=uploads.has)
        await t.start()
        try:
            for i in range(5):
                unreachable = Pin(cid_for(b"nobody has %d" % i), timestamp=time.time_ns())
                await asyncio.to_thread(t.on_state_change, unreachable.cid, unreachable)
            await _until("both workers stuck", lambda: t.counts().get("pinning") == 2)
            root = env.dag(50_000, 1)
            for cid, data in walk_dag(root, env.src.get):  # the upload: its blocks are here
                env.store.put(cid, data)
            j = env.store.new_journal()
            env.store.commit(j, uploads=[root])
            upload = Pin(root, timestamp=time.time_ns())
            await asyncio.to_thread(t.on_state_change, root, upload)
            await _until("the upload pinned", lambda: _status(t, upload) == "pinned")
            assert root not in env.fetches and env.pins.get(root) == "recursive"
            # an "upload" whose blocks are not here: demoted, then fetched like any pin (hangs here)
            other = env.dag(50_000, 2)
            env.store.commit(env.store.new_journal(), uploads=[other])
            missing = Pin(other, timestamp=time.time_ns())
            await asyncio.to_thread(t.on_state_change, other, missing)
            await _until("demoted to the pin queue", lambda: (rec := t.store.get(other)) is not None and not rec.local and rec.status == "pin_queued")
            assert t.counts() == t.store.recount()
        finally:
            await t.stop()

    asyncio.run(main())


def test_a_block_collected_between_the_fetch_and_the_pin_is_fetched_again(env: Env) -> None:
    """A garbage collection that removes the fetched blocks before the pin is recorded (here: one
    that does not know the tracker's roots): the pin is not recorded incomplete, the DAG is
    fetched again in the same attempt and then pinned."""
    from blockstore.links import iter_links
    from blockstore.pins import collect_garbage

    root = env.dag(50_000, 3)
    rounds: list[int] = []

    async def fetch(pin: Pin, progress: Callable[[int], None]) -> None:
        await env.fetch(pin, progress)
        rounds.append(1)
        if len(rounds) == 1:
            removed = await asyncio.to_thread(lambda: list(collect_garbage(env.store, env.pins, iter_links)))
            assert removed  # the DAG was garbage to it

    async def main() -> None:
        t = PinTracker(env.db, env.pins, ME, CONFIG, fetch=fetch, blocks=env.store)
        await t.start()
        try:
            pin = Pin(root, timestamp=time.time_ns())
            await asyncio.to_thread(t.on_state_change, root, pin)
            await _until("pinned", lambda: _status(t, pin) == "pinned")
        finally:
            await t.stop()
        assert len(rounds) == 2 and t.store.get(root).attempts == 1  # type: ignore[union-attr]
        assert [c for c, _d in walk_dag(root, env.store.get)]  # complete: every block is here

    asyncio.run(main())


def test_many_pins_of_one_delta_run_at_most_concurrent_pins_at_once_and_all_get_pinned(env: Env) -> None:
    """The dispatcher takes pins in batches but never runs more than ``ConcurrentPins`` fetches,
    a slot freed by a finished pin is filled at once, and every pin ends pinned (recorded from
    the block store, counters equal to a recount)."""
    roots = [env.dag(300, seed) for seed in range(120)]
    pins = [Pin(r, timestamp=time.time_ns(), allocations=(ME,), replication_factor_min=1, replication_factor_max=1) for r in roots]
    running = 0
    most = 0

    async def fetch(pin: Pin, progress: Callable[[int], None]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.01 * (1 + pin.cid[-1] % 3))  # pins finish out of order
            await env.fetch(pin, progress)
        finally:
            running -= 1

    async def main() -> None:
        t = PinTracker(env.db, env.pins, ME, {**CONFIG, "ConcurrentPins": 8}, fetch=fetch, blocks=env.store)
        await t.start()
        try:
            loop = asyncio.get_running_loop()
            # one delta carrying every pin: one write batch (the replica's on_changes hook)
            await loop.run_in_executor(None, t.on_state_changes, [(p.cid, p, None) for p in pins])
            await _until("every pin pinned", lambda: t.counts().get("pinned", 0) == len(pins), timeout=60)
        finally:
            await t.stop()
        assert t.counters["pinned"] == len(pins) and t.counters["pin_errors"] == 0
        assert all(env.pins.get(r) == "recursive" for r in roots)
        assert t.store.counts() == t.store.recount() == {"pinned": len(pins)}
        # gone from the state in one delta: every one queued for unpinning in one batch
        t.on_state_changes([(p.cid, None, None) for p in pins])
        assert t.store.counts() == {"unpin_queued": len(pins)}

    asyncio.run(main())
    assert 2 <= most <= 8


def test_a_pin_replaced_after_its_fetch_is_not_recorded(env: Env) -> None:
    """An unpin that replaced a pin between its fetch and its record: the recorder (which checks
    under the tracker's lock that the pin still runs) writes no local pin and finishes nothing;
    the pins still running in the same job are recorded and finished."""
    roots = [env.dag(3000, seed) for seed in (3, 4)]
    pins = [Pin(r, timestamp=time.time_ns(), allocations=(ME,), replication_factor_min=1, replication_factor_max=1) for r in roots]
    t = PinTracker(env.db, env.pins, ME, CONFIG, fetch=env.fetch, blocks=env.store)
    for p in pins:
        t.on_state_change(p.cid, p)
        for cid, data in walk_dag(p.cid, env.src.get):
            env.store.put(cid, data)
    assert [r.cid for r in t.store.take_many("pin", 10)] == roots
    t.on_state_change(roots[0], None)  # the unpin arrives: the first pin is replaced
    assert t.store.get(roots[0]).status == "unpin_queued"  # type: ignore[union-attr]
    out = t._record_many([(p.cid, p, "recursive", None) for p in pins])
    assert type(out[0]).__name__ == "_Replaced" and out[1] is None
    assert env.pins.get(roots[0]) is None and env.pins.get(roots[1]) == "recursive"
    assert t.store.get(roots[0]).status == "unpin_queued" and t.store.get(roots[1]).status == "pinned"  # type: ignore[union-attr]
    assert t.store.counts() == t.store.recount()
