"""Pinset ingest on five real daemons: pins accepted by one peer and visible in the state of all five.

Run: ``.venv/bin/python -m benchmarks.bench_cluster_ingest [--quick] [--pins N] [--clients C] [--batch B]``.

Five ``pinion daemon`` processes on loopback (one machine: they share its
cores) with pinset batching on (``Cluster.BatchMaxSize`` B, ``BatchMaxAge``
0.2 s). ``C`` client threads send ``POST /pins/{cid}?replication=1`` to peer
1 over keep-alive connections (IPFS Cluster's REST call, one pin per
request, as ``ipfs-cluster-ctl pin add`` does). Reported:

- accepted/s: pins acknowledged by peer 1 per second (each durably queued;
  concurrent requests are written in batches, node/cluster/coalesce.py);
- visible on all/s: pins divided by the time until every peer's
  ``pinion_pinset_pins`` reached N (sync over gossipsub + bitswap);
- pins are identity CIDs with replication 1, so the allocated peer's tracker
  "pins" without fetching (the pinset is measured, not bitswap);
- then the same through Pinion's bulk ``POST /pins`` (NDJSON bodies of 1,000
  pins, 2 clients), the route ``pinion ctl state import`` uses.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from blockstore.cid import IDENTITY, RAW, cid_to_str, make_cid, make_multihash

from .bench_cluster_pins import Daemon, request, wait_peers
from .common import report


def _metric(d: Daemon, name: str) -> float:
    _status, data = request(d, "metrics", "GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _send_bulk(d: Daemon, cids: list[str], errors: list[str], chunk: int = 1000) -> None:
    """Pinion's bulk POST /pins: NDJSON bodies of ``chunk`` pins."""
    host, port = d.hostport("cluster_api")
    conn = http.client.HTTPConnection(host, port, timeout=300)
    try:
        for start in range(0, len(cids), chunk):
            body = "".join(
                json.dumps({"cid": c, "replication_factor_min": 1, "replication_factor_max": 1}) + "\n"
                for c in cids[start : start + chunk]
            ).encode()
            conn.request("POST", "/pins", body=body, headers={"Content-Type": "application/x-ndjson"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                errors.append(f"{resp.status} {data[:200]!r}")
    finally:
        conn.close()


def _send(d: Daemon, cids: list[str], errors: list[str]) -> None:
    host, port = d.hostport("cluster_api")
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        for cid in cids:
            conn.request("POST", f"/pins/{cid}?replication=1")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                errors.append(f"{resp.status} {body[:200]!r}")
    finally:
        conn.close()


def ingest(work: Path, n: int, clients: int, batch: int, bulk: bool, visible_timeout: float = 1800.0) -> dict[str, Any]:
    secret = secrets.token_hex(32)
    daemons = [Daemon(work / f"p{i}", secret, f"p{i}", "abc"[i % 3]) for i in range(5)]
    for d in daemons:
        cfg_path = d.path / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["Cluster"].update({"BatchMaxSize": batch, "BatchMaxAge": 0.2, "RebroadcastInterval": 1})
        cfg_path.write_text(json.dumps(cfg))
    try:
        daemons[0].start()
        for d in daemons[1:]:
            d.start("--bootstrap", daemons[0].cluster_addr())
        wait_peers(daemons[0], 5)
        cids = [cid_to_str(make_cid(1, RAW, make_multihash(IDENTITY, b"ingest-%d" % i))) for i in range(n)]
        errors: list[str] = []
        parts = [cids[i::clients] for i in range(clients)]
        sender = _send_bulk if bulk else _send
        threads = [threading.Thread(target=sender, args=(daemons[0], part, errors)) for part in parts]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"{len(errors)} pins refused, first: {errors[0]}")
        print(f"{'bulk' if bulk else 'single'}: {n} pins accepted in {accepted:.1f} s ({n / accepted:.0f}/s)", flush=True)
        deadline = time.monotonic() + visible_timeout
        counts: list[float] = []
        while time.monotonic() < deadline:
            counts = [_metric(d, "pinion_pinset_pins") for d in daemons]
            if all(c >= n for c in counts):
                break
            time.sleep(0.2)
        visible = time.perf_counter() - t0
        seen_on_all = all(c >= n for c in counts)  # when not, reported rather than waited for longer
        return {
            "route": "bulk POST /pins (NDJSON, 1,000 per request)" if bulk else "POST /pins/{cid}",
            "pins": n,
            "clients": clients,
            "batch": batch,
            "accepted s": round(accepted, 2),
            "accepted/s": round(n / accepted),
            "visible on all 5 s": round(visible, 2) if seen_on_all else f"not after {visible:.0f} s (pins per peer {[int(c) for c in counts]})",
            "visible on all/s": round(n / visible) if seen_on_all else None,
        }
    finally:
        for d in daemons:
            d.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="5,000 pins instead of 50,000")
    ap.add_argument("--pins", type=int)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--visible-timeout", type=float, default=1800.0, help="seconds to wait for every peer to hold the pins")
    args = ap.parse_args()
    n = args.pins or (5_000 if args.quick else 50_000)
    rows = []
    for bulk in (False, True):
        work = Path(tempfile.mkdtemp(prefix="pinion-bench-ingest-"))
        try:
            rows.append(ingest(work, n, args.clients if not bulk else 2, 1000 if bulk else args.batch, bulk, args.visible_timeout))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report(
        "cluster_ingest",
        rows,
        {
            "setup": "5 daemons on one 2-core machine; POST /pins/{cid}?replication=1 to peer 1 over keep-alive connections",
            "target": ">= 5,000 pins/s single, >= 20,000 pins/s bulk, accepted and visible on all 5 (issue 17)",
        },
    )


if __name__ == "__main__":
    main()
