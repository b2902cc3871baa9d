"""Peak memory and throughput of a 1 GiB ``pinion add`` and ``pinion car import`` to a daemon.

* A 1 GiB pseudo-random file (``--quick``: 256 MiB) is written to a temp dir, added offline to a
  scratch repo and exported as a CAR (the same DAG: kubo defaults, CIDv0, 256 KiB leaves).
* For each case a fresh repo (``init --profile test``) and ``pinion daemon --offline`` run; the
  CLI (outside any limit) sends the file (``add -Q``) or the CAR (``car import``) over the RPC API.
  The daemon's ``/proc/<pid>/status`` is sampled every 20 ms: peak RssAnon (what a memory limit
  cannot reclaim) and VmHWM (with mapped files); ``/proc/<pid>/io`` gives the bytes it wrote.
* Cases: no limit (the default ``Datastore.MemoryBudget``: 128 MiB), and, where a memory cgroup
  can be made (root, cgroup v1 or delegated v2), the daemon inside a 128 MiB cgroup (the budget
  then follows the limit: 16 MiB); ``oom`` says whether the kernel killed it.
* ``--tree DIR`` runs the daemon and CLI from another checkout (e.g. main, for before/after).

Throughput is file bytes per second (MB = 10^6 bytes). Run: ``.venv/bin/python -m benchmarks.bench_memory [--quick]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import report
from tests.harness.memcgroup import CgroupUnavailable, make_memory_cgroup

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("RssAnon", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def _written(pid: int) -> int:
    for line in open(f"/proc/{pid}/io"):
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def run_case(tree: Path, mode: str, src: Path, limit: int | None, work: Path) -> dict[str, Any]:
    """One daemon, one upload; the figures of the row."""
    repo = Path(tempfile.mkdtemp(dir=work, prefix="repo-"))
    env = {**os.environ, "PINION_PATH": str(repo), "PYTHONPATH": str(tree)}
    py = [sys.executable, "-m", "node.cli"]
    subprocess.run([*py, "init", "--profile", "test"], env=env, cwd=tree, check=True, capture_output=True)
    cg = make_memory_cgroup(limit) if limit else None
    prefix = cg.prefix() if cg else []
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen([*prefix, *py, "daemon", "--offline"], env=env, cwd=tree, stdout=log, stderr=subprocess.STDOUT)
    row: dict[str, Any] = {"case": mode, "limit": f"{limit >> 20}M" if limit else "none"}
    try:
        deadline = time.monotonic() + 120
        while not (repo / "api").exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start: {(work / 'daemon.log').read_text()[-500:]}")
            time.sleep(0.05)
        peak = {"RssAnon": 0, "VmHWM": 0}
        base = _status(daemon.pid)["RssAnon"]
        written = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    st = _status(daemon.pid)
                    written[0] = _written(daemon.pid)
                except OSError:
                    return
                for k in peak:
                    peak[k] = max(peak[k], st.get(k, 0))
                stop.wait(0.02)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        cmd = ["add", "-Q", str(src)] if mode == "add" else ["car", "import", str(src)]
        t0 = time.monotonic()
        res = subprocess.run([*py, *cmd], env=env, cwd=tree, capture_output=True, timeout=3600)
        elapsed = time.monotonic() - t0
        stop.set()
        t.join()
        size = src.stat().st_size
        row.update(
            {
                "s": round(elapsed, 1),
                "MB/s": round(size / elapsed / 1e6, 1) if res.returncode == 0 else 0,
                "idle": base >> 20,
                "peak": peak["RssAnon"] >> 20,
                "growth": (peak["RssAnon"] - base) >> 20,
                "HWM": peak["VmHWM"] >> 20,
                "written": written[0] >> 20,
                "oom": bool(cg and cg.oom_kills()),
            }
        )
        words = res.stdout.decode().split()  # "<cid>" (add -Q) or "root <cid> (pinned)" (car import)
        row["out"] = (words[0] if mode == "add" else words[1]) if res.returncode == 0 and words else ""
    finally:
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        log.close()
        if cg:
            cg.remove()
        shutil.rmtree(repo, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 MiB instead of 1 GiB")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout to run pinion from (default: this one)")
    ap.add_argument("--limit-mib", type=int, default=128, help="memory cgroup limit of the limited cases")
    ap.add_argument("--no-limit-cases", action="store_true", help="skip the cgroup cases")
    args = ap.parse_args()
    size = (256 if args.quick else 1024) * MiB
    work = Path(tempfile.mkdtemp(prefix="pinion-bench-memory-"))
    rows: list[dict[str, Any]] = []
    notes: dict[str, Any] = {
        "columns": "s: seconds of the upload; idle / peak / growth: daemon RssAnon MiB; HWM: VmHWM MiB (with mapped"
        " files); written: MiB the daemon wrote to disk (LevelDB log, tables, compactions)",
        "tree": str(args.tree),
        "file": f"{size >> 20} MiB pseudo-random",
        "load": os.getloadavg()[0],
    }
    try:
        data, car = work / "data.bin", work / "data.car"
        rng = random.Random(1)
        with open(data, "wb") as fh:
            for _ in range(size // MiB):
                fh.write(rng.randbytes(MiB))
        scratch = work / "scratch"
        env = {**os.environ, "PINION_PATH": str(scratch), "PYTHONPATH": str(args.tree)}
        py = [sys.executable, "-m", "node.cli"]
        subprocess.run([*py, "init", "--profile", "test"], env=env, cwd=args.tree, check=True, capture_output=True)
        root = subprocess.run([*py, "add", "-Q", str(data)], env=env, cwd=args.tree, check=True, capture_output=True).stdout.decode().strip()
        with open(car, "wb") as fh:
            subprocess.run([*py, "car", "export", root], env=env, cwd=args.tree, check=True, stdout=fh)
        shutil.rmtree(scratch)
        notes["root"] = root
        limits: list[int | None] = [None]
        if not args.no_limit_cases:
            try:
                make_memory_cgroup(args.limit_mib * MiB).remove()
                limits.append(args.limit_mib * MiB)
            except CgroupUnavailable as exc:
                notes["limited cases skipped"] = str(exc)
        for limit in limits:
            for mode, src in (("add", data), ("car", car)):
                row = run_case(args.tree, mode, src, limit, work)
                row["cid ok"] = row.pop("out") == root
                rows.append(row)
                print(row, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("bench_memory", rows, notes)


if __name__ == "__main__":
    main()
