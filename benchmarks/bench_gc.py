"""Garbage collection at scale, and an import running beside it.

Run: ``.venv/bin/python -m benchmarks.bench_gc [--quick] [--pins N]``.

A repo is filled with ``N`` one-block roots (4 KiB each): a quarter pinned
locally, a quarter cluster pins allocated to this peer (in the CRDT pinset), a
quarter pins queued in the pin tracker, a quarter garbage. Then a *new process*
opens the repo and measures (so its memory is the collection's, not the
builder's):

- ``repo gc`` alone: seconds, blocks looked at per second, anonymous memory
  before and after (LevelDB's write buffers and caches included), and the
  Python heap's peak during a collection (tracemalloc): the marks live in
  LevelDB, so it stays flat in N;
- an import of 64 MiB alone, then the same import started while a collection
  runs: MB/s of each and their ratio (imports do not wait for a collection:
  ``blockstore/gc.py``), and that the collection removed the garbage only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .common import report

BLOCK = 4096
IMPORT = 64 * 1024 * 1024


def _mem_mb() -> dict[str, float]:
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            name = line.split(":")[0]
            if name in ("RssAnon", "RssFile"):
                out[name] = round(int(line.split()[1]) / 1024, 1)
    return out


def build(path: Path, n: int) -> None:
    """Make the repo: n roots, one quarter of each kind (see module docstring)."""
    from blockstore.cid import RAW, cid_for
    from cluster.crdt.replica import PUT
    from cluster.pin import Pin
    from cluster.tracker import TrackerStore
    from node.cluster.pinset import open_replica
    from node.repo import Repo

    Repo.init(path, profile="test")
    with Repo.open(path) as repo:
        me = repo.config["Cluster"]["PeerID"]
        replica = open_replica(repo)
        tracker = TrackerStore(repo.db)
        now = time.time_ns()
        for start in range(0, n, 1000):
            blocks = []
            for i in range(start, min(n, start + 1000)):
                data = i.to_bytes(8, "big") + os.urandom(BLOCK - 8)
                blocks.append((cid_for(data, codec=RAW), data))
            repo.store.put_many(blocks, verify=False)
            kinds = [(cid, (start + k) % 4) for k, (cid, _d) in enumerate(blocks)]
            repo.pins.add_many([cid for cid, kind in kinds if kind == 0])
            replica.apply_many([(PUT, cid, Pin(cid, allocations=(me,), timestamp=now).to_cbor()) for cid, kind in kinds if kind == 1])
            for cid, kind in kinds:
                if kind == 2:
                    tracker.want_pin(Pin(cid, allocations=(me,), timestamp=now), now)


def measure(path: Path, n: int) -> dict[str, Any]:
    """Run the collections and imports of the module docstring on the built repo."""
    from blockstore import importer
    from node.core import CoreAPI
    from node.repo import Repo

    out: dict[str, Any] = {"pins": n}
    with Repo.open(path) as repo:
        core = CoreAPI(repo)
        out["mem_before_mb"] = _mem_mb()["RssAnon"]
        t0 = time.perf_counter()
        removed = sum(1 for _ in core.repo_gc())
        out["gc_s"] = round(time.perf_counter() - t0, 2)
        out["gc_blocks_per_s"] = round(n / out["gc_s"])
        out["removed"] = removed
        out["mem_after_mb"] = _mem_mb()["RssAnon"]
        params = importer.ImportParams.from_options(cid_version=1)

        def add(seed: int) -> float:
            data = seed.to_bytes(8, "big") * (IMPORT // 8)
            t = time.perf_counter()
            core.add_stream(io.BytesIO(os.urandom(16) + data), "big.bin", params)
            return IMPORT / 1e6 / (time.perf_counter() - t)

        out["import_alone_mb_s"] = round(add(1), 1)
        # make garbage again so the collection has work while the import runs
        core.add_stream(io.BytesIO(os.urandom(IMPORT)), "garbage.bin", params, pin=False)
        gc_done = threading.Event()
        gc_time: list[float] = []

        def collect() -> None:
            t = time.perf_counter()
            list(core.repo_gc())
            gc_time.append(time.perf_counter() - t)
            gc_done.set()

        thread = threading.Thread(target=collect)
        thread.start()
        time.sleep(0.05)  # let the collection begin: the import starts while it marks
        out["import_during_gc_mb_s"] = round(add(2), 1)
        out["gc_still_running_when_import_ended"] = not gc_done.is_set()
        thread.join()
        out["gc_with_import_s"] = round(gc_time[0], 2)
        out["ratio_during_alone"] = round(out["import_during_gc_mb_s"] / out["import_alone_mb_s"], 2)
        out["kept_after"] = repo.store.stats()["blocks"]
        # one more collection (nothing left to remove) under tracemalloc: the Python heap it needs
        import tracemalloc

        tracemalloc.start()
        list(core.repo_gc())
        out["py_heap_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20,000 pins")
    ap.add_argument("--pins", type=int, default=400_000)
    ap.add_argument("--child", choices=("measure",), help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = 20_000 if args.quick else args.pins
    if args.child:
        print(json.dumps(measure(Path(args.path), n)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
        path = Path(tmp) / "repo"
        t0 = time.perf_counter()
        build(path, n)
        built = time.perf_counter() - t0
        res = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_gc", "--child", "measure", "--path", str(path), "--pins", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(res.stdout.strip().splitlines()[-1])
    report("gc", [row], {"build_s": round(built, 1), "blocks": f"{n} one-block roots of {BLOCK} B, a quarter garbage"})


if __name__ == "__main__":
    main()
