"""Drive Helia peers (``helia_peer.mjs``) from Python: install, start, send JSON-line commands, stop.

Used by the interop tests and by ``benchmarks/bench_helia.py``. A peer is one
``node`` process; its stdout carries one JSON answer per command, its stderr
goes to a log file whose tail is quoted in every error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from npm_project import NpmError, node_problem, npm_install

__all__ = ["HeliaError", "HeliaPeer", "ensure_installed", "listing_digest", "node_problem"]

#: the folder holding package.json, package-lock.json and helia_peer.mjs
INTEROP_DIR = Path(__file__).resolve().parent
PEER_SCRIPT = INTEROP_DIR / "helia_peer.mjs"
#: written into node_modules after a successful ``npm ci``: the sha256 of the lockfile it installed


class HeliaError(RuntimeError):
    """A Helia peer failed to start, answered ``ok: false``, timed out or died."""


def ensure_installed(timeout: float = 600, folder: Path = INTEROP_DIR) -> None:
    """``npm ci`` in ``folder`` (default: Helia's, this one) unless its node_modules matches its
    package-lock.json; raises HeliaError with npm's output on failure."""
    try:
        npm_install(folder, timeout)
    except NpmError as exc:
        raise HeliaError(str(exc)) from None


class HeliaPeer:
    """One running Helia peer; every method sends one command and returns its answer (a dict)."""

    def __init__(self, log_dir: Path) -> None:
        """Spawn ``node helia_peer.mjs``, logging its stderr under ``log_dir``; call wait_ready() next."""
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, log_name = tempfile.mkstemp(prefix="helia-", suffix=".log", dir=log_dir)
        self.log_path = Path(log_name)
        self._log = os.fdopen(fd, "wb")
        self._proc = subprocess.Popen(
            ["node", str(PEER_SCRIPT)],
            cwd=INTEROP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, name="helia-stdout", daemon=True)
        self._reader.start()
        self._next_id = 0
        self.peer_id = ""
        self.addrs: list[str] = []

    def wait_ready(self, timeout: float = 60) -> "HeliaPeer":
        """Wait for the peer's first line (peer ID and listen addresses); return self."""
        hello = self._receive(timeout, "start")
        self.peer_id = hello["peerId"]
        self.addrs = hello["addrs"]
        return self

    @classmethod
    def start(cls, log_dir: Path, count: int = 1, timeout: float = 60) -> list["HeliaPeer"]:
        """Start ``count`` peers side by side (Node takes seconds to load Helia) and wait until all listen."""
        peers = [cls(log_dir) for _ in range(count)]
        try:
            for peer in peers:
                peer.wait_ready(timeout)
        except BaseException:
            for peer in peers:
                peer.close()
            raise
        return peers

    @property
    def addr(self) -> str:
        """The peer's TCP multiaddr on 127.0.0.1, with its ``/p2p/`` peer ID."""
        return next(a for a in self.addrs if a.startswith("/ip4/127.0.0.1/tcp/"))

    @property
    def alive(self) -> bool:
        """True while the node process runs."""
        return self._proc.poll() is None

    @property
    def pid(self) -> int:
        """The node process ID."""
        return self._proc.pid

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def _log_tail(self) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _receive(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise HeliaError(f"Helia gave no answer to {what} within {timeout:g} s; log:\n{self._log_tail()}") from None
        if not line:
            self._proc.wait(timeout=10)
            raise HeliaError(f"Helia exited (code {self._proc.returncode}) during {what}; log:\n{self._log_tail()}")
        try:
            return json.loads(line)
        except ValueError:
            raise HeliaError(f"Helia wrote a line that is not JSON during {what}: {line[:200]!r}") from None

    def call(self, cmd: str, timeout: float = 60, **args: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **args}``; return the answer, or raise HeliaError if it is not ``ok``."""
        self._next_id += 1
        request = {"id": self._next_id, "cmd": cmd, **args}
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise HeliaError(f"Helia is not running (cannot send {cmd}); log:\n{self._log_tail()}") from None
        answer = self._receive(timeout, cmd)
        while isinstance(answer.get("id"), int) and answer["id"] < self._next_id:
            answer = self._receive(timeout, cmd)  # the late answer of a request we stopped waiting for
        if answer.get("id") != self._next_id:
            raise HeliaError(f"Helia answered request {answer.get('id')} while {self._next_id} ({cmd}) was pending")
        if not answer.get("ok"):
            raise HeliaError(f"Helia {cmd} failed: {answer.get('error')}")
        return answer

    def import_file(self, path: Path, **options: Any) -> dict[str, Any]:
        """Import a file (options: chunkSize, maxChildren, rawLeaves, cidVersion); answer has cid and size."""
        return self.call("import-file", path=str(path), **options)

    def import_dir(self, path: Path, **options: Any) -> dict[str, Any]:
        """Import a directory tree (also shardSplitThresholdBytes); answer has cid and sharded."""
        return self.call("import-dir", path=str(path), **options)

    def fetch(self, cid: str, timeout: float = 30) -> dict[str, Any]:
        """Fetch and read a file or directory (over bitswap when not held); see helia_peer.mjs for the answer."""
        return self.call("fetch", timeout=timeout + 10, cid=cid, timeoutMs=int(timeout * 1000))

    def dial(self, addr: str, timeout: float = 10) -> dict[str, Any]:
        """Connect to ``addr`` and wait for identify; answer has peerId, protocols, agent."""
        return self.call("dial", timeout=timeout + 10, addr=addr, timeoutMs=int(timeout * 1000))

    def block(self, cid: str, timeout: float = 30) -> bytes:
        """One block's bytes (fetched over bitswap when not held)."""
        answer = self.call("block", timeout=timeout + 10, cid=cid, timeoutMs=int(timeout * 1000))
        return base64.b64decode(answer["base64"])

    def peers(self) -> list[str]:
        """The peer IDs Helia is connected to."""
        return list(self.call("peers")["peers"])

    def stats(self) -> dict[str, int]:
        """``{"blocks": N, "bytes": N}`` held in Helia's blockstore."""
        answer = self.call("stats")
        return {"blocks": answer["blocks"], "bytes": answer["bytes"]}

    def close(self, timeout: float = 10) -> None:
        """Stop the peer: a ``stop`` command if it is alive, then kill it if it has not exited."""
        if self._proc.poll() is None:
            try:
                self.call("stop", timeout=timeout)
            except HeliaError:
                pass
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass  # unflushed input to a process that is gone
        self._log.close()

    def kill(self) -> None:
        """Kill the process at once (no stop command)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def __enter__(self) -> "HeliaPeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def listing_digest(files: list[tuple[str, str, bytes]]) -> str:
    """The directory digest ``fetch`` returns: sha256 of sorted ``path\\tcid\\tsha256(bytes)\\n`` lines."""
    lines = sorted(f"{path}\t{cid}\t{hashlib.sha256(data).hexdigest()}\n" for path, cid, data in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()
