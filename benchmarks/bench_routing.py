"""Amino DHT: provider records announced per second to a local 10-node DHT, memory, find latency.

A local 10-node DHT of Pinion's DHT (``bitswap/routing``) on loopback, over
several processes so both cores work: ``--server-processes`` child processes
(default 2) run 9 servers (trio, each with its own LevelDB, joined as one
chain); this process runs the announcer (node 10, a server too) and a client. The announcer announces ``--keys`` CIDs with
``provide_many`` in rounds of ``--round`` keys; a round ends when every server
has stored its records. It reports keys announced per second (wall clock: on a shared machine it moves with
the load average, reported per round), the CPU time per record of the
announcer and of the servers (what the hardware allows), provider records
stored per second (a key goes to all 9 servers, k = 20 > 9), the announcer's
CPU time per record, anonymous RSS and Python objects of both processes
before and after each round (records live in LevelDB, so the objects stay
flat; RSS also holds LevelDB's memtables, 32 MiB per database until flushed:
``--write-buffer-mib 4`` shows it levelling off in a short run), and
find_providers latency from the client (joined through one server; it holds
no records).

Then py-libp2p 0.8.1's own ``KadDHT`` on 10 hosts announces ``--pylibp2p-keys``
keys one ``provide()`` at a time, for the ratio (``--no-pylibp2p`` skips it).

Usage: ``python -m benchmarks.bench_routing [--keys N] [--round N] [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from benchmarks.common import report
import blockstore.db
from blockstore.cid import cid_for
from tests.bitswap.routing.dht_hosts import LOOPBACK, dht_nodes, make_host, p2p_addr


def anon_rss_mib() -> float:
    """This process's anonymous resident memory (RssAnon), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def objects_after_gc() -> int:
    """Python objects tracked by the garbage collector, after a collection."""
    gc.collect()
    return len(gc.get_objects())


async def serve(root: Path, count: int, join: str | None) -> None:
    """A servers' process: ``count`` DHT servers joined as a chain (to ``join`` first, when given);
    prints their addresses, then answers ``count`` lines on stdin with their record counts, RssAnon
    and Python objects."""
    async with dht_nodes(root, count) as dhts:
        if join:
            await dhts[0].bootstrap([join])
        for i in range(1, count):
            await dhts[i].bootstrap([p2p_addr(dhts[i - 1].host)])
        print(json.dumps({"addrs": [p2p_addr(d.host) for d in dhts]}), flush=True)
        while True:
            line = (await trio.to_thread.run_sync(sys.stdin.readline)).strip()
            if line not in ("count", "stat"):
                return
            ru = resource.getrusage(resource.RUSAGE_SELF)
            out = {"counts": [d.store.count() for d in dhts], "cpu": ru.ru_utime + ru.ru_stime}
            if line == "stat":  # the costly part (a full garbage collection) only when asked
                out.update(rss=anon_rss_mib(), objects=objects_after_gc())
            print(json.dumps(out), flush=True)


class Servers:
    """A child process running servers (stdin/stdout JSON lines)."""

    def __init__(self, root: Path, count: int, join: str | None = None) -> None:
        cmd = [sys.executable, "-m", "benchmarks.bench_routing", "--serve", str(count), "--root", str(root),
               "--write-buffer-mib", str(blockstore.db.DEFAULT_MEMORY.write_buffer_size // (1024 * 1024))]  # fmt: skip
        if join:
            cmd += ["--join", join]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addrs: list[str] = json.loads(self._line())["addrs"]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the servers' process exited")
        return line

    def status(self, full: bool = False) -> dict[str, Any]:
        """Record counts and CPU time of its servers; with ``full``, also anonymous RSS and Python objects."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("stat\n" if full else "count\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def stop(self) -> None:
        """Close its stdin (it exits) and wait."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ServerGroup:
    """9 servers spread over ``processes`` child processes, joined into one DHT."""

    def __init__(self, root: Path, processes: int, total: int = 9) -> None:
        self.children: list[Servers] = []
        try:
            for i in range(processes):
                count = total // processes + (1 if i < total % processes else 0)
                join = self.children[-1].addrs[-1] if self.children else None
                self.children.append(Servers(root / f"p{i}", count, join))
        except BaseException:
            self.stop()
            raise
        self.addrs = [a for c in self.children for a in c.addrs]

    def status(self, full: bool = False) -> dict[str, Any]:
        """Counts of every server; CPU (and with ``full`` RSS and objects) summed over the processes."""
        parts = [c.status(full) for c in self.children]
        out = {"counts": [n for p in parts for n in p["counts"]], "cpu": sum(p["cpu"] for p in parts)}
        if full:
            out.update(rss=sum(p["rss"] for p in parts), objects=sum(p["objects"] for p in parts))
        return out

    def stop(self) -> None:
        """Stop every child."""
        for c in self.children:
            c.stop()


async def pinion_run(
    root: Path, keys: int, round_size: int, finds: int, processes: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    servers = await trio.to_thread.run_sync(ServerGroup, root / "servers", processes)
    try:
        async with dht_nodes(root / "announcer", 2, clients=1) as (announcer, client):
            await announcer.bootstrap(servers.addrs)
            await client.bootstrap([servers.addrs[-1]])
            cids = [cid_for(b"bench routing %d" % i) for i in range(keys)]
            total_start = time.perf_counter()
            for r in range(0, keys, round_size):
                batch = cids[r : r + round_size]
                first = await trio.to_thread.run_sync(servers.status, True)
                before, objects = anon_rss_mib(), objects_after_gc()
                expected = [n + len(batch) for n in first["counts"]]
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.perf_counter()
                result = await announcer.provide_many(batch)
                sent = time.perf_counter() - t0
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
                deadline = time.perf_counter() + 600
                while True:
                    last = await trio.to_thread.run_sync(servers.status)
                    if last["counts"] == expected:
                        break
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"records missing after 600 s: {last['counts']} of {expected}; {result}")
                    await trio.sleep(0.02)
                stored = time.perf_counter() - t0
                cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
                print(f"keys {r + len(batch)}: {result}, all stored after {stored:.1f} s", file=sys.stderr, flush=True)
                rows.append({
                    "what": f"provide_many, keys {r + 1}-{r + len(batch)}",
                    "keys": result.keys,
                    "records": result.records,
                    "written s": round(sent, 2),
                    "all stored s": round(stored, 2),
                    "keys/s": round(result.keys / stored, 1),
                    "records stored/s": round(result.records / stored, 1),
                    "announcer CPU us/record": round(cpu / result.records * 1e6, 1),
                    "servers CPU us/record": round((last["cpu"] - first["cpu"]) / result.records * 1e6, 1),
                    "load avg": round(os.getloadavg()[0], 1),
                    "announcer anon RSS MiB at start": round(before, 1),
                    "announcer objects at start": objects,
                    "servers anon RSS MiB at start": round(first["rss"], 1),
                    "servers objects at start": first["objects"],
                })  # fmt: skip
            total = time.perf_counter() - total_start
            await trio.sleep(1)  # the servers finish with the last streams
            end = await trio.to_thread.run_sync(servers.status, True)
            lat = []
            for cid in cids[:: max(1, keys // finds)][:finds]:
                t0 = time.perf_counter()
                found = await client.find_providers(cid, 1)
                lat.append(time.perf_counter() - t0)
                assert found and found[0].peer_id == announcer.local_id, "a provided key was not found"
            lat.sort()
            rows.append({
                "what": f"find_providers from a client node joined through one server ({len(lat)} keys)",
                "p50 ms": round(lat[len(lat) // 2] * 1000, 1),
                "p95 ms": round(lat[int(len(lat) * 0.95)] * 1000, 1),
                "max ms": round(lat[-1] * 1000, 1),
            })  # fmt: skip
            notes = {
                "routing tables (announcer, client)": [len(announcer.table), len(client.table)],
                "keys/s over all rounds": round(keys / total, 1),
                "records stored per server": end["counts"],
                "at the end: announcer anon RSS MiB, objects": [round(anon_rss_mib(), 1), objects_after_gc()],
                "at the end: servers anon RSS MiB, objects": [round(end["rss"], 1), end["objects"]],
            }
    finally:
        await trio.to_thread.run_sync(servers.stop)
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
        done = 0
        with trio.move_on_after(300):  # py-libp2p's own query timeouts can make it crawl under load
            for i in range(keys):
                digest = hashlib.sha256(b"pylibp2p %d" % i).digest()
                await dhts[0].provide(str(CID("base32", 1, "raw", multihash.wrap(digest, "sha2-256"))))
                done += 1
        dt = time.perf_counter() - t0
        held = [len(d.provider_store.providers) for d in dhts[1:]]
        return {"what": f"py-libp2p KadDHT provide(), {done} of {keys} keys one at a time (300 s cap)", "keys": done,
                "all stored s": round(dt, 2), "keys/s": round(done / dt, 1),
                "records held per server": held, "load avg": round(os.getloadavg()[0], 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=50_000, help="keys announced by node 0")
    ap.add_argument("--round", type=int, default=10_000, help="keys per provide_many call")
    ap.add_argument("--finds", type=int, default=50, help="find_providers calls timed")
    ap.add_argument("--pylibp2p-keys", type=int, default=100)
    ap.add_argument("--no-pylibp2p", action="store_true")
    ap.add_argument(
        "--write-buffer-mib", type=int, default=None,
        help="LevelDB memtable size of each node (default: the repo's, blockstore.db.DEFAULT_MEMORY); "
        "a small one shows RSS levelling off within a short run",
    )  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="10,000 keys, 20 py-libp2p keys")
    ap.add_argument("--server-processes", type=int, default=2, help="processes the 9 servers are spread over")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # a servers' child process
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--join", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_buffer_mib:
        blockstore.db.DEFAULT_MEMORY = dataclasses.replace(
            blockstore.db.DEFAULT_MEMORY, write_buffer_size=args.write_buffer_mib * 1024 * 1024
        )
    if args.serve:
        logging.disable(logging.CRITICAL)
        trio.run(serve, Path(args.root), args.serve, args.join)
        return
    if args.quick:
        args.keys, args.round, args.pylibp2p_keys = 10_000, 5_000, 20
    logging.disable(logging.CRITICAL)  # py-libp2p logs every refused stream at WARNING/ERROR
    with tempfile.TemporaryDirectory() as d:
        rows, notes = trio.run(pinion_run, Path(d), args.keys, args.round, args.finds, args.server_processes)
        notes["server processes"] = args.server_processes
        if args.write_buffer_mib:
            notes["LevelDB write buffer per node, MiB"] = args.write_buffer_mib
    if not args.no_pylibp2p:
        rows.append(trio.run(pylibp2p_run, args.pylibp2p_keys))
    report("bench_routing", rows, notes)


if __name__ == "__main__":
    main()
