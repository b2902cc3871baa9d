"""Connection caps, the accept guard and rate-limited resource errors (node/http_limits.py,
node/fdlimit.py, node/ratelog.py): the sans-I/O parts with hypothesis, the accept guard on a real
server process that runs out of file descriptors."""

from __future__ import annotations

import errno
import io
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from node.fdlimit import connection_caps
from node.http_limits import ACCEPT_BATCH, MAX_LINGERING, ConnectionLimiter
from node.logsetup import LineFormatter
from node.ratelog import ResourceErrorFilter

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=300), st.integers(1, 20), st.integers(1, 8))
def test_the_limiter_never_admits_past_its_caps(ops: list[tuple[bool, int]], per_server: int, per_client: int) -> None:
    lim = ConnectionLimiter("t", per_server, per_client)
    held: list[str] = []
    for connect, who in ops:
        client = f"10.0.0.{who}"
        if connect:
            before = (lim.open, lim.by_client.get(client, 0))
            if lim.admit(client) is None:
                held.append(client)
            else:
                assert before[0] >= per_server or before[1] >= per_client
        elif client in held:
            held.remove(client)
            lim.release(client)
        assert lim.open == len(held) <= per_server
        assert all(n <= per_client for n in lim.by_client.values())
        assert lim.by_client == {c: held.count(c) for c in set(held)}


@given(st.integers(64, 2_000_000), st.integers(1, 5), st.integers(1, 5000), st.integers(1, 5000))
def test_connection_caps_leave_room_below_the_open_file_limit(limit: int, servers: int, max_server: int, max_client: int) -> None:
    caps = connection_caps(limit, servers, max_per_server=max_server, max_per_client=max_client)
    assert 1 <= caps.per_client <= caps.per_server <= max_server
    assert caps.per_client <= max_client
    # every server full, accepting and refusing: half the limit at least is left to the rest of the process
    busiest = servers * (caps.per_server + ACCEPT_BATCH + MAX_LINGERING)
    if caps.per_server > 16:  # above the floor the caps come from the limit
        assert busiest <= limit - min(756, limit // 2)


def test_resource_errors_are_logged_once_per_interval_with_a_count() -> None:
    out = io.StringIO()
    logger = logging.getLogger("test.ratelog")
    logger.propagate = False
    handler = logging.StreamHandler(out)
    handler.setFormatter(LineFormatter())
    handler.addFilter(ResourceErrorFilter(interval=0.5))
    logger.addHandler(handler)
    try:
        exc = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        for _ in range(1000):
            logger.error("accept failed", exc_info=(OSError, exc, None))
        logger.error("something else failed")  # other errors pass untouched
        time.sleep(0.6)
        logger.error("accept failed", exc_info=(OSError, exc, None))
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("accept failed: [Errno 24] Too many open files")
    assert lines[1].endswith("something else failed")
    assert "999 more like it" in lines[2]
    assert "Traceback" not in out.getvalue()


_SERVER = """
import asyncio, sys
from aiohttp import web
from node.http_limits import ConnectionLimiter, GuardedSite, listen
from node.logsetup import setup

setup({"Logging": {"Level": "WARNING", "Subsystems": {}}})

async def main():
    app = web.Application()
    async def hello(_r):
        return web.Response(text="ok")
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=float(sys.argv[1]))
    await runner.setup()
    [sock] = listen("127.0.0.1", 0, "test", 128)
    # caps far above the descriptors: only the accept guard stands between the flood and the log
    await GuardedSite(runner, sock, ConnectionLimiter("test", 100_000, 100_000)).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _get(port: int) -> bytes:
    """The raw answer to a GET / (b"" when the connection was closed or reset without one)."""
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while chunk := s.recv(65536):
                data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return data


def test_a_server_out_of_file_descriptors_logs_once_sheds_waiting_connections_and_recovers(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            ["prlimit", "--nofile=64", "--", sys.executable, "-c", _SERVER, "2"],
            stdout=subprocess.PIPE, stderr=fh, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    idle: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        assert _get(port).startswith(b"HTTP/1.1 200")
        # 300 idle connections against 64 descriptors
        for _ in range(300):
            s = socket.socket()
            s.settimeout(DEADLINE)
            s.connect(("127.0.0.1", port))
            idle.append(s)
        # a request meanwhile is answered at once (503 or a close when shed, or 200), never left hanging
        answer = _get(port)
        assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503")) or answer == b"", answer[:200]
        # the idle connections the server took are dropped after the header timeout (2 s): it serves again
        deadline = time.monotonic() + DEADLINE
        while not _get(port).startswith(b"HTTP/1.1 200"):
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.2)
        assert proc.poll() is None
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert "Too many open files" in text  # the shortage did happen
    assert text.count("\n") <= 10, text[:3000]  # ... and was logged once per interval, not per connection
    assert "Traceback" not in text
