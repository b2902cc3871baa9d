"""The HTTP gateway over loopback: streaming a large UnixFS file and many small raw-block requests.

A 1 GiB file (``--quick``: 128 MiB) is imported with the kubo profile (``unixfs-v0-2015``: 256 KiB
chunks, dag-pb leaves, CIDv0) into a temp block store, plus 20,000 raw 1 KiB blocks. The gateway then
runs in a subprocess (so client and server do not share an event loop) and this process
- downloads the whole file ``GET /ipfs/<root>`` and measures MB/s, sampling the server's anonymous
  RSS (LevelDB's memory-mapped table files show up as file-backed RSS, which the OS can drop);
- sends ``GET /ipfs/<cid>?format=raw`` for random 1 KiB blocks from 32 concurrent keep-alive
  connections for a fixed time and measures requests/s.
Both clients are minimal (plain sockets / asyncio streams) so that the server is what is measured.
The same two loads are run against a bare aiohttp server in the same run (a stream of 256 KiB
in-memory chunks; a fixed 1 KiB body), the ceiling of the HTTP stack on this machine.

Run: ``.venv/bin/python -m benchmarks.bench_gateway [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
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
CHUNK = 256 * 1024
CONCURRENCY = 32


class _RandomStream:
    """``read(n)`` of pseudo-random bytes (fast, incompressible enough), ``total`` bytes in all."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.rng = random.Random(7)

    def read(self, n: int) -> bytes:
        n = min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


def prepare(repo: Path, size: int, small_blocks: int) -> tuple[str, list[str]]:
    """Import the big file and the small raw blocks; return (file root, small CIDs)."""
    store = BlockStore(open_db(repo))
    try:
        res = import_file(_RandomStream(size), store, ImportParams.from_profile("unixfs-v0-2015"))
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
    finally:
        store.db.close()
    return cid_to_str(res.cid), cids


# --------------------------------------------------------------------------- server side (subprocess)


def _bare_app(size: int) -> web.Application:
    chunk = os.urandom(CHUNK)
    small = os.urandom(SMALL)

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
        return web.Response(body=small, content_type="application/vnd.ipld.raw")

    app = web.Application()
    app.router.add_get("/ipfs/file", stream)
    app.router.add_get("/ipfs/{cid}", block)
    return app


def serve(mode: str, repo: str, size: int) -> None:
    """Run the gateway (or the bare server) on 127.0.0.1:0; print the port; stop when stdin closes."""
    from node.gateway import StoreBlockSource, make_gateway_app

    store = None
    if mode == "gateway":
        store = BlockStore(open_db(repo))
        app = make_gateway_app(StoreBlockSource(store))
    else:
        app = _bare_app(size)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())
    if store is not None:
        store.db.close()


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


async def _hammer(host: str, port: int, cids: list[str], seconds: float) -> dict[str, Any]:
    """32 keep-alive connections, each sending one request at a time (a minimal HTTP/1.1 client,
    so the client's own cost does not hide the server's)."""
    done = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal done, errors
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                cid = rng.choice(cids)
                writer.write(f"GET /ipfs/{cid}?format=raw HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                if status == 200 and len(body) == SMALL:
                    done += 1
                else:
                    errors += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    secs = time.perf_counter() - start
    return {"requests": done, "errors": errors, "seconds": round(secs, 2), "req/s": round(done / secs)}


def run(quick: bool) -> None:
    size = (128 if quick else 1024) * 1024 * 1024
    small_blocks = 5_000 if quick else 20_000
    seconds = 3.0 if quick else 8.0
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        repo = Path(tmp) / "blocks"
        t0 = time.perf_counter()
        root, cids = prepare(repo, size, small_blocks)
        prep = time.perf_counter() - t0
        rows = []
        for mode in ("gateway", "bare-aiohttp"):
            server = _Server("gateway" if mode == "gateway" else "bare", repo, size)
            try:
                path = f"/ipfs/{root}" if mode == "gateway" else "/ipfs/file"
                dl = _download(server.url + path, server.proc.pid)
                rows.append({"server": mode, "load": f"stream {size >> 20} MiB file", **dl})
                hm = asyncio.run(_hammer("127.0.0.1", server.port, cids, seconds))
                rows.append({"server": mode, "load": f"raw 1 KiB blocks x{CONCURRENCY} clients", **hm})
            finally:
                server.stop()
        report(
            "gateway",
            rows,
            {"file": root, "profile": "unixfs-v0-2015 (256 KiB dag-pb leaves, CIDv0)",
             "small blocks": small_blocks, "prepare seconds": round(prep, 1), "quick": quick,
             "targets": ">= 400 MB/s streaming with flat RSS; >= 3,000 req/s raw 1 KiB"},
        )


def main() -> None:
    """Entry point: the benchmark, or (``--serve``) the server half it starts in a subprocess."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="128 MiB file, 5,000 small blocks, 3 s of requests")
    ap.add_argument("--serve", nargs=3, metavar=("MODE", "REPO", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        mode, repo, size = args.serve
        serve(mode, repo, int(size))
    else:
        run(args.quick)


if __name__ == "__main__":
    main()
