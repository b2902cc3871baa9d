"""kill -9 at any point loses no acknowledged item and leaves a state that resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.crdt import PUT

from .helpers import Peer, key

ROOT = Path(__file__).resolve().parents[3]


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.crdt.crash_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.parametrize("acks", [7, 130, 600])
def test_kill_during_batching_loses_no_acknowledged_pin(tmp_path: Path, acks: int) -> None:
    proc = _child("put", str(tmp_path / "repo"))
    last = -1
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            last = int(line.split()[1])
            if last + 1 >= acks:
                break
    finally:
        _kill(proc)
    assert last + 1 >= acks
    peer = Peer(tmp_path / "repo", peer_id="child", max_batch_size=50, max_batch_age=3600.0)
    try:
        peer.replica.commit()
        s = peer.replica.set
        for i in range(last + 1):
            assert s.get(key(i)) == b"value-%d" % i
        assert len(s) >= last + 1 and not peer.replica.is_dirty()
    finally:
        peer.close()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_kill_during_receive_resumes(tmp_path: Path, delay: float) -> None:
    src = Peer(tmp_path / "src", peer_id="src", max_batch_size=10, max_batch_age=60.0)
    src.replica.apply_many([(PUT, key(i), b"%d" % i) for i in range(3000)])
    src.replica.commit()
    want = src.state()
    want_heads = src.replica.heads()
    src.close()
    proc = _child("receive", str(tmp_path / "dst"), str(tmp_path / "src"))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "start"
        time.sleep(delay)
    finally:
        _kill(proc)
    src = Peer(tmp_path / "src", peer_id="src")
    dst = Peer(tmp_path / "dst", peer_id="dst", trusted_peers=["*"])
    try:
        dst.replica.resume(src.get_block)
        for head, _h in src.replica.heads():  # the head may not have been recorded yet
            dst.replica.receive(head, "src", src.get_block)
        assert dst.state() == want and dst.replica.heads() == want_heads
        assert not dst.replica.is_dirty() and len(dst.replica.set) == len(want)
    finally:
        src.close()
        dst.close()
