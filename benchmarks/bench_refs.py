"""DAG walks of the kubo RPC on a DAG with many blocks: ``refs -r`` (with and without ``--unique``),
``pin ls --type=indirect``, ``refs/local``, ``dag stat`` and ``get``, end to end through a daemon.

A real ``pinion daemon`` runs in a subprocess; a random file is added through
the RPC with ``--chunker=size-1024`` so that it has one block per KiB (128 MiB:
about 132,000 blocks, twice the 65,536 CIDs a visited set keeps in memory
before it spills to LevelDB). Each walk is streamed and counted here while
the daemon's anonymous RSS is sampled: the figure that matters is that it
stays flat as the DAG grows, whatever the walk.

Run: ``.venv/bin/python -m benchmarks.bench_refs [--quick]`` (``--quick``: 32 MiB)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.bench_rpc import ROOT, _AnonSampler, _cli, _start_daemon, _status, _upload
from benchmarks.common import report


async def _stream(url: str, params: dict[str, str]) -> tuple[float, int, int]:
    """POST and read the whole answer; (seconds, NDJSON lines, bytes)."""
    t0 = time.perf_counter()
    lines = size = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
        async with s.post(url, params=params) as r:
            if r.status != 200:
                raise SystemExit(f"{url} failed: {r.status} {await r.text()}")
            async for chunk in r.content.iter_chunked(1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
    return time.perf_counter() - t0, lines, size


def main() -> None:
    """Run the benchmark and report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="32 MiB instead of 128 MiB")
    ap.add_argument("--mib", type=int, help="file size in MiB (overrides --quick)")
    args = ap.parse_args()
    mib = args.mib or (32 if args.quick else 128)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-refs-") as tmp:
        t = Path(tmp)
        raw = t / "data.bin"
        with open(raw, "wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(1 << 20))
        repo = t / "repo"
        env = {**os.environ, "PINION_PATH": str(repo), "PYTHONPATH": str(ROOT)}
        _cli(env, "init", "--profile", "test")
        proc = _start_daemon(env, repo)
        try:
            ep = json.loads((repo / "endpoints.json").read_text())
            host, port = ep["rpc"].split("/")[2], ep["rpc"].split("/")[4]
            base = f"http://{host}:{port}/api/v0"
            dt, lines = asyncio.run(_upload(f"{base}/add", raw, {"chunker": "size-1024", "raw-leaves": "true"}))
            root = lines[-1]["Hash"]
            blocks = asyncio.run(_stream(f"{base}/refs/local", {}))[1]
            rows.append({"case": "add, 1 KiB chunks", "blocks": blocks, "seconds": dt, "per second": blocks / dt})
            anon_start = _status(proc.pid, "RssAnon")
            cases = [
                ("refs -r", "refs", {"arg": root, "recursive": "true"}),
                ("refs -r --unique", "refs", {"arg": root, "recursive": "true", "unique": "true"}),
                ("pin ls --type=indirect --stream", "pin/ls", {"type": "indirect", "stream": "true"}),
                ("refs/local", "refs/local", {}),
                ("dag stat (no progress)", "dag/stat", {"arg": root, "progress": "false"}),
                ("get (tar)", "get", {"arg": root}),
            ]
            peaks: dict[str, int] = {}
            for name, cmd, params in cases:
                with _AnonSampler(proc.pid) as sampler:
                    secs, count, size = asyncio.run(_stream(f"{base}/{cmd}", params))
                peaks[name] = sampler.peak
                row: dict[str, Any] = {"case": name, "lines": count, "seconds": secs, "per second": count / secs}
                if cmd == "get":
                    row = {"case": name, "MB": size / 1e6, "seconds": secs, "MB/s": size / 1e6 / secs}
                row["daemon anon RSS peak MiB"] = round(sampler.peak / 2**20, 1)
                rows.append(row)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    report(
        "refs",
        rows,
        {
            "file": f"{mib} MiB random, --chunker=size-1024 --raw-leaves",
            "daemon anonymous RSS before the walks MiB": round(anon_start / 2**20, 1),
            "visited set in memory before spilling": "65,536 CIDs (blockstore/visited.py)",
            "refs -r --unique / refs -r time": round(rows[2]["seconds"] / rows[1]["seconds"], 2),
        },
    )


if __name__ == "__main__":
    main()
