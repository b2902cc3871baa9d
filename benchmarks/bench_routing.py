"""Amino DHT: provider records announced per second to a local 10-node DHT, memory, find latency.

Ten hosts run Pinion's DHT (``bitswap/routing``) in server mode in this one
process (trio, loopback, each with its own LevelDB), joined as a chain and
refreshed. Node 0 announces ``--keys`` CIDs with ``provide_many`` in rounds of
``--round`` keys; a round ends when every server has stored its records. It
reports keys announced per second, provider records stored per second (a key
goes to all 9 other servers, k = 20 > 9), the process's anonymous RSS and its
count of Python objects before and after each round (records live in LevelDB:
the objects stay flat; RSS also holds LevelDB's memtables, up to 32 MiB per
database until they are flushed), and find_providers latency from an 11th node
in client mode, joined through node 9 (it holds no records itself).

Then py-libp2p 0.8.1's own ``KadDHT`` on 10 hosts announces ``--pylibp2p-keys``
keys one ``provide()`` at a time, for the ratio (``--no-pylibp2p`` skips it).

Usage: ``python -m benchmarks.bench_routing [--keys N] [--round N] [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import logging
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from benchmarks.common import report
import blockstore.db
from blockstore.cid import cid_for
from tests.routing.dht_hosts import LOOPBACK, dht_nodes, make_host, p2p_addr, wait_for


def anon_rss_mib() -> float:
    """This process's anonymous resident memory (RssAnon), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def pinion_run(root: Path, keys: int, round_size: int, finds: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with dht_nodes(root, 11, clients=1) as nodes:
        dhts, client = nodes[:10], nodes[10]
        for i in range(1, 10):
            await dhts[i].bootstrap([p2p_addr(dhts[i - 1].host)])
        for d in dhts:
            await d.refresh(force=True)
        await client.bootstrap([p2p_addr(dhts[9].host)])
        tables = [len(d.table) for d in nodes]
        servers = dhts[1:]
        cids = [cid_for(b"bench routing %d" % i) for i in range(keys)]
        total_start = time.perf_counter()
        for r in range(0, keys, round_size):
            batch = cids[r : r + round_size]
            gc.collect()
            before, objects = anon_rss_mib(), len(gc.get_objects())
            expected = [d.store.count() + len(batch) for d in servers]
            t0 = time.perf_counter()
            result = await dhts[0].provide_many(batch)
            sent = time.perf_counter() - t0
            await wait_for(lambda: [d.store.count() for d in servers] == expected, timeout=600, interval=0.01)
            stored = time.perf_counter() - t0
            rows.append({
                "what": f"pinion provide_many, keys {r + 1}-{r + len(batch)}",
                "keys": result.keys,
                "records": result.records,
                "lookups": result.lookups,
                "written s": round(sent, 2),
                "all stored s": round(stored, 2),
                "keys/s": round(result.keys / stored, 1),
                "records stored/s": round(result.records / stored, 1),
                "anon RSS MiB before": round(before, 1),
                "after": round(anon_rss_mib(), 1),
                "python objects before": objects,
                "after ": len(gc.get_objects()) if gc.collect() >= 0 else 0,
            })  # fmt: skip
        total = time.perf_counter() - total_start
        lat = []
        for cid in cids[:: max(1, keys // finds)][:finds]:
            t0 = time.perf_counter()
            found = await client.find_providers(cid, 1)
            lat.append(time.perf_counter() - t0)
            assert found and found[0].peer_id == dhts[0].local_id, "a provided key was not found"
        lat.sort()
        rows.append({
            "what": f"pinion find_providers from a client node joined through node 9 ({len(lat)} keys)",
            "p50 ms": round(lat[len(lat) // 2] * 1000, 1),
            "p95 ms": round(lat[int(len(lat) * 0.95)] * 1000, 1),
            "max ms": round(lat[-1] * 1000, 1),
        })  # fmt: skip
        notes = {
            "routing tables": tables,
            "keys/s over all rounds": round(keys / total, 1),
            "records stored per server": [d.store.count() for d in servers],
        }
    return rows, notes


async def pylibp2p_run(keys: int) -> dict[str, Any]:
    """py-libp2p's KadDHT: 10 hosts in a ring (routing tables seeded by add_peer, bug 12),
    sequential provide() of ``keys`` keys from host 0."""
    from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.tools.anyio_service import background_trio_service
    from multiaddr import Multiaddr
    from multiformats import CID, multihash

    async with AsyncExitStack() as stack:
        hosts = []
        for _ in range(10):
            h = make_host()
            await stack.enter_async_context(h.run(listen_addrs=[LOOPBACK]))
            hosts.append(h)
        dhts = []
        for h in hosts:
            d = KadDHT(h, DHTMode.SERVER)
            await stack.enter_async_context(background_trio_service(d))
            dhts.append(d)
        for i in range(10):
            j = (i + 1) % 10
            await hosts[i].connect(info_from_p2p_addr(Multiaddr(p2p_addr(hosts[j]))))
        for i in range(10):
            for j in ((i + 1) % 10, (i - 1) % 10):
                await dhts[i].add_peer(hosts[j].get_id())
        t0 = time.perf_counter()
        for i in range(keys):
            digest = hashlib.sha256(b"pylibp2p %d" % i).digest()
            await dhts[0].provide(str(CID("base32", 1, "raw", multihash.wrap(digest, "sha2-256"))))
        dt = time.perf_counter() - t0
        held = [len(d.provider_store.providers) for d in dhts[1:]]
        return {"what": f"py-libp2p KadDHT provide(), {keys} keys one at a time", "keys": keys,
                "all stored s": round(dt, 2), "keys/s": round(keys / dt, 1),
                "records held per server": held}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=50_000, help="keys announced by node 0")
    ap.add_argument("--round", type=int, default=10_000, help="keys per provide_many call")
    ap.add_argument("--finds", type=int, default=50, help="find_providers calls timed")
    ap.add_argument("--pylibp2p-keys", type=int, default=100)
    ap.add_argument("--no-pylibp2p", action="store_true")
    ap.add_argument(
        "--write-buffer-mib", type=int, default=None,
        help="LevelDB memtable size of each node (default: the repo's, blockstore.db.WRITE_BUFFER_SIZE); "
        "a small one shows RSS levelling off within a short run",
    )  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="10,000 keys, 20 py-libp2p keys")
    args = ap.parse_args()
    if args.quick:
        args.keys, args.round, args.pylibp2p_keys = 10_000, 5_000, 20
    if args.write_buffer_mib:
        blockstore.db.WRITE_BUFFER_SIZE = args.write_buffer_mib * 1024 * 1024
    logging.disable(logging.WARNING)  # py-libp2p logs every refused stream at WARNING/ERROR
    with tempfile.TemporaryDirectory() as d:
        rows, notes = trio.run(pinion_run, Path(d), args.keys, args.round, args.finds)
    if not args.no_pylibp2p:
        rows.append(trio.run(pylibp2p_run, args.pylibp2p_keys))
    notes["LevelDB write buffer per node, MiB"] = blockstore.db.WRITE_BUFFER_SIZE // (1024 * 1024)
    report("bench_routing", rows, notes)


if __name__ == "__main__":
    main()
