"""HTTP retrieval vs bitswap between the same two Pinion processes on loopback.

A server process imports a 256 MiB random file with kubo's defaults (256 KiB dag-pb leaves,
174 links, CIDv0) into a LevelDB block store and serves that one store two ways at once, as a
Pinion node does: the trustless gateway (aiohttp, asyncio, in a thread) and bitswap (py-libp2p
TCP + Noise + Yamux, trio, in the main thread). This process (the client) fetches the whole DAG,
each time into a fresh LevelDB store, every block verified against its CID before it is stored:

1. over bitswap with :func:`bitswap.fetch_dag` (64 workers; as ``bench_bitswap``);
2. over HTTP as one CAR (``?format=car&dag-scope=all``) with :class:`HttpFetcher` ``fetch_dag``;
3. over HTTP block by block (``?format=raw``, 32 requests in flight on a keep-alive pool).

Each figure is the best of ``--runs`` fetches; MB/s are block bytes per wall second. The ratio
column compares with the bitswap fetch of the same run.

Run: ``.venv/bin/python -m benchmarks.bench_http_retrieval [--quick] [--runs N]``
(``--quick``: 64 MiB, one run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import multiaddr
import trio
from aiohttp import web

from benchmarks.bench_bitswap import LOOPBACK, make_host
from benchmarks.common import report
from bitswap import Bitswap, fetch_dag
from bitswap.routing.http_retrieval import HttpFetcher, UrlPolicy
from blockstore.cid import cid_from_str, cid_to_str
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_bytes
from blockstore.store import BlockStore


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------- server
def start_gateway(store: BlockStore) -> str:
    """Serve the trustless gateway over ``store`` from a thread with its own asyncio loop; return its URL."""
    from node.gateway import StoreBlockSource, make_gateway_app

    loop = asyncio.new_event_loop()
    ready: list[str] = []

    async def start() -> None:
        runner = web.AppRunner(make_gateway_app(StoreBlockSource(store)), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ready.append(f"http://127.0.0.1:{runner.addresses[0][1]}")

    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    return ready[0]


async def serve(repo: Path, size: int) -> None:
    """Import the file, serve it over the gateway and bitswap, print {addr, gateway, root}; answer each line
on stdin with {cpu: seconds used so far}; exit when stdin closes."""
    store = BlockStore(open_db(str(repo)))
    root = import_bytes(os.urandom(size), store, ImportParams()).cid
    gateway = start_gateway(store)
    host = make_host()
    async with host.run(listen_addrs=[LOOPBACK]):
        bs = Bitswap(host, store)
        async with trio.open_nursery() as nursery:
            await nursery.start(bs.run)
            addr = f"{host.get_addrs()[0]}"
            if "/p2p/" not in addr:
                addr += f"/p2p/{host.get_id().to_string()}"
            print(json.dumps({"addr": addr, "gateway": gateway, "root": cid_to_str(root)}), flush=True)
            while await trio.to_thread.run_sync(sys.stdin.readline):  # each line asks for the CPU used so far
                print(json.dumps({"cpu": _cpu()}), flush=True)
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- client
async def bitswap_once(addr: str, root: bytes, store: BlockStore) -> dict[str, float]:
    """Fetch the DAG over bitswap into ``store``."""
    from libp2p.peer.peerinfo import info_from_p2p_addr

    host = make_host()
    out: dict[str, float] = {}
    async with host.run(listen_addrs=[LOOPBACK]):
        bs = Bitswap(host, store)
        async with trio.open_nursery() as nursery:
            await nursery.start(bs.run)
            with trio.fail_after(10):
                await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))
            c0, t0 = _cpu(), time.perf_counter()
            result = await fetch_dag(bs, root, concurrency=64, block_timeout=60)
            out = {"s": time.perf_counter() - t0, "cpu": _cpu() - c0, "bytes": result.fetched_bytes, "blocks": result.fetched}
            nursery.cancel_scope.cancel()
    return out


async def http_once(gateway: str, root: bytes, store: BlockStore, use_car: bool) -> dict[str, float]:
    """Fetch the DAG over HTTP (one CAR, or block by block) into ``store``."""
    fetcher = HttpFetcher(store, policy=UrlPolicy(allow_http=True, allow_private=True), max_in_flight=32)
    fetcher.add_provider(gateway)
    try:
        c0, t0 = _cpu(), time.perf_counter()
        result = await fetcher.fetch_dag(root, use_car=use_car)
        took = time.perf_counter() - t0
    finally:
        await fetcher.close()
    if use_car and result.car_blocks != result.fetched:
        raise RuntimeError(f"the CAR delivered {result.car_blocks} of {result.fetched} blocks")
    return {"s": took, "cpu": _cpu() - c0, "bytes": result.fetched_bytes, "blocks": result.fetched}


def main() -> None:
    """Start the server process, run the fetches, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, one run")
    parser.add_argument("--runs", type=int, default=None, help="fetches per figure (best is reported; default 3)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, Path(args.serve), args.size)
        return
    size = (64 if args.quick else 256) * 1024 * 1024
    runs_n = args.runs or (1 if args.quick else 3)
    load_start = os.getloadavg()[0]
    results: dict[str, list[dict[str, float]]] = {"bitswap": [], "car": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        work = Path(tmp)
        server = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_http_retrieval", "--serve", str(work / "server"), "--size", str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )
        try:
            assert server.stdout is not None and server.stdin is not None
            hello = json.loads(server.stdout.readline())
            root = cid_from_str(hello["root"])

            def server_cpu() -> float:
                server.stdin.write("cpu\n")
                server.stdin.flush()
                return float(json.loads(server.stdout.readline())["cpu"])

            for i in range(runs_n):
                for kind in ("bitswap", "car", "raw"):
                    db = open_db(work / f"client-{kind}-{i}")
                    store = BlockStore(db)
                    cpu0 = server_cpu()
                    try:
                        if kind == "bitswap":
                            r = trio.run(bitswap_once, hello["addr"], root, store)
                        else:
                            r = asyncio.run(http_once(hello["gateway"], root, store, kind == "car"))
                    finally:
                        db.close()
                    r["server_cpu"] = server_cpu() - cpu0
                    results[kind].append(r)
            import_cpu = server_cpu() - sum(r["server_cpu"] for v in results.values() for r in v)
            server.stdin.close()
        finally:
            if server.poll() is None:
                server.kill()
            server.wait()
    best = {k: min(v, key=lambda r: r["s"]) for k, v in results.items()}
    bitswap_rate = best["bitswap"]["bytes"] / best["bitswap"]["s"] / 1e6
    labels = {
        "bitswap": "bitswap (fetch_dag, 64 workers)",
        "car": "HTTP, one CAR (dag-scope=all)",
        "raw": "HTTP, raw blocks (32 in flight)",
    }
    rows = []
    for kind in ("bitswap", "car", "raw"):
        b = best[kind]
        rate = b["bytes"] / b["s"] / 1e6
        rows.append(
            {
                "case": f"{labels[kind]}: {size >> 20} MiB DAG",
                "blocks": int(b["blocks"]),
                "seconds": b["s"],
                "MB/s": round(rate, 1),
                "x bitswap": "1.0" if kind == "bitswap" else f"{rate / bitswap_rate:.2f}",
                "target": "" if kind == "bitswap" else ">= 200 MB/s, >= 2x",
                "client cpu s": round(b["cpu"], 2),
                "MB per client cpu s": round(b["bytes"] / b["cpu"] / 1e6, 1),
                "server cpu s": round(b["server_cpu"], 2),
                "MB per cpu s (both)": round(b["bytes"] / (b["cpu"] + b["server_cpu"]) / 1e6, 1),
                "all runs MB/s": ", ".join(f"{r['bytes'] / r['s'] / 1e6:.1f}" for r in results[kind]),
            }
        )
    notes = {
        "setup": "one server process (gateway thread + bitswap host over one LevelDB store), one client "
        "process, 127.0.0.1; each fetch into a fresh LevelDB store; blocks verified before stored",
        "server cpu s outside the fetches (import, start)": round(import_cpu, 2),
        "CPU columns": "block bytes per CPU second (client; client and server together): what each path costs, "
        "whatever else the machine runs; the client has the larger share, so its column bounds the rate on idle cores",
        "load average (1 min) at start / end": f"{load_start:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
    }
    report("http_retrieval", rows, notes)


if __name__ == "__main__":
    main()
