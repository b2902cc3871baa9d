"""The HTTP gateway over loopback: a large UnixFS file streamed, and small files and blocks under load.

A 1 GiB file (``--quick``: 128 MiB) is imported with the kubo profile (``unixfs-v0-2015``: 256 KiB
chunks, dag-pb leaves, CIDv0) into a temp block store, plus 20,000 raw 1 KiB blocks and 2,000 1 KiB
files (same profile: each one dag-pb node holding its bytes, as ``ipfs add`` of a small file makes).
The gateway then runs in a subprocess wired as the daemon serves it (its metrics, the counting block
source, ``node.httpserver.ServerRunner`` behind a ``node.http_limits.GuardedSite``), and
- the whole file ``GET /ipfs/<root>`` is downloaded once: MB/s, and the server's anonymous RSS
  sampled (LevelDB's memory-mapped table files show up as file-backed RSS, which the OS can drop);
- ``GET /ipfs/<cid>`` of random 1 KiB files, then ``GET /ipfs/<cid>?format=raw`` of random raw 1 KiB
  blocks, from 32 concurrent keep-alive connections (one request at a time each, as ``wrk`` does)
  for a fixed time: requests/s.
A bare aiohttp server answers the same loads in the same run (a stream of 256 KiB in-memory chunks;
the same 1 KiB bodies from a dict, one ``web.Response`` each): the ceiling of the HTTP stack on this
machine. The two take turns for several rounds and the median of the rounds' ratios gateway/bare is
the figure to compare across runs; each server's own CPU time per request is measured too (from
``/proc``), which other load on a shared machine disturbs less than requests/s.

The load generator is ``wrk`` when it is installed (C, one thread: it costs the server little of the
machine's CPU), else :data:`CLIENT_PROCS` Python processes of minimal asyncio clients sharing the 32
connections. Every answer is checked once before the timed load (status 200, the expected body).

Run: ``.venv/bin/python -m benchmarks.bench_gateway [--quick] [--client wrk|python]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.common import report
from blockstore.cid import cid_for, cid_to_str
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_file
from blockstore.store import BlockStore

ROOT = Path(__file__).resolve().parents[1]
SMALL = 1024
SMALL_FILES = 2_000
CHUNK = 256 * 1024
CONCURRENCY = 32
#: Python client processes when ``wrk`` is not installed (they share the 32 connections)
CLIENT_PROCS = 4
#: rounds of each request load, the two servers in turn (medians are reported)
ROUNDS = 5


class _RandomStream:
    """``read(n)`` of pseudo-random bytes (fast, incompressible enough), ``total`` bytes in all."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.rng = random.Random(7)

    def read(self, n: int) -> bytes:
        n = min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


def small_bodies(count: int) -> list[bytes]:
    """The 1 KiB small-file contents (deterministic, so the bare server can hold the same bytes)."""
    rng = random.Random(13)
    return [rng.randbytes(SMALL) for _ in range(count)]


def prepare(repo: Path, size: int, small_blocks: int, small_files: int) -> tuple[str, list[str], list[str]]:
    """Import the big file, the raw 1 KiB blocks and the 1 KiB files; return (file root, block CIDs, file CIDs)."""
    store = BlockStore(open_db(repo))
    try:
        kubo = ImportParams.from_profile("unixfs-v0-2015")
        res = import_file(_RandomStream(size), store, kubo)
        rng = random.Random(11)
        cids = []
        batch = []
        for _ in range(small_blocks):
            data = rng.randbytes(SMALL)
            cid = cid_for(data)
            batch.append((cid, data))
            cids.append(cid_to_str(cid))
            if len(batch) == 1000:
                store.put_many(batch)
                batch = []
        if batch:
            store.put_many(batch)
        files = []
        for body in small_bodies(small_files):
            files.append(cid_to_str(import_file(_Bytes(body), store, kubo).cid))
    finally:
        store.db.close()
    return cid_to_str(res.cid), cids, files


class _Bytes:
    """``read(n)`` over one bytes object (an importer input)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int) -> bytes:
        piece = self.data[self.pos : self.pos + n]
        self.pos += len(piece)
        return piece


# --------------------------------------------------------------------------- server side (subprocess)


def _bare_app(size: int, files: list[str]) -> web.Application:
    chunk = os.urandom(CHUNK)
    small = os.urandom(SMALL)
    bodies = dict(zip(files, small_bodies(len(files))))

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = size
        await resp.prepare(request)
        left = size
        while left > 0:
            piece = chunk if left >= CHUNK else chunk[:left]
            await resp.write(piece)
            left -= len(piece)
        return resp

    async def block(request: web.Request) -> web.Response:
        body = bodies.get(request.match_info["cid"])
        if body is None:
            return web.Response(body=small, content_type="application/vnd.ipld.raw")
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/ipfs/file", stream)
    app.router.add_get("/ipfs/{cid}", block)
    return app


async def _serve_gateway(repo: str) -> None:
    """The gateway wired as ``node.daemon.Daemon`` serves it (metrics, counting source, guarded site)."""
    from node.daemon import BACKLOG, CountingBlockSource
    from node.gateway import StoreBlockSource, make_gateway_app
    from node.http_limits import ConnectionLimiter, GuardedSite, listen
    from node.httpserver import ServerRunner, line_limits
    from node.metrics import NodeMetrics

    store = BlockStore(open_db(repo))
    metrics = NodeMetrics(store)
    app = make_gateway_app(CountingBlockSource(StoreBlockSource(store), metrics), metrics=metrics, max_url=8192, per_client=256)
    max_line, max_field = line_limits(8192)
    runner = ServerRunner(app, handle_signals=False, access_log=None, max_line_size=max_line,
                          max_field_size=max_field, keepalive_timeout=20)
    await runner.setup()
    sock = listen("127.0.0.1", 0, "gateway", BACKLOG)[0]
    site = GuardedSite(runner, sock, ConnectionLimiter("gateway", 1024, 256), backlog=BACKLOG)
    await site.start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    store.db.close()


async def _serve_bare(size: int, files: list[str]) -> None:
    runner = web.AppRunner(_bare_app(size, files), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def serve(mode: str, repo: str, size: int) -> None:
    """Run the gateway (or the bare server) on 127.0.0.1:0; print the port; stop when stdin closes."""
    if mode == "gateway":
        asyncio.run(_serve_gateway(repo))
    else:
        files = json.loads((Path(repo).parent / "files.json").read_text())
        asyncio.run(_serve_bare(size, files))


# --------------------------------------------------------------------------- client side


def _rss_kib(pid: int, field: str = "RssAnon") -> int:
    """A process's resident memory in KiB: ``RssAnon`` (heap; LevelDB's mmapped tables are ``RssFile``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _Server:
    def __init__(self, mode: str, repo: Path, size: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_gateway", "--serve", mode, str(repo), str(size)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def _fetch_all(url: str) -> int:
    """GET ``url`` over a plain socket into one reused buffer (a light client: the server is measured)."""
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(buf)
            if n == 0:
                raise ConnectionError("server closed before the headers ended")
            head += bytes(view[:n])
        head, _, body = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"unexpected answer {head[:40]!r}")
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:")
        got = len(body)
        while got < length:
            n = sock.recv_into(buf)
            if n == 0:
                raise ConnectionError(f"body ended after {got} of {length} bytes")
            got += n
    return got


def _download(url: str, pid: int) -> dict[str, Any]:
    """Download ``url`` once; MB/s and the server's anonymous RSS before and at peak (sampled every 0.1 s)."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            samples.append(_rss_kib(pid))

    before = _rss_kib(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    got = _fetch_all(url)
    secs = time.perf_counter() - start
    stop.set()
    sampler.join()
    peak = max(samples or [before])
    return {"bytes": got, "seconds": round(secs, 2), "MB/s": round(got / secs / 1e6, 1),
            "anon RSS before MiB": round(before / 1024, 1), "anon RSS peak MiB": round(peak / 1024, 1),
            "total RSS after MiB": round(_rss_kib(pid, "VmRSS") / 1024, 1)}


def _get(port: int, path: str) -> tuple[int, bytes]:
    """One GET (a fresh connection): status and body (for the answer check before a load)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


_WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
math.randomseed(7)
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
"""


def _load_wrk(port: int, paths: list[str], seconds: float, tmp: Path) -> dict[str, Any]:
    """``wrk`` with one thread and 32 connections over random ``paths``."""
    listing = tmp / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = tmp / "paths.lua"
    script.write_text(_WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds:g}s", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True, env={**os.environ, "BENCH_PATHS": str(listing)},
    ).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in sock_err.groups()) if sock_err else 0)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"requests": done, "errors": errors, "seconds": seconds, "req/s": round(rate)}


class _Client(asyncio.Protocol):
    """One keep-alive connection sending the next GET as soon as the previous answer is complete."""

    def __init__(self, paths: list[str], seed: int, deadline: float, stats: dict[str, int], done: asyncio.Future[None]) -> None:
        self.requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for p in paths]
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.stats = stats
        self.done = done
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.rng.choice(self.requests))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        at = self.buf.find(b"Content-Length: ", 0, end)
        length = int(self.buf[at + 16 : self.buf.index(b"\r\n", at)]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        self.stats["ok" if self.buf[9:12] == b"200" else "errors"] += 1
        self.buf = self.buf[end + 4 + length :]
        assert self.transport is not None
        if time.perf_counter() < self.deadline:
            self.transport.write(self.rng.choice(self.requests))
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _client_proc(port: int, paths: list[str], conns: int, seconds: float, seed: int) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    stats = {"ok": 0, "errors": 0}
    deadline = time.perf_counter() + seconds
    waits = []
    for i in range(conns):
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda: _Client(paths, seed * 1000 + i, deadline, stats, done), "127.0.0.1", port)
        waits.append(done)
    await asyncio.gather(*waits)
    return stats


def _load_python(port: int, paths: list[str], seconds: float, tmp: Path) -> dict[str, Any]:
    """:data:`CLIENT_PROCS` processes of minimal asyncio clients sharing the 32 connections."""
    listing = tmp / "paths.json"
    listing.write_text(json.dumps(paths))
    per = [CONCURRENCY // CLIENT_PROCS + (i < CONCURRENCY % CLIENT_PROCS) for i in range(CLIENT_PROCS)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "benchmarks.bench_gateway", "--load-proc", str(port), str(listing),
                          str(n), str(seconds), str(i)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for i, n in enumerate(per)
    ]
    results = [json.loads(p.communicate()[0]) for p in procs]
    secs = time.perf_counter() - start
    ok = sum(r["ok"] for r in results)
    return {"requests": ok, "errors": sum(r["errors"] for r in results), "seconds": round(secs, 2), "req/s": round(ok / seconds)}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(server: "_Server", paths: list[str], seconds: float, tmp: Path, client: str) -> dict[str, Any]:
    """One timed load; also the server's requests per CPU-second it used (less sensitive than req/s
    to what else runs on the machine)."""
    cpu = _cpu_seconds(server.proc.pid)
    res = (_load_wrk if client == "wrk" else _load_python)(server.port, paths, seconds, tmp)
    used = _cpu_seconds(server.proc.pid) - cpu
    res["req/CPU-s"] = round(res["requests"] / used) if used > 0 else 0
    return res


def run(quick: bool, client: str) -> None:
    size = (128 if quick else 1024) * 1024 * 1024
    small_blocks = 5_000 if quick else 20_000
    seconds = 2.0 if quick else 3.0
    rounds = 3 if quick else ROUNDS
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp_dir:
        tmp = Path(tmp_dir)
        repo = tmp / "blocks"
        t0 = time.perf_counter()
        root, cids, files = prepare(repo, size, small_blocks, SMALL_FILES)
        (tmp / "files.json").write_text(json.dumps(files))
        prep = time.perf_counter() - t0
        bodies = small_bodies(SMALL_FILES)
        rows = []
        servers = {"gateway": _Server("gateway", repo, size), "bare-aiohttp": _Server("bare", repo, size)}
        try:
            for mode, server in servers.items():
                path = f"/ipfs/{root}" if mode == "gateway" else "/ipfs/file"
                rows.append({"server": mode, "load": f"stream {size >> 20} MiB file", **_download(server.url + path, server.proc.pid)})
            loads = [
                (f"1 KiB files x{CONCURRENCY} conns", [f"/ipfs/{c}" for c in files]),
                (f"raw 1 KiB blocks x{CONCURRENCY} conns", [f"/ipfs/{c}?format=raw" for c in cids]),
            ]
            for mode, server in servers.items():
                status, body = _get(server.port, loads[0][1][0])
                if status != 200 or body != bodies[0]:
                    raise SystemExit(f"{mode}: {loads[0][1][0]} answered {status} with {len(body)} bytes, not the file")
            for label, paths in loads:
                # the machine is shared: the two servers take turns, ROUNDS times; each round's ratio compares
                # two loads run back to back, and the medians are reported
                runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in servers}
                for _ in range(rounds):
                    for mode, server in servers.items():
                        runs[mode].append(_load(server, paths, seconds, tmp, client))
                pairs = list(zip(runs["gateway"], runs["bare-aiohttp"]))
                ratio = statistics.median(g["req/s"] / max(b["req/s"], 1) for g, b in pairs)
                cpu_ratio = statistics.median(g["req/CPU-s"] / max(b["req/CPU-s"], 1) for g, b in pairs)
                for mode, results in runs.items():
                    row: dict[str, Any] = {
                        "server": mode,
                        "load": label,
                        "requests": sum(r["requests"] for r in results),
                        "errors": sum(r["errors"] for r in results),
                        "seconds": round(sum(r["seconds"] for r in results), 1),
                        "req/s": round(statistics.median(r["req/s"] for r in results)),
                        "req/CPU-s": round(statistics.median(r["req/CPU-s"] for r in results)),
                    }
                    if mode == "gateway":
                        row.update({"vs bare": f"{ratio:.2f}x", "CPU vs bare": f"{cpu_ratio:.2f}x"})
                    rows.append(row)
        finally:
            for server in servers.values():
                server.stop()
        report(
            "gateway",
            rows,
            {"file": root, "profile": "unixfs-v0-2015 (256 KiB dag-pb leaves, CIDv0)",
             "small blocks": small_blocks, "small files": SMALL_FILES, "prepare seconds": round(prep, 1),
             "quick": quick, "client": client if client == "wrk" else f"{CLIENT_PROCS} python processes",
             "request loads": f"{rounds} rounds of {seconds:g} s, the servers in turn; req/s and req/CPU-s (requests "
                              "per second of the server's own CPU time) are medians of the rounds, 'vs bare' the median "
                              "of the rounds' ratios",
             "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
             "targets": ">= 400 MB/s streaming with flat RSS; 1 KiB files >= 0.50x bare aiohttp"},
        )


def main() -> None:
    """Entry point: the benchmark, or (``--serve``/``--client``) the halves it starts in subprocesses."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="128 MiB file, 5,000 small blocks, 3 s of requests")
    ap.add_argument("--client", choices=("wrk", "python"), help="load generator (default: wrk when installed)")
    ap.add_argument("--serve", nargs=3, metavar=("MODE", "REPO", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--load-proc", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        mode, repo, size = args.serve
        serve(mode, repo, int(size))
    elif args.load_proc:
        port, listing, conns, seconds, seed = args.load_proc
        paths = json.loads(Path(listing).read_text())
        print(json.dumps(asyncio.run(_client_proc(int(port), paths, int(conns), float(seconds), int(seed)))))
    else:
        run(args.quick, args.client or ("wrk" if shutil.which("wrk") else "python"))


if __name__ == "__main__":
    main()
