"""Merkle-CRDT pinset: ingest, sync to a second replica, listing, lookups, memory.

Run: ``.venv/bin/python -m benchmarks.bench_crdt [--quick] [--pins N]``.
One process, two replicas each with its own LevelDB repo in a temp dir:

- ingest: pins (real Pin objects, DAG-CBOR) queued on replica A with
  batching on (``max_batch_size`` 1000), committed as deltas;
- sync: replica B receives A's head and fetches every delta from A's block
  store (the network shell will put bitswap behind that getter);
- list: stream every pin of B from LevelDB; decode: the same plus Pin.from_cbor;
- get: random lookups by CID; find: lookups through the name index;
- snapshot: A writes a snapshot; a new replica C loads it (fetching its
  blocks from A's store) and then A's heads: the join of a new peer;
- RSS of the process after all of it (the state lives on disk).
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from blockstore.cid import cid_for
from blockstore.db import open_db
from blockstore.store import BlockStore
from cluster.crdt import PUT, Replica
from cluster.pin import Pin, name_term, pin_index_terms

from .common import report

PEERS = ("12D3KooWQ8v5UZr9FfM4tQ5yZKkQqN5hZ6g6oQ3Hj7b7mKQ8n1Aa", "12D3KooWR2m3eUxVfX8oBzNgCk7mZ1hJb6qS4E5tYp9LwX2dC4Ee")


def _mem_mb() -> dict[str, float]:
    """VmRSS, RssAnon (heap) and RssFile (LevelDB's mmapped tables) of this process, in MB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name = line.split(":")[0]
            if name in ("VmRSS", "RssAnon", "RssFile"):
                out[name] = round(int(line.split()[1]) / 1024, 1)
    return out


def _rss_mb() -> float:
    return _mem_mb().get("VmRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _row(rows: list[dict], row: dict) -> None:
    mem = _mem_mb()
    row["RSS MB"] = mem.get("VmRSS")
    row["anon MB"] = mem.get("RssAnon")
    row["file MB"] = mem.get("RssFile")
    rows.append(row)


def _pins(n: int, chunk: int):
    ts = time.time_ns()
    for start in range(0, n, chunk):
        ops = []
        for i in range(start, min(n, start + chunk)):
            cid = cid_for(b"bench-pin-%d" % i)
            pin = Pin(cid, name=f"pin-{i % 1000}", replication_factor_min=2, replication_factor_max=3,
                      allocations=PEERS, metadata={"app": "bench", "shard": str(i % 16)}, timestamp=ts)
            ops.append((PUT, cid, pin.to_cbor()))
        yield ops


def main() -> None:
    """Run the benchmark and report a table and JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100,000 pins instead of 1,000,000")
    ap.add_argument("--pins", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1000, help="max_batch_size (pins per delta)")
    args = ap.parse_args()
    n = args.pins or (100_000 if args.quick else 1_000_000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-crdt-") as tmp:
        dba, dbb = open_db(Path(tmp) / "a"), open_db(Path(tmp) / "b")
        sa, sb = BlockStore(dba), BlockStore(dbb)
        a = Replica(dba, sa, peer_id="a", max_batch_size=args.batch, max_batch_age=1.0,
                    max_queue_size=n + 1, index_terms=pin_index_terms)
        b = Replica(dbb, sb, peer_id="b", trusted_peers=["a"], index_terms=pin_index_terms)
        rss0 = _rss_mb()

        t0 = time.perf_counter()
        for ops in _pins(n, 100):
            a.apply_many(ops, now=0.0)
        a.commit()
        t_ingest = time.perf_counter() - t0
        _row(rows, {"step": "ingest on A (queue + commit deltas)", "pins": n, "seconds": round(t_ingest, 2),
                     "pins/s": round(n / t_ingest)})

        t0 = time.perf_counter()
        for head, _h in a.heads():
            b.receive(head, "a", sa.get)
        t_sync = time.perf_counter() - t0
        assert len(b.set) == n, (len(b.set), n)
        _row(rows, {"step": "sync A -> B (fetch + apply deltas)", "pins": n, "seconds": round(t_sync, 2),
                     "pins/s": round(n / t_sync)})
        _row(rows, {"step": "end to end (ingest on A, visible on B)", "pins": n,
                     "seconds": round(t_ingest + t_sync, 2), "pins/s": round(n / (t_ingest + t_sync))})

        t0 = time.perf_counter()
        count = sum(1 for _ in b.set.items())
        t_list = time.perf_counter() - t0
        assert count == n
        _row(rows, {"step": "list (stream key, value)", "pins": n, "seconds": round(t_list, 2),
                     "pins/s": round(n / t_list)})

        t0 = time.perf_counter()
        for _k, v in b.set.items():
            Pin.from_cbor(v)
        t_dec = time.perf_counter() - t0
        _row(rows, {"step": "list + decode Pin", "pins": n, "seconds": round(t_dec, 2),
                     "pins/s": round(n / t_dec)})

        rng = random.Random(1)
        probes = [cid_for(b"bench-pin-%d" % rng.randrange(n)) for _ in range(20_000)]
        t0 = time.perf_counter()
        for cid in probes:
            assert b.set.get(cid) is not None
        t_get = time.perf_counter() - t0
        _row(rows, {"step": "get by CID (random)", "pins": len(probes), "seconds": round(t_get, 2),
                     "pins/s": round(len(probes) / t_get)})

        t0 = time.perf_counter()
        found = sum(1 for _ in b.set.find(name_term("pin-7")))
        t_find = time.perf_counter() - t0
        _row(rows, {"step": "find by name (index)", "pins": found, "seconds": round(t_find, 4),
                     "pins/s": round(found / t_find) if t_find else 0})

        t0 = time.perf_counter()
        root = a.create_snapshot()
        t_snap = time.perf_counter() - t0
        _row(rows, {"step": "snapshot of the state on A", "pins": n, "seconds": round(t_snap, 2),
                     "pins/s": round(n / t_snap)})
        dbc = open_db(Path(tmp) / "c")
        c = Replica(dbc, BlockStore(dbc), peer_id="c", trusted_peers=["a"], index_terms=pin_index_terms)
        t0 = time.perf_counter()
        c.load_snapshot(root, sa.get)
        for head, _h in a.heads():
            c.receive(head, "a", sa.get)
        t_join = time.perf_counter() - t0
        assert len(c.set) == n
        _row(rows, {"step": "new peer C joins from the snapshot", "pins": n, "seconds": round(t_join, 2),
                     "pins/s": round(n / t_join)})

        rss = _rss_mb()
        stats = b.stats()
        dba.close()
        dbb.close()
        dbc.close()
    report(
        "crdt",
        rows,
        {
            "pins": n,
            "pins per delta": args.batch,
            "deltas": stats["deltas"],
            "DAG height": stats["height"],
            "RSS MB before": round(rss0, 1),
            "RSS MB after (3 replicas, state on disk)": round(rss, 1),
        },
    )


if __name__ == "__main__":
    main()
