"""CAR upload through the kubo RPC ``dag/import`` (and file upload through ``add``), end to end.

A real ``pinion daemon`` runs in a subprocess on a temp repo; this process
streams a 256 MiB CAR (``--quick``: 64 MiB) from disk as a kubo-style
multipart body, chunked, and waits for the answer. Compared in the same run
with the offline ``pinion car import`` / ``pinion add`` of the same bytes
into another repo. Also reported: the daemon's peak RSS (VmHWM).

Run: ``.venv/bin/python -m benchmarks.bench_rpc [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import report
from blockstore.cid import DAG_PB, cid_for, cid_to_str, encode_varint

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 256 * 1024
BOUNDARY = "bench-rpc-boundary-7f3c2a"


def _pb_link(cid: bytes, tsize: int) -> bytes:
    body = b"\x0a" + encode_varint(len(cid)) + cid + b"\x12\x00" + b"\x18" + encode_varint(tsize)
    return b"\x12" + encode_varint(len(body)) + body


def write_car(path: Path, size: int) -> tuple[str, int]:
    """A CARv1 of ``size`` random bytes in 256 KiB raw blocks under one dag-pb root; return (root, blocks)."""
    leaves: list[bytes] = []
    with open(path, "wb") as fh:
        fh.write(b"\x00" * 64)  # header placeholder, rewritten below
        header_room = 64
        for _ in range(size // BLOCK):
            data = os.urandom(BLOCK)
            cid = cid_for(data)
            leaves.append(cid)
            fh.write(encode_varint(len(cid) + len(data)) + cid + data)
        root_data = b"".join(_pb_link(c, BLOCK) for c in leaves)
        root = cid_for(root_data, codec=DAG_PB)
        fh.write(encode_varint(len(root) + len(root_data)) + root + root_data)
    header = b"\xa2eroots\x81\xd8\x2a\x58" + bytes([len(root) + 1]) + b"\x00" + root + b"gversion\x01"
    framed = encode_varint(len(header)) + header
    # The header must come first: rewrite the file with the real header in front.
    tmp = path.with_suffix(".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        src.seek(header_room)
        dst.write(framed)
        while chunk := src.read(1 << 22):
            dst.write(chunk)
    os.replace(tmp, path)
    return cid_to_str(root), len(leaves) + 1


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], env=env, capture_output=True, check=True, cwd=ROOT)


def _start_daemon(env: dict[str, str], repo: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "daemon"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not (repo / "endpoints.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"daemon did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    return proc


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class _AnonSampler:
    """Samples the daemon's anonymous RSS (heap, not LevelDB's mmapped table files) every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status(self.pid, "RssAnon"))
            self._stop.wait(0.02)

    def __enter__(self) -> "_AnonSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _upload(url: str, path: Path, opts: dict[str, str]) -> tuple[float, list[Any]]:
    async def body():  # type: ignore[no-untyped-def]
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
        async with s.post(url, params=opts, data=body(), headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}) as r:
            text = await r.text()
            if r.status != 200:
                raise SystemExit(f"upload failed: {r.status} {text}")
    dt = time.perf_counter() - t0
    return dt, [json.loads(line) for line in text.splitlines() if line.strip()]


def main() -> None:
    """Run the benchmark and report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="64 MiB instead of 256 MiB")
    args = ap.parse_args()
    size = (64 if args.quick else 256) * 1024 * 1024
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        t = Path(tmp)
        car = t / "data.car"
        root, nblocks = write_car(car, size)
        raw = t / "data.bin"
        with open(raw, "wb") as fh:
            for _ in range(size // (1 << 20)):
                fh.write(os.urandom(1 << 20))
        mb = car.stat().st_size / 1e6

        online = t / "online"
        env = {**os.environ, "PINION_PATH": str(online), "PYTHONPATH": str(ROOT)}
        _cli(env, "init", "--profile", "test")
        proc = _start_daemon(env, online)
        try:
            ep = json.loads((online / "endpoints.json").read_text())
            host, port = ep["rpc"].split("/")[2], ep["rpc"].split("/")[4]
            base = f"http://{host}:{port}/api/v0"
            anon_start = _status(proc.pid, "RssAnon")
            with _AnonSampler(proc.pid) as sampler:
                dt, lines = asyncio.run(_upload(f"{base}/dag/import", car, {"stats": "true"}))
            assert lines[0]["Root"]["Cid"]["/"] == root, lines
            assert lines[1]["Stats"]["BlockCount"] == nblocks, lines
            rows.append({"case": "RPC dag/import (CAR)", "MiB": size >> 20, "seconds": dt, "MB/s": mb / dt})
            dt_add, lines = asyncio.run(_upload(f"{base}/add", raw, {}))
            rows.append({"case": "RPC add (file, kubo defaults)", "MiB": size >> 20, "seconds": dt_add, "MB/s": size / 1e6 / dt_add})
            hwm = _status(proc.pid, "VmHWM")
            anon_peak = sampler.peak
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)

        offline = t / "offline"
        env2 = {**os.environ, "PINION_PATH": str(offline), "PYTHONPATH": str(ROOT)}
        _cli(env2, "init", "--profile", "test")
        t0 = time.perf_counter()
        _cli(env2, "car", "import", str(car))
        dt_off = time.perf_counter() - t0
        rows.append({"case": "offline pinion car import", "MiB": size >> 20, "seconds": dt_off, "MB/s": mb / dt_off})
        t0 = time.perf_counter()
        _cli(env2, "add", "-Q", str(raw))
        dt_off_add = time.perf_counter() - t0
        rows.append({"case": "offline pinion add", "MiB": size >> 20, "seconds": dt_off_add, "MB/s": size / 1e6 / dt_off_add})
    report(
        "rpc",
        rows,
        {
            "daemon anonymous RSS before / peak during dag/import MiB": f"{anon_start / 2**20:.0f} / {anon_peak / 2**20:.0f}",
            "daemon VmHWM MiB (includes LevelDB's mmapped table files)": round(hwm / 2**20, 1),
            "dag/import vs offline car import": round(dt_off / dt, 2),
            "add vs offline add": round(dt_off_add / dt_add, 2),
            "target": "dag/import >= 150 MB/s end to end",
        },
    )


if __name__ == "__main__":
    main()
