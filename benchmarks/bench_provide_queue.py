"""The provide queue itself, with an announcer that does nothing: can it ever be the bottleneck?

Announcing to the DHT is the slow part of providing (kubo reaches ~1,000 keys/s only with its
sweep provider); this measures everything around it, on a real LevelDB repo:

1. ``enqueue`` of N new keys (multihashes) in batches of 10,000;
2. draining them through :class:`Reprovider` (4 workers, batches of 256, one LevelDB write
   batch per completed batch) to a no-op ``announce``;
3. a reprovide pass of the ``roots`` strategy over N local pins (streamed from LevelDB, the
   cursor saved as batches complete);
4. the same pass with a 5 ms ``announce`` per batch of 256 keys (a stand-in for network latency,
   so that batches are really in flight in parallel).

Anonymous RSS (the process's own memory, not LevelDB's mapped table files) is sampled through
each phase: it must stay flat whatever N, since no phase holds the keys in memory.

Run: ``.venv/bin/python -m benchmarks.bench_provide_queue [--quick] [--keys N]`` (default 1 M;
``--quick``: 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_car import RssSampler
from benchmarks.common import report
from bitswap.routing.provide_queue import ProvideConfig, ProvideQueue, Reprovider, strategy_source
from blockstore.cid import RAW, make_cid
from blockstore.db import open_db
from blockstore.pins import Pins
from blockstore.store import BlockStore


def _anon_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def keys(n: int, salt: bytes = b"") -> Any:
    """``n`` distinct sha2-256 multihashes, generated lazily."""
    for i in range(n):
        yield b"\x12\x20" + hashlib.sha256(salt + i.to_bytes(8, "big")).digest()


async def drain(rp: Reprovider, done: Any) -> float:
    """Run the reprovider until ``done()``; return the seconds it took."""
    t0 = time.perf_counter()
    task = asyncio.ensure_future(rp.run())
    try:
        while not done():
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
    finally:
        await rp.stop()
    return time.perf_counter() - t0


def phase(rows: list[dict[str, Any]], name: str, n: int, seconds: float, anon_start: int, rss: RssSampler, target: str) -> None:
    rows.append(
        {
            "phase": name,
            "keys": n,
            "seconds": round(seconds, 2),
            "keys/s": round(n / seconds),
            "target": target,
            "anon MiB start": round(anon_start / 1024, 1),
            "anon MiB peak": round(rss.peak_anon_kb / 1024, 1),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 keys")
    parser.add_argument("--keys", type=int, default=None, help="keys per phase (default 1,000,000)")
    args = parser.parse_args()
    n = args.keys or (100_000 if args.quick else 1_000_000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-provide-") as tmp:
        db = open_db(Path(tmp) / "repo")
        store = BlockStore(db)
        queue = ProvideQueue(db)

        # 1. enqueue
        anon = _anon_kb()
        with RssSampler() as rss:
            t0 = time.perf_counter()
            batch: list[bytes] = []
            for mh in keys(n):
                batch.append(mh)
                if len(batch) == 10_000:
                    queue.enqueue(batch)
                    batch = []
            queue.enqueue(batch)
            took = time.perf_counter() - t0
        phase(rows, "enqueue, batches of 10k", n, took, anon, rss, ">= 10,000 keys/s")

        # 2. drain the new keys to a no-op announcer
        async def noop(batch: list[bytes]) -> None:
            return None

        cfg = ProvideConfig(strategy="roots", interval=0, batch_size=256, workers=4)
        anon = _anon_kb()
        with RssSampler() as rss:
            rp = Reprovider(queue, noop, strategy_source("roots", store), cfg)
            took = asyncio.run(drain(rp, lambda: rp.stats().provided_total >= n))
        assert queue.counts()["queued_new"] == 0
        phase(rows, "drain new keys, no-op announce", n, took, anon, rss, ">= 1,000 keys/s (x10)")

        # 3. + 4. a reprovide pass over n pins (roots strategy)
        pins = Pins(db)
        chunk: list[bytes] = []
        for mh in keys(n, b"pin"):
            chunk.append(make_cid(1, RAW, mh))
            if len(chunk) == 50_000:
                pins.add_many(chunk)
                chunk = []
        pins.add_many(chunk)
        for label, delay in (("no-op announce", 0.0), ("5 ms announce", 0.005)):

            async def announce(batch: list[bytes], delay: float = delay) -> None:
                if delay:
                    await asyncio.sleep(delay)

            pass_cfg = ProvideConfig(strategy="roots", interval=3600 * 22, initial_delay=0, batch_size=256, workers=8)
            q = ProvideQueue(db)
            q.state.next_due = time.time()  # a pass is due now
            q.save_state()
            anon = _anon_kb()
            with RssSampler() as rss:
                rp = Reprovider(q, announce, strategy_source("roots", store), pass_cfg)
                before = q.state.last_end
                took = asyncio.run(drain(rp, lambda: q.state.last_end is not None and q.state.last_end != before))
            assert q.state.last_keys == n, q.state
            phase(rows, f"pass over {n:,} pins, {label}", n, took, anon, rss, ">= 1,000 keys/s (x10)")
        db.close()
    notes = {
        "setup": "drain: 4 workers x batches of 256; passes: roots strategy, 8 workers x 256",
        "repo": "one LevelDB (blockstore.db.open_db) in a temp dir; keys are sha2-256 multihashes",
        "load average (1 min) at end": f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        "what a pass of 22 h needs": f"{n:,} keys / 79,200 s = {n / 79_200:,.1f} keys/s",
    }
    report("provide_queue", rows, notes)


if __name__ == "__main__":
    main()
