"""The pinset state at scale: listing, lookups, memory, disk and a new peer's snapshot load, 1 M to 80 M pins.

Run: ``.venv/bin/python -m benchmarks.bench_state_scale [--quick] [--sizes 1000000,10000000] [--huge] [--keep DIR]``.
``--huge`` adds the 80 M-pin state (opt-in: hours of build and some 40 GB of disk);
``--no-snapshot`` skips the snapshot loads.

For each size, a fresh repo is filled through the replica's batch path
(``Replica.apply_many``, 1,000 pins per delta: what ``pinion state import``
and a peer syncing deltas do), then a *new process* opens the repo (so its
memory is the state's, not the builder's) and measures:

- list: stream every (CID, pin) of the state from LevelDB, and the same with
  ``Pin.from_cbor``;
- get: random lookups by CID, each timed (p50 / p99 in µs: flat from 1 M to
  10 M = O(1) in the number of pins, up to LevelDB's log-structured levels);
- find: lookups through the name index;
- memory: VmRSS split into anonymous memory (Python heap, LevelDB caches)
  and file-backed pages (LevelDB maps its table files: clean page cache the
  kernel reclaims under pressure, shared with the OS page cache);
- disk: bytes of the repo directory per pin;
- snapshot (up to 10 M pins unless ``--snapshot-sizes`` says otherwise): the
  full peer writes a snapshot of its state, then a *new process* with an
  empty repo loads it (``Replica.load_snapshot``, blocks read from the full
  peer's store: the network is left out) and reports seconds, CPU seconds and
  its anonymous memory. The load rate of the largest size gives the printed
  extrapolation to 80 M pins (the load is linear in the pins: one pass).

Pins are realistic: name, replication 2/3, two allocations, two metadata keys.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import report

PEERS = ("12D3KooWQ8v5UZr9FfM4tQ5yZKkQqN5hZ6g6oQ3Hj7b7mKQ8n1Aa", "12D3KooWR2m3eUxVfX8oBzNgCk7mZ1hJb6qS4E5tYp9LwX2dC4Ee")
CHUNK = 1000
LOOKUPS = 20_000
HUGE = 80_000_000
#: the largest state whose snapshot load is measured by default
SNAPSHOT_MAX = 10_000_000


def _mem_mb() -> dict[str, float]:
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            name = line.split(":")[0]
            if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[name] = round(int(line.split()[1]) / 1024, 1)
    return out


def _open(path: Path) -> tuple[Any, Any]:
    from blockstore.db import open_db
    from blockstore.store import BlockStore
    from cluster.crdt import Replica
    from cluster.pin import pin_index_terms

    db = open_db(path)
    return db, Replica(db, BlockStore(db), peer_id=PEERS[0], index_terms=pin_index_terms)


def _keys(path: Path) -> Any:
    """The pin CID of pin number i in the state at ``path`` (hashed, or synthetic when built from a snapshot)."""
    from blockstore.cid import cid_for

    if (path / "synthetic-keys").exists():
        return _synthetic_key
    return lambda i: cid_for(b"bench-pin-%d" % i)


def _synthetic_key(i: int) -> bytes:
    """A CIDv1 (raw, sha2-256 shape) whose digest is ``i``: keys come out in CID order."""
    return b"\x01\x55\x12\x20" + i.to_bytes(32, "big")


def _pin(cid: bytes, i: int, ts: int) -> bytes:
    from cluster.pin import Pin

    return Pin(
        cid,
        name=f"pin-{i % 1000}",
        replication_factor_min=2,
        replication_factor_max=3,
        allocations=PEERS,
        metadata={"app": "bench", "shard": str(i % 16)},
        timestamp=ts,
    ).to_cbor()


def build_from_snapshot(path: Path, n: int) -> dict[str, Any]:
    """Fill a new repo at ``path`` with ``n`` pins the way a new peer gets them: a snapshot of
    ``n`` pins (1,000 per delta, written to a source repo beside it) loaded into the empty repo.

    For the sizes where building through deltas takes hours on a small machine; the state
    is the same shape (values, elements, index, processed marks), without delta blocks.
    """
    import shutil

    from blockstore.db import open_db
    from blockstore.store import BlockStore
    from cluster.crdt.snapshot import build_snapshot

    def delta(j: int) -> bytes:
        return b"\x01\x71\x12\x20" + b"delta".ljust(16, b"-") + j.to_bytes(16, "big")

    deltas = (n + CHUNK - 1) // CHUNK
    ts = time.time_ns()
    source = path.parent / f"source-{n}"
    shutil.rmtree(source, ignore_errors=True)
    sdb = open_db(source)
    store = BlockStore(sdb)
    t0 = time.perf_counter()

    def elements() -> Any:
        for i in range(n):
            key = _synthetic_key(i)
            yield key, delta(i // CHUNK), i // CHUNK + 1, _pin(key, i, ts)

    root, pending = b"", []
    for cid, data in build_snapshot([(delta(deltas - 1), deltas)], (delta(j) for j in range(deltas)), elements()):
        pending.append((cid, data))
        root = cid
        if len(pending) >= 16:
            store.put_many(pending, verify=False)
            pending = []
    store.put_many(pending, verify=False)
    written = time.perf_counter() - t0
    (path).mkdir(parents=True, exist_ok=True)
    (path / "synthetic-keys").write_text("pin i = CIDv1 raw with digest i\n")
    db, replica = _open(path)
    before = _mem_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = replica.load_snapshot(root, store.get)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = _mem_mb()
    if loaded != n or len(replica.set) != n:
        raise AssertionError(f"the state holds {len(replica.set)} pins ({loaded} loaded), expected {n}")
    db.close()
    sdb.close()
    shutil.rmtree(source, ignore_errors=True)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {
        "seconds": written + seconds,
        "pins/s": n / (written + seconds),
        "disk MB": round(size / 2**20, 1),
        "load": {"seconds": seconds, "cpu": cpu, "before": before, "after": after, "disk": size, "written": written},
    }


def build(path: Path, n: int) -> dict[str, Any]:
    """Fill a new repo at ``path`` with ``n`` pins (in this process)."""
    from blockstore.cid import cid_for
    from cluster.crdt import PUT

    db, replica = _open(path)
    ts = time.time_ns()
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        ops = []
        for i in range(start, min(n, start + CHUNK)):
            cid = cid_for(b"bench-pin-%d" % i)
            ops.append((PUT, cid, _pin(cid, i, ts)))
        replica.apply_many(ops)
    replica.commit()
    seconds = time.perf_counter() - t0
    db.close()
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"seconds": seconds, "pins/s": n / seconds, "disk MB": round(size / 2**20, 1)}


def measure(path: Path, n: int) -> dict[str, Any]:
    """Open the repo at ``path`` (``n`` pins) and measure listing, lookups and memory."""
    from cluster.pin import Pin, name_term

    key_of = _keys(path)
    before = _mem_mb()
    db, replica = _open(path)
    out: dict[str, Any] = {"open": before}
    t0, c0 = time.perf_counter(), time.process_time()
    count = sum(1 for _ in replica.set.items())
    out["list_s"], out["list_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    assert count == n, f"state holds {count} pins, expected {n}"
    out["after_list"] = _mem_mb()
    t0 = time.perf_counter()
    if os.environ.get("BENCH_SKIP_DECODE") != "1":
        for _key, value in replica.set.items():
            Pin.from_cbor(value)
    out["decode_s"] = time.perf_counter() - t0
    out["after_decode"] = _mem_mb()
    rng = random.Random(1)
    keys = [key_of(rng.randrange(n)) for _ in range(LOOKUPS)]
    get = replica.set.get
    clock = time.perf_counter_ns
    lat: list[int] = []
    t0 = time.perf_counter()
    for key in keys:
        t = clock()
        if get(key) is None:
            raise AssertionError("a pin of the state was not found")
        lat.append(clock() - t)
    out["get_s"] = time.perf_counter() - t0
    lat.sort()
    out["get_p50_us"] = lat[len(lat) // 2] / 1000
    out["get_p99_us"] = lat[len(lat) * 99 // 100] / 1000
    misses = [key_of(n + 1 + i) for i in range(LOOKUPS)]
    t0 = time.perf_counter()
    for key in misses:
        replica.set.has(key)
    out["miss_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = sum(1 for _ in replica.set.find(name_term("pin-7")))
    out["find_s"] = time.perf_counter() - t0
    out["found"] = found
    out["after_all"] = _mem_mb()
    db.close()
    return out


def snapshot(path: Path, n: int) -> dict[str, Any]:
    """Write a snapshot of the state at ``path`` (``n`` pins); its root and the time it took."""
    from blockstore.cid import cid_to_str

    db, replica = _open(path)
    t0 = time.perf_counter()
    root = replica.create_snapshot()
    seconds = time.perf_counter() - t0
    db.close()
    return {"root": cid_to_str(root), "seconds": seconds}


def join(path: Path, n: int, root: str) -> dict[str, Any]:
    """A new peer (empty repo beside ``path``) loads the snapshot ``root`` of the state at ``path``."""
    import shutil

    from blockstore.cid import cid_from_str
    from blockstore.db import open_db
    from blockstore.store import BlockStore
    from cluster.crdt import Replica
    from cluster.pin import pin_index_terms

    src_db, _replica = _open(path)
    source = BlockStore(src_db)
    target = path.parent / f"join-{n}"
    shutil.rmtree(target, ignore_errors=True)
    db = open_db(target)
    replica = Replica(db, BlockStore(db), peer_id=PEERS[1], trusted_peers=["*"], index_terms=pin_index_terms)
    before = _mem_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = replica.load_snapshot(cid_from_str(root), source.get)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = _mem_mb()
    if loaded != n or len(replica.set) != n:
        raise AssertionError(f"the new peer holds {len(replica.set)} pins ({loaded} loaded), expected {n}")
    db.close()
    src_db.close()
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    shutil.rmtree(target, ignore_errors=True)
    return {"seconds": seconds, "cpu": cpu, "before": before, "after": after, "disk": size}


def _child(mode: str, path: Path, n: int, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_state_scale", "--child", mode, "--path", str(path), "--n", str(n), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{mode} of {n} pins failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100,000 and 1,000,000 pins")
    ap.add_argument("--sizes", default=None, help="comma list of state sizes (default 1000000,10000000)")
    ap.add_argument("--huge", action="store_true", help=f"also the {HUGE:,}-pin state (opt-in long run)")
    ap.add_argument("--no-snapshot", action="store_true", help="skip the new peer's snapshot loads")
    ap.add_argument("--skip-decode", action="store_true", help="skip the list + Pin decode pass (minutes at 10 M+)")
    ap.add_argument(
        "--snapshot-sizes", default=None, help=f"sizes whose snapshot load is measured (default: those <= {SNAPSHOT_MAX:,})"
    )
    ap.add_argument(
        "--build",
        choices=("deltas", "snapshot"),
        default="deltas",
        help="fill the state through deltas (Replica.apply_many, as state import and syncing peers do) "
        "or as a new peer does, by loading a snapshot (hours less for 10 M+; then that load is the row's load)",
    )
    ap.add_argument("--keep", default=None, help="directory to keep (and reuse) the built repos in")
    ap.add_argument("--dir", default=None, help="where the temporary repos go (default: the system temp dir)")
    ap.add_argument("--child", choices=("build", "build-snapshot", "measure", "snapshot", "join"), help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        path = Path(args.path)
        if args.child == "join":
            print(json.dumps(join(path, args.n, args.root)))
        else:
            fn = {"build": build, "build-snapshot": build_from_snapshot, "measure": measure, "snapshot": snapshot}[args.child]
            print(json.dumps(fn(path, args.n)))
        return
    if args.skip_decode:
        os.environ["BENCH_SKIP_DECODE"] = "1"
    sizes = [int(s) for s in (args.sizes or ("100000,1000000" if args.quick else "1000000,10000000")).split(",")]
    if args.huge and HUGE not in sizes:
        sizes.append(HUGE)
    if args.no_snapshot:
        snap_sizes: set[int] = set()
    elif args.snapshot_sizes:
        snap_sizes = {int(s) for s in args.snapshot_sizes.split(",")}
    else:
        snap_sizes = {n for n in sizes if n <= SNAPSHOT_MAX}
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pinion-state-scale-", dir=args.dir))
    rows: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []
    joins: list[tuple[int, float]] = []
    try:
        for n in sizes:
            path = base / f"state-{n}"
            if (path / "built").exists():
                built = json.loads((path / "built").read_text())
            else:
                built = _child("build" if args.build == "deltas" else "build-snapshot", path, n)
                (path / "built").write_text(json.dumps(built))
            m = _child("measure", path, n)
            row: dict[str, Any] = {
                "pins": n,
                "build pins/s": round(built["pins/s"]),
                "disk MB": built["disk MB"],
                "disk B/pin": round(built["disk MB"] * 2**20 / n),
                "list pins/s": round(n / m["list_s"]),
                "list pins/CPU s": round(n / m["list_cpu"]),
                "list+decode pins/s": round(n / m["decode_s"]) if not args.skip_decode else "skipped",
                "get µs p50": round(m["get_p50_us"], 1),
                "get µs p99": round(m["get_p99_us"], 1),
                "miss µs": round(m["miss_s"] / LOOKUPS * 1e6, 1),
                "find by name ms": round(m["find_s"] * 1000, 1),
                "RSS MB": m["after_all"]["VmRSS"],
                "anon MB": m["after_all"]["RssAnon"],
                "file MB": m["after_all"]["RssFile"],
                "peak MB": m["after_all"]["VmHWM"],
            }
            if "load" in built or n in snap_sizes:
                if "load" in built:  # the state was built by loading a snapshot: that load is the row
                    snap, joined = {"seconds": built["load"]["written"]}, built["load"]
                else:
                    snap = _child("snapshot", path, n)
                    joined = _child("join", path, n, "--root", snap["root"])
                joins.append((n, joined["seconds"], joined["cpu"]))
                loads.append(
                    {
                        "pins": n,
                        "built by": args.build,
                        "snapshot write s": round(snap["seconds"], 1),
                        "new peer load s": round(joined["seconds"], 1),
                        "load pins/s": round(n / joined["seconds"]),
                        "load CPU s": round(joined["cpu"], 1),
                        "load anon MB": joined["after"]["RssAnon"],
                        "load peak MB": joined["after"]["VmHWM"],
                        "new peer disk B/pin": round(joined["disk"] / n),
                    }
                )
            rows.append(row)
            print(json.dumps([row, *(x for x in loads if x["pins"] == n)]), file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    notes: dict[str, Any] = {
        "memory": "anon = heap and LevelDB caches; file = pages of LevelDB's mmapped table files (clean, reclaimable)",
        "get": f"{LOOKUPS} random lookups by CID of pins in the state, each timed; miss: CIDs not in it (mean)",
        "load": "a process with an empty repo loads the full peer's snapshot (blocks read from its store);"
        " built by snapshot: the load that built the state (its snapshot written by the same process first)",
        "CPU": "CPU seconds of the measuring process (LevelDB's compaction thread included): comparable on a shared machine",
        "load average": " ".join(open("/proc/loadavg").read().split()[:3]),
    }
    if joins:
        n, seconds, cpu = max(joins)
        notes["80 M extrapolation"] = (
            f"a new peer loads {HUGE:,} pins in ~{HUGE / (n / seconds) / 60:.1f} min at the {n:,}-pin wall-clock rate"
            f" ({n / seconds:,.0f} pins/s), ~{HUGE / (n / cpu) / 60:.1f} min at its CPU rate ({n / cpu:,.0f} pins/s of CPU time:"
            " what one free core gives; the wall clock counts the other jobs of a shared machine)"
        )
    report("state_scale", rows, {k: v for k, v in notes.items() if k in ("memory", "get", "load average")})
    if loads:
        report("state_scale_load", loads, {k: v for k, v in notes.items() if k not in ("memory", "get")})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
