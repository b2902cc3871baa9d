"""Pin tracker store at scale: enqueue, status, iter_status and worker take/finish on a real LevelDB.

Run: ``.venv/bin/python -m benchmarks.bench_tracker [--quick] [--pins N]``.

Measures ``TrackerStore`` (cluster/tracker.py), the part that holds every tracked pin on disk:
- enqueue: ``want_pin`` of N fresh pins (one write batch each: record, queue entry, counters);
- status: ``get(cid).info(peer)`` of every pin in random order (the REST status path);
- iter_status: ``iter_records()`` over all records, decoded to PinInfo (the status stream);
- take+finish: a worker's cycle (``take`` the next due pin, ``finish`` it as pinned) for a slice of the queue;
- RSS after each phase: the queue lives on disk, so memory must not grow with N.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from blockstore.cid import RAW, cid_for
from blockstore.db import open_db
from cluster.pin import Pin
from cluster.tracker import PIN, TrackerStore

PEER = "12D3KooWBenchTrackerPeer"


def _rss_mb() -> float:
    """Current resident set size in MiB (from /proc, falls back to the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int, work_slice: int) -> list[dict[str, object]]:
    """Run every phase on ``n`` pins in a fresh repo; one row per phase."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-tracker-") as tmp:
        db = open_db(Path(tmp) / "db")
        store = TrackerStore(db)
        now = time.time_ns()
        rss0 = _rss_mb()

        t0 = time.perf_counter()
        cids: list[bytes] = []
        for i in range(n):
            cid = cid_for(b"bench tracker pin %d" % i)
            cids.append(cid)
            store.want_pin(Pin(cid, timestamp=now), now)
        dt = time.perf_counter() - t0
        assert store.queue_length() == n, store.counts()
        rows.append({"phase": "enqueue (want_pin)", "pins": n, "seconds": round(dt, 2),
                     "per_s": round(n / dt), "rss_mb": round(_rss_mb(), 1)})

        order = list(range(n))
        random.Random(1).shuffle(order)
        t0 = time.perf_counter()
        for i in order:
            rec = store.get(cids[i])
            assert rec is not None
            rec.info(PEER)
        dt = time.perf_counter() - t0
        rows.append({"phase": "status (random get)", "pins": n, "seconds": round(dt, 2),
                     "per_s": round(n / dt), "rss_mb": round(_rss_mb(), 1)})
        del order

        t0 = time.perf_counter()
        seen = 0
        for rec in store.iter_records():
            rec.info(PEER)
            seen += 1
        dt = time.perf_counter() - t0
        assert seen == n
        rows.append({"phase": "iter_status (sorted)", "pins": n, "seconds": round(dt, 2),
                     "per_s": round(n / dt), "rss_mb": round(_rss_mb(), 1)})

        t0 = time.perf_counter()
        done = 0
        while done < work_slice:
            rec = store.take(PIN, now)
            assert rec is not None
            store.finish(rec.cid, PIN, None, now)
            done += 1
        dt = time.perf_counter() - t0
        rows.append({"phase": "take+finish (worker cycle)", "pins": done, "seconds": round(dt, 2),
                     "per_s": round(done / dt), "rss_mb": round(_rss_mb(), 1)})
        assert store.counts() == store.recount()
        rows.append({"phase": "baseline before enqueue", "pins": 0, "seconds": 0, "per_s": 0,
                     "rss_mb": round(rss0, 1)})
        db.close()
    return rows


def pipeline(n: int) -> dict[str, object]:
    """The pin tracker's own cost per pin, end to end on the event loop: ``n`` pins of small
    DAGs already in the block store go through ``on_state_change`` -> queue -> take -> the
    real :class:`DagFetcher` (finds them complete here: no network) -> local pin recorded ->
    record finished, with ``ConcurrentPins`` 16 as in bench_cluster_pins. Reports pins/s
    from the first change to the last pin recorded."""
    import asyncio

    from blockstore.pins import Pins
    from blockstore.store import BlockStore
    from node.cluster.fetch import DagFetcher
    from node.cluster.pintracker import PinTracker

    with tempfile.TemporaryDirectory(prefix="bench-tracker-pipe-") as tmp:
        db = open_db(Path(tmp) / "db")
        blocks = BlockStore(db)
        pins = Pins(db)
        cids = [cid_for(b"small DAG %d " % i * 64, RAW) for i in range(n)]
        blocks.put_many([(cid, b"small DAG %d " % i * 64) for i, cid in enumerate(cids)])
        fetcher = DagFetcher(None, blocks, None, freespace=lambda: 1 << 40)  # type: ignore[arg-type]
        tracker = PinTracker(db, pins, PEER, {"ConcurrentPins": 16, "PinTimeout": 60}, fetch=fetcher.fetch, blocks=blocks)
        now = time.time_ns()
        todo = [Pin(cid, timestamp=now, allocations=(PEER,), replication_factor_min=1, replication_factor_max=1) for cid in cids]

        async def go() -> float:
            await tracker.start()
            t0 = time.perf_counter()
            loop = asyncio.get_running_loop()
            # the replica's thread: one change at a time (a delta of one pin each)
            await loop.run_in_executor(None, lambda: [tracker.on_state_change(p.cid, p) for p in todo])
            while tracker.counts().get("pinned", 0) < n:
                await asyncio.sleep(0.005)
            dt = time.perf_counter() - t0
            await tracker.stop()
            return dt

        dt = asyncio.run(go())
        assert all(pins.get(c) is not None for c in cids)
        db.close()
    return {"phase": "pipeline: queued -> pinned (DAGs local)", "pins": n, "seconds": round(dt, 2),
            "per_s": round(n / dt), "rss_mb": round(_rss_mb(), 1)}


def main() -> None:
    """Parse the arguments, run, report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="50,000 pins instead of 1,000,000")
    ap.add_argument("--pins", type=int, default=0, help="number of pins (overrides --quick)")
    ap.add_argument("--pipeline", type=int, default=0, help="only the tracker pipeline phase, with this many pins")
    args = ap.parse_args()
    if args.pipeline:
        report("tracker_pipeline", [pipeline(args.pipeline)], {"pins": args.pipeline})
        return
    n = args.pins or (50_000 if args.quick else 1_000_000)
    rows = run(n, work_slice=min(n, 100_000))
    rows.append(pipeline(min(n, 5000)))
    report("tracker", rows, {"pins": n, "note": "the CID list itself (~40 B per pin) is part of the RSS"})


if __name__ == "__main__":
    main()
