"""Pin add to pinned through content routing vs with the holder given as origin (issue 16).

A local 10-node DHT of real ``pinion daemon`` processes on loopback: ``--servers`` (7) DHT
servers joined as a star around the first, the holder and two pinners as DHT clients (a
client is in no routing table, so no DHT lookup ever connects a pinner to the holder). The
holder adds a ``--mib`` MiB file (64) and announces it (provide queue, strategy ``all``).

- **routing**: pinner R runs ``pin add CID`` knowing nothing of the holder: its fetch waits
  ``search_delay`` (1 s, kubo's provSearchDelay) for connected peers, asks the DHT for
  providers, dials the holder and fetches over bitswap;
- **origin**: pinner O is first connected to the holder (``swarm connect``, what the cluster pin
  tracker does with a pin's origins), then runs ``pin add CID``.

Each pinner pins ``--rounds`` distinct files (one per round, so every pin fetches everything);
the table shows the times and what routing adds (routing - origin, median). Target: < 1 s.

Usage: ``python -m benchmarks.bench_routing_pin [--mib 64] [--servers 7] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "node"))
from node_proc import PinionNode  # noqa: E402


def _node(root: Path, name: str, mode: str, bootstrap: list[str]) -> PinionNode:
    node = PinionNode(root / name)
    node.cli("init", "--profile", "test")
    node.cli("config", "set", "Routing.Type", mode)
    node.cli("config", "set", "--json", "Routing.Bootstrap", json.dumps(bootstrap))
    node.cli("config", "set", "Gateway.FetchTimeout", "120")
    node.start()
    return node


def _addr(node: PinionNode) -> str:
    return next(a for a in node.endpoints["swarm"] if "/ip4/127.0.0.1/" in a)


def _metric(node: PinionNode, name: str) -> float:
    with urllib.request.urlopen(f"{node.url('metrics')}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return -1.0


def _wait(cond: Any, what: str, deadline: float = 180.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _provided(node: PinionNode) -> int:
    return int(json.loads(node.cli("stats", "provide", "--enc", "json").stdout)["provided_total"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--servers", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="4 MiB, 1 round")
    args = ap.parse_args(argv)
    if args.quick:
        args.mib, args.rounds = 4, 1
    nodes: list[PinionNode] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-routing-pin-") as tmp:
        root = Path(tmp)
        try:
            first = _node(root, "s0", "dhtserver", [])
            nodes.append(first)
            for i in range(1, args.servers):
                nodes.append(_node(root, f"s{i}", "dhtserver", [_addr(first)]))
            holder = _node(root, "holder", "dhtclient", [_addr(nodes[-1])])
            routed = _node(root, "routed", "dhtclient", [_addr(nodes[1 % len(nodes)])])
            origin = _node(root, "origin", "dhtclient", [_addr(nodes[2 % len(nodes)])])
            nodes += [holder, routed, origin]
            for n in (holder, routed, origin):
                _wait(lambda n=n: _metric(n, "pinion_routing_table_size") >= min(args.servers, 3), f"{n.path.name}'s table")
            for rnd in range(args.rounds):
                src = root / f"file{rnd}.bin"
                src.write_bytes(os.urandom(args.mib << 20))
                before = _provided(holder)
                cid = holder.cli("add", "-Q", "--raw-leaves=true", str(src), timeout=600).stdout.decode().strip()
                # every block of the file announced (strategy all): a 64 MiB file is ~257 blocks
                blocks = (args.mib << 20) // (256 << 10) + 1
                _wait(lambda: _provided(holder) - before >= blocks, "the holder's announcements", 600)
                assert holder.endpoints["peer_id"] not in routed.cli("swarm", "peers").stdout.decode()
                t0 = time.perf_counter()
                routed.cli("pin", "add", cid, timeout=900)
                t_routing = time.perf_counter() - t0
                origin.cli("swarm", "connect", _addr(holder))
                t0 = time.perf_counter()
                origin.cli("pin", "add", cid, timeout=900)
                t_origin = time.perf_counter() - t0
                rows.append(
                    {
                        "round": rnd + 1,
                        "MiB": args.mib,
                        "routing s": round(t_routing, 2),
                        "origin s": round(t_origin, 2),
                        "routing adds s": round(t_routing - t_origin, 2),
                    }
                )
                for n in (routed, origin):  # the next round starts unconnected again
                    n.cli("pin", "rm", cid)
                    n.cli("repo", "gc")
                routed.stop()
                origin.stop()
                routed.start()
                origin.start()
                for n in (routed, origin):
                    _wait(lambda n=n: _metric(n, "pinion_routing_table_size") >= 1, f"{n.path.name}'s table")
        finally:
            for n in nodes:
                n.kill()
    adds = [r["routing adds s"] for r in rows]
    report(
        "routing_pin",
        rows,
        {
            "DHT": f"{args.servers} servers + holder + 2 pinners (clients), loopback, one machine",
            "routing adds (median)": f"{statistics.median(adds):.2f} s (target < 1 s; includes the 1 s search delay)",
            "load average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
