"""Crash safety of write batches: kill -9 a writer mid-import, reopen, check consistency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from blockstore.cid import cid_for
from blockstore.db import open_db
from blockstore.store import BlockStore

WRITER = r"""
import os, sys
from blockstore.cid import cid_for
from blockstore.db import open_db
from blockstore.store import BlockStore

store = BlockStore(open_db(sys.argv[1]))
seed = 0
while True:
    batch = []
    for _ in range(16):
        data = seed.to_bytes(8, "big") * 4096  # 32 KiB, compressible
        if seed % 2:
            data = os.urandom(32768)
        batch.append((cid_for(data), data))
        seed += 1
    store.put_many(batch)
    # acknowledged: the batch call returned
    sys.stdout.write(" ".join(c.hex() for c, _ in batch) + "\n")
    sys.stdout.flush()
"""


def test_kill_during_import_keeps_every_acknowledged_block(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db_path)], stdout=subprocess.PIPE, text=True)
    acked: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 16 * 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            acked.extend(bytes.fromhex(h) for h in line.split())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert len(acked) >= 16 * 40, "writer did not make progress"
    store = BlockStore(open_db(db_path))
    for cid in acked:
        data = store.get(cid)
        assert data is not None
        assert cid_for(data) == cid
    # totals match what is really stored, block by block
    count = 0
    total = 0
    for mh in store.iter_multihashes():
        count += 1
        total += store.size(b"\x01\x55" + mh)
    assert store.stats()["blocks"] == count >= len(acked)
    assert store.stats()["bytes"] == total
