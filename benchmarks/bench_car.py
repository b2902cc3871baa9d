"""CAR import and export throughput over a persistent store, and peak memory of a 1 GiB CAR import.

* A 256 MiB file of random-looking data (ChaCha20 keystream; ``--quick``: 64 MiB) is imported with
  kubo's defaults (CIDv0, 256 KiB dag-pb leaves, 174 links) to get its DAG, written to a CARv1 file
  (header with the root, blocks in import order).
* parse+verify: the CAR read and every block hashed, nothing stored (the parser's own cost).
* import: ``import_car`` into a fresh ``open_db`` + ``BlockStore`` (verified, journaled, persisted).
* store ceiling: the same blocks in the same 16-block batches written with ``put_many`` alone
  (parsing not timed), the most a CAR import can reach with this store on this machine now.
* export: ``write_car(walk_dag(root, store.get))`` from that store, the bytes counted.
* In a subprocess, a 1 GiB CAR (``--quick``: 64 MiB) is imported into a fresh store, and once
  more with no store (parser, verification and batching only); the child samples its own
  ``/proc/self/status`` every 20 ms and reports peak VmRSS, RssAnon and RssFile. (``ru_maxrss``
  is not used: a child started by fork inherits the parent's figure.)

Throughput is CAR bytes per second (MB = 10^6 bytes). Run: ``.venv/bin/python -m benchmarks.bench_car [--quick]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Iterable
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from benchmarks.common import report
from blockstore.car import CarReader, encode_header, write_car
from blockstore.carimport import import_car
from blockstore.cid import encode_varint
from blockstore.dagwalk import walk_dag
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_file
from blockstore.store import BlockStore

MiB = 1024 * 1024
GiB = 1024 * MiB


class KeystreamFile:
    """``size`` bytes of ChaCha20 keystream (key = sha256(seed)) behind a ``read(n)``."""

    def __init__(self, seed: str, size: int) -> None:
        key = hashlib.sha256(seed.encode()).digest()
        self._enc = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor()
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return self._enc.update(b"\0" * n) if n else b""


class _Discard:
    """An importer sink that keeps nothing (used to learn the root before writing the CAR)."""

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        return len(blocks)


class _CarSink:
    """An importer sink that appends every block to an open CAR file as a section."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        for cid, data in blocks:
            self._fh.write(encode_varint(len(cid) + len(data)) + cid)
            self._fh.write(data)
        return len(blocks)


def make_car(path: Path, size: int, seed: str = "bench-car") -> bytes:
    """Write a CARv1 of the kubo-default DAG of ``size`` keystream bytes; return its root."""
    params = ImportParams()
    root = import_file(KeystreamFile(seed, size), _Discard(), params).cid
    with path.open("wb") as fh:
        fh.write(encode_header([root]))
        again = import_file(KeystreamFile(seed, size), _CarSink(fh), params).cid
    assert again == root
    return root


def _rate(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / 1e6, 1)


class RssSampler:
    """Samples this process's anonymous and file-backed resident memory (``/proc/self/status``) and keeps the peaks.

    LevelDB reads its table files through mmap, so pages of the database the
    kernel has cached count in RSS as file-backed memory; the anonymous part
    is what the process itself allocated.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.peak_rss_kb = 0
        self.peak_anon_kb = 0
        self.peak_file_kb = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
                elif line.startswith("RssAnon:"):
                    self.peak_anon_kb = max(self.peak_anon_kb, int(line.split()[1]))
                elif line.startswith("RssFile:"):
                    self.peak_file_kb = max(self.peak_file_kb, int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class _NullStore:
    """A store stand-in for the parse-only child: counts blocks, keeps nothing."""

    max_block_size = 2 * MiB

    def new_journal(self) -> bytes:
        return b"j"

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = True, journal: bytes | None = None) -> int:
        return len(blocks)

    def commit(self, journal: bytes, *, uploads: Iterable[bytes] = ()) -> None:
        return None

    def rollback(self, journal: bytes) -> int:
        return 0


def child(car: str, repo: str) -> None:
    """Import ``car`` into a fresh store at ``repo`` (``-``: no store); print a JSON line with peak memory."""
    db = open_db(repo) if repo != "-" else None
    store: Any = BlockStore(db) if db is not None else _NullStore()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        with open(car, "rb") as fh:
            res = import_car(fh, store)
        dt = time.perf_counter() - t0
    if db is not None:
        db.close()
    out = {
        "blocks": res.blocks,
        "seconds": dt,
        "peak_rss_mb": round(rss.peak_rss_kb / 1024, 1),
        "peak_anon_mb": round(rss.peak_anon_kb / 1024, 1),
        "peak_file_mb": round(rss.peak_file_kb / 1024, 1),
    }
    print(json.dumps(out))


def main() -> None:
    """Run the benchmark and report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 MiB everywhere instead of 256 MiB / 1 GiB")
    ap.add_argument("--child", nargs=2, metavar=("CAR", "REPO"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    size = 64 * MiB if args.quick else 256 * MiB
    big = 64 * MiB if args.quick else GiB
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_car_") as tmp:
        t = Path(tmp)
        car = t / "dag.car"
        root = make_car(car, size)
        car_bytes = car.stat().st_size

        t0, c0 = time.perf_counter(), time.process_time()
        with car.open("rb") as fh:
            n = sum(1 for _ in CarReader(fh))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(
            {"case": f"parse+verify {size // MiB} MiB CAR", "blocks": n, "seconds": round(dt, 3), "MB/s": _rate(car_bytes, dt), "CPU s": round(cpu, 3)}
        )

        db = open_db(t / "repo")
        store = BlockStore(db)
        t0, c0 = time.perf_counter(), time.process_time()
        with car.open("rb") as fh:
            res = import_car(fh, store)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(
            {
                "case": f"import {size // MiB} MiB CAR (LevelDB)",
                "blocks": res.blocks,
                "seconds": round(dt, 3),
                "MB/s": _rate(car_bytes, dt),
                "CPU s": round(cpu, 3),
                "target MB/s": 200,
            }
        )

        # the store's own ceiling: the same batches written with put_many, parsing not timed
        db2 = open_db(t / "repo-ceiling")
        store2 = BlockStore(db2)
        put_s = 0.0
        batch: list[tuple[bytes, bytes]] = []
        with car.open("rb") as fh:
            for blk in CarReader(fh, verify=False):
                batch.append((blk.cid, blk.data))
                if len(batch) == 16:
                    t0 = time.perf_counter()
                    store2.put_many(batch, verify=False, journal=b"\0" * 16)
                    put_s += time.perf_counter() - t0
                    batch = []
        if batch:
            t0 = time.perf_counter()
            store2.put_many(batch, verify=False, journal=b"\0" * 16)
            put_s += time.perf_counter() - t0
        db2.close()
        rows.append(
            {"case": f"store ceiling: put_many of the same blocks, {size // MiB} MiB", "blocks": res.blocks, "seconds": round(put_s, 3), "MB/s": _rate(car_bytes, put_s)}
        )

        t0, c0 = time.perf_counter(), time.process_time()
        out = 0
        for chunk in write_car([root], walk_dag(root, store.get)):
            out += len(chunk)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(
            {
                "case": f"export {size // MiB} MiB CAR (LevelDB)",
                "blocks": res.blocks,
                "seconds": round(dt, 3),
                "MB/s": _rate(out, dt),
                "CPU s": round(cpu, 3),
                "target MB/s": 300,
            }
        )
        db.close()
        assert out == car_bytes, (out, car_bytes)

        bigcar = t / "big.car" if big != size else car
        if big != size:
            make_car(bigcar, big, seed="bench-car-big")
        for label, repo in (("LevelDB", str(t / "repo-big")), ("no store", "-")):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_car", "--child", str(bigcar), repo],
                check=True,
                capture_output=True,
                text=True,
            )
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "case": f"import {big // MiB} MiB CAR, child process ({label})",
                    "blocks": info["blocks"],
                    "seconds": round(info["seconds"], 3),
                    "MB/s": _rate(bigcar.stat().st_size, info["seconds"]),
                    "peak RSS MB": info["peak_rss_mb"],
                    "peak anon MB": info["peak_anon_mb"],
                    "peak file-backed MB": info["peak_file_mb"],
                    "target RSS MB": 200,
                }
            )
    notes = {
        "quick": args.quick,
        "layout": "kubo defaults: CIDv0, 256 KiB dag-pb leaves, 174 links",
        "load average at end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpus": os.cpu_count(),
    }
    report("car", rows, notes)


if __name__ == "__main__":
    main()
