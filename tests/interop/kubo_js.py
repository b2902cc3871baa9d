"""kubo's JavaScript RPC client (``kubo-rpc-client``, exact version in ``kubo_client/package-lock.json``) run from Python.

``run_driver(api_url, scenario, *args)`` runs ``kubo_client/driver.mjs`` with
Node and returns the JSON object it prints (see the header of driver.mjs).
The client lives in its own folder so that its dependencies never touch
Helia's lockfile; ``npm ci`` runs there the first time (helia.ensure_installed).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .helia import ensure_installed, node_problem

KUBO_CLIENT_DIR = Path(__file__).resolve().parent / "kubo_client"
DRIVER = KUBO_CLIENT_DIR / "driver.mjs"

__all__ = ["KUBO_CLIENT_DIR", "install", "node_problem", "run_driver"]


def install(timeout: float = 600) -> None:
    """``npm ci`` in kubo_client/ unless its node_modules matches its lockfile."""
    ensure_installed(timeout, folder=KUBO_CLIENT_DIR)


def run_driver(api_url: str, scenario: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    """Run one driver scenario against ``api_url`` (``http://host:port/api/v0``); its JSON result."""
    proc = subprocess.run(
        ["node", str(DRIVER), api_url, scenario, *args],
        cwd=KUBO_CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"driver printed nothing (exit {proc.returncode}); stderr:\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])
