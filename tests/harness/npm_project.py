"""The JavaScript peers the interop tests run (Helia, js-libp2p, kubo-rpc-client): Node on PATH,
and each folder's node_modules installed from its package-lock.json with ``npm ci``."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["MIN_NODE_MAJOR", "NpmError", "node_problem", "npm_install"]

MIN_NODE_MAJOR = 20
#: written into node_modules after a successful install: the digest of the lockfile it came from
STAMP_NAME = ".pinion-lock-sha256"


class NpmError(RuntimeError):
    """``npm ci`` failed; the message carries npm's output."""


def node_problem() -> str | None:
    """Why the JavaScript peers cannot run here (no ``node``/``npm`` on PATH, Node too old), or None."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        return f"needs Node >= {MIN_NODE_MAJOR} and npm on PATH (CI has them)"
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        major = int(out.lstrip("v").split(".")[0])
    except ValueError:
        return f"cannot read the Node version from {out!r}"
    if major < MIN_NODE_MAJOR:
        return f"needs Node >= {MIN_NODE_MAJOR}, found {out}"
    return None


def npm_install(folder: Path, timeout: float = 600) -> None:
    """``npm ci`` in ``folder`` unless its node_modules already matches its package-lock.json.

    Serialised with a file lock, so concurrent test runs and benchmarks never install over each
    other. Raises :class:`NpmError` with npm's output when the install fails."""
    lock_path = Path(tempfile.gettempdir()) / "pinion-interop-npm-ci.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
        stamp = folder / "node_modules" / STAMP_NAME
        if stamp.exists() and stamp.read_text().strip() == digest:
            return
        proc = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=folder, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise NpmError(f"npm ci failed in {folder} (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
        stamp.write_text(digest + "\n")
