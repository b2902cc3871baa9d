"""A ``pinion`` repo under test and the ``pinion daemon`` process running on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class PinionNode:
    """One repo, and the daemon running on it (when started)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "PINION_PATH": str(path), "PYTHONPATH": str(ROOT)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, Any] = {}
        self.log = path.parent / f"{path.name}-daemon.log"
        #: words run before the daemon command (e.g. ``ip netns exec NAME``)
        self.prefix: list[str] = []
        self._stale: dict[Path, tuple[int, int] | None] = {}

    def cli(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        """Run ``pinion ARGS`` against this repo."""
        res = subprocess.run(
            [sys.executable, "-m", "node.cli", *args],
            env=self.env,
            input=input,
            capture_output=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"pinion {' '.join(args)} failed ({res.returncode}): {res.stderr.decode()}")
        return res

    def cli_on_tty(self, *args: str) -> tuple[int, str]:
        """Run ``pinion ARGS`` with stderr on a pseudo-terminal (as an operator sees it); (status, terminal text)."""
        import pty

        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", *args],
            env={**self.env, "COLUMNS": "120", "TERM": "xterm"},
            stdout=subprocess.DEVNULL,
            stderr=follower,
            cwd=ROOT,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        os.close(leader)
        return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")

    def start(self, *extra: str) -> dict[str, Any]:
        """Start ``pinion daemon`` and wait until it wrote ``endpoints.json``."""
        self.spawn(*extra)
        return self.wait_ready()

    def spawn(self, *extra: str) -> None:
        """Start ``pinion daemon`` without waiting for it (``wait_ready`` does; see ``start_all``)."""
        assert self.proc is None, "daemon already running"
        # a daemon killed with SIGKILL leaves both files: wait for the new daemon's (written anew)
        self._stale = {f: _identity(f) for f in (self.path / "endpoints.json", self.path / "api")}
        logfh = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "node.cli", "daemon", *extra],
            env=self.env,
            stdout=logfh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        logfh.close()

    def wait_ready(self) -> dict[str, Any]:
        """Wait until the spawned daemon wrote ``endpoints.json`` (and ``api``); its endpoints."""
        assert self.proc is not None, "daemon not spawned"
        ep_file = self.path / "endpoints.json"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}: {self.log.read_text()}")
            if all(_identity(f) not in (None, stale) for f, stale in self._stale.items()):
                self.endpoints = json.loads(ep_file.read_text())
                return self.endpoints
            time.sleep(0.02)
        raise AssertionError(f"daemon not ready after {START_TIMEOUT}s: {self.log.read_text()}")

    def url(self, name: str = "rpc") -> str:
        """``http://host:port`` of a listening server."""
        parts = self.endpoints[name].strip("/").split("/")
        return f"http://{parts[1]}:{parts[3]}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the daemon and wait for it to exit; return its exit status."""
        assert self.proc is not None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"daemon ignored signal {sig}: {self.log.read_text()}") from None

    def kill(self) -> None:
        """Make sure the daemon is gone (used at teardown)."""
        kill_all([self])


def start_all(nodes: list[PinionNode], *extra: str) -> None:
    """Start several daemons with the same arguments at once (their imports overlap), and wait
    until each is ready."""
    for node in nodes:
        node.spawn(*extra)
    for node in nodes:
        node.wait_ready()


def kill_all(nodes: list[PinionNode]) -> None:
    """Make sure every node's daemon is gone: SIGTERM to all of them first, so that they shut
    down together, then wait for each (SIGKILL after STOP_TIMEOUT)."""
    procs = [node.proc for node in nodes if node.proc is not None]
    for node in nodes:
        node.proc = None
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime in ns) of a file, None when absent: the daemon writes its files by renaming."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns
