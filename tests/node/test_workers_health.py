"""The worker pools' bookkeeping and admission, and what /health reports (node/workers.py, node/health.py).

Real threads and a real LevelDB; the thresholds are set small so that the conditions appear
quickly, and every wait polls for the condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from blockstore.db import open_db
from node.health import HealthMonitor
from node.workers import Pools, PoolBusy, WorkerPool

DEADLINE = 60.0


async def _until(what: str, cond: Any) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < deadline, f"not {what} after {DEADLINE} s"
        await asyncio.sleep(0.02)


def test_a_pool_counts_busy_and_queued_jobs_and_the_oldest_wait() -> None:
    async def run() -> None:
        pool = WorkerPool("t", 2)
        gate = threading.Event()
        try:
            jobs = [asyncio.ensure_future(pool.run(gate.wait)) for _ in range(5)]
            await _until("2 busy, 3 queued", lambda: (pool.stats().busy, pool.stats().queued) == (2, 3))
            first = pool.stats().oldest_wait
            await _until("the oldest wait growing", lambda: pool.stats().oldest_wait > first)
            jobs[4].cancel()  # a queued job whose caller gave up leaves the queue
            await _until("2 queued", lambda: pool.stats().queued == 2)
            gate.set()
            await asyncio.gather(*jobs[:4])
            assert (pool.stats().busy, pool.stats().queued, pool.stats().oldest_wait) == (0, 0, 0.0)
        finally:
            gate.set()
            pool.shutdown(wait=True)

    asyncio.run(run())


def test_admission_bounds_uploads_in_all_and_per_client() -> None:
    async def run() -> None:
        pool = WorkerPool("imports", 4)  # 4 at once, 2 per client
        try:
            held: list[Any] = []
            for _ in range(2):
                cm = pool.admit("10.0.0.1", wait=0.2)
                await cm.__aenter__()
                held.append(cm)
            # a third from the same client waits for one of its own slots, then is refused
            with pytest.raises(PoolBusy):
                async with pool.admit("10.0.0.1", wait=0.2):
                    pass
            # another client is admitted meanwhile
            async with pool.admit("10.0.0.2", wait=0.2):
                pass
            # a waiting upload gets the slot as soon as one is freed
            waiter = asyncio.ensure_future(pool.admit("10.0.0.1", wait=30).__aenter__())
            await asyncio.sleep(0)
            assert not waiter.done()
            await held.pop().__aexit__(None, None, None)
            await asyncio.wait_for(waiter, DEADLINE)
        finally:
            pool.shutdown(wait=True)

    asyncio.run(run())


def test_health_reports_a_saturated_pool_a_late_event_loop_and_a_failing_datastore(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")

    async def run() -> None:
        pools = Pools()
        health = HealthMonitor(pools, db, stall_after=0.3, lag_limit=0.5, probe_interval=0.05)
        gate = threading.Event()
        await health.start()
        try:
            await _until("healthy", lambda: health.problems() == [])
            # every reads thread busy and one more job queued: saturated once it has waited stall_after
            jobs = [asyncio.ensure_future(pools.reads.run(gate.wait)) for _ in range(pools.reads.size + 1)]
            await _until("reads saturated", lambda: any("reads worker pool is saturated" in p for p in health.problems()))
            assert all("reads" in p for p in health.problems())
            gate.set()
            await asyncio.gather(*jobs)
            await _until("healthy again", lambda: health.problems() == [])
            # the event loop blocked for a second: reported as late
            time.sleep(1.0)
            await _until("loop late", lambda: any("event loop is" in p for p in health.problems()))
            await _until("loop on time again", lambda: health.problems() == [])
            # LevelDB closed under the node: the probe fails
            db.close()
            await _until("datastore failing", lambda: any("datastore fails" in p for p in health.problems()))
        finally:
            gate.set()
            await health.stop()
            pools.shutdown()

    try:
        asyncio.run(run())
    finally:
        if not db.closed:
            db.close()
