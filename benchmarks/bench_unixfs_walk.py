"""The UnixFS walks without HTTP: the exporter (sync, ``ipfs cat/ls``) and the gateway's async reads.

A 256 MiB file (``--quick``: 64 MiB) is imported with the kubo profile (``unixfs-v0-2015``: 256 KiB
dag-pb leaves, 174 links, CIDv0) into a temp LevelDB block store, beside a HAMT directory of
20,000 small files (``--quick``: 5,000). Then, in this process, each figure the best of ``--runs``:

- ``exporter.read_file`` of the whole file (MB/s) and of 2,000 random 4 KiB ranges (reads/s);
- ``exporter.list_dir`` of the HAMT without and with entry types (entries/s);
- ``exporter.resolve_path`` of 2,000 random names in the HAMT (lookups/s);
- the gateway's ``read_file`` and ``resolve_path`` over a ``StoreBlockSource`` on one asyncio loop
  (the same work as above, through the async driver; no HTTP).

CPU seconds beside each figure (robust to other load on the machine).

Run: ``.venv/bin/python -m benchmarks.bench_unixfs_walk [--quick] [--runs N]``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import report
from blockstore import exporter
from blockstore.dagpb import decode_pbnode
from blockstore.db import open_db
from blockstore.importer import DirectoryBuilder, ImportParams, import_bytes, import_file
from blockstore.store import BlockStore
from blockstore.unixfs import HAMT_SHARD, decode_unixfs

RANGE = 4096


class _RandomStream:
    """``read(n)`` of pseudo-random bytes, ``total`` bytes in all."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.rng = random.Random(7)

    def read(self, n: int) -> bytes:
        n = min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


def _best(runs: int, fn: Callable[[], int]) -> tuple[float, float, int]:
    """(best wall seconds, CPU seconds of that run, the count fn returned) over ``runs`` runs."""
    best: tuple[float, float, int] | None = None
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if best is None or w < best[0]:
            best = (w, c, n)
    assert best is not None
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 MiB file, 5,000-entry HAMT")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (the best is reported)")
    args = ap.parse_args()
    size = (64 if args.quick else 256) << 20
    entries = 5_000 if args.quick else 20_000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-unixfs-walk-") as tmp:
        store = BlockStore(open_db(Path(tmp) / "repo"))
        try:
            params = ImportParams.from_profile("unixfs-v0-2015")
            file_cid = import_file(_RandomStream(size), store, params).cid
            d = DirectoryBuilder(dataclasses.replace(params, hamt_threshold=1024))  # always sharded
            names = [f"file-{i:06d}.txt" for i in range(entries)]
            for name in names:
                r = import_bytes(name.encode(), store, params)
                d.add_entry(name, r.cid, r.size)
            dir_cid = d.finish(store).cid
            dir_block = store.get(dir_cid)
            assert dir_block is not None and decode_unixfs(decode_pbnode(dir_block).data or b"").type == HAMT_SHARD
            rng = random.Random(3)
            offsets = [rng.randrange(0, size - RANGE) for _ in range(2000)]
            lookups = [rng.choice(names) for _ in range(2000)]
            get = store.get

            def whole() -> int:
                return sum(len(p) for p in exporter.read_file(get, file_cid))

            def ranges() -> int:
                for off in offsets:
                    assert sum(len(p) for p in exporter.read_file(get, file_cid, off, RANGE)) == RANGE
                return len(offsets)

            def listing(types: bool) -> Callable[[], int]:
                return lambda: sum(1 for _ in exporter.list_dir(get, dir_cid, resolve_types=types))

            def resolving() -> int:
                for name in lookups:
                    exporter.resolve_path(get, dir_cid, [name])
                return len(lookups)

            def row(case: str, unit: str, result: tuple[float, float, int], scale: float = 1.0) -> None:
                wall, cpu, n = result
                rows.append({"case": case, unit: round(n / scale / wall, 1), "seconds": round(wall, 3), "cpu s": round(cpu, 3)})

            row(f"exporter read_file, whole {size >> 20} MiB", "MB/s", _best(args.runs, whole), 1e6)
            row(f"exporter read_file, {len(offsets)} x {RANGE} B ranges", "ops/s", _best(args.runs, ranges))
            row(f"exporter list_dir, HAMT of {entries}, no types", "ops/s", _best(args.runs, listing(False)))
            row(f"exporter list_dir, HAMT of {entries}, types", "ops/s", _best(args.runs, listing(True)))
            row(f"exporter resolve_path, {len(lookups)} HAMT names", "ops/s", _best(args.runs, resolving))

            from node.gateway import StoreBlockSource
            from node.gateway.unixfs_http import read_file as gw_read_file
            from node.gateway.walk import resolve_path as gw_resolve_path

            source = StoreBlockSource(store)
            root_block = store.get(file_cid)
            assert root_block is not None

            async def gw_whole() -> int:
                n = 0
                async for piece in gw_read_file(source, file_cid, root_block, 0, size - 1):
                    n += len(piece)
                return n

            async def gw_ranges() -> int:
                for off in offsets:
                    async for _piece in gw_read_file(source, file_cid, root_block, off, off + RANGE - 1):
                        pass
                return len(offsets)

            async def gw_resolving() -> int:
                for name in lookups:
                    await gw_resolve_path(source, dir_cid, [name])
                return len(lookups)

            def on_loop(fn: Callable[[], Any]) -> Callable[[], int]:
                return lambda: asyncio.run(fn())

            row(f"gateway read_file, whole {size >> 20} MiB", "MB/s", _best(args.runs, on_loop(gw_whole)), 1e6)
            row(f"gateway read_file, {len(offsets)} x {RANGE} B ranges", "ops/s", _best(args.runs, on_loop(gw_ranges)))
            row(f"gateway resolve_path, {len(lookups)} HAMT names", "ops/s", _best(args.runs, on_loop(gw_resolving)))
        finally:
            store.db.close()
    report(
        "unixfs_walk",
        rows,
        {"file": f"{size >> 20} MiB, unixfs-v0-2015", "HAMT entries": entries, "runs": args.runs, "quick": args.quick},
    )


if __name__ == "__main__":
    main()
