"""A 1 GiB ``pinion add`` to a daemon in a 128 MiB memory cgroup, as in a container.

The cgroup holds what the container would: the daemon (the client talks to it
over the RPC API from outside, as ``docker run -p 5001:5001`` allows). The
daemon's default ``Datastore.MemoryBudget`` (0) finds the limit itself. The
data is pseudo-random (one seed), written to disk in 1 MiB pieces and hashed
in-process by the same importer for the expected CID. Skipped, with the
reason, where the machine gives no writable memory cgroup. Slow by nature
(LevelDB rewrites the data while it compacts, through a page cache squeezed
by the limit); ``benchmarks/bench_memory.py`` measures it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from blockstore import importer
from blockstore.cid import cid_to_str
from memcgroup import CgroupUnavailable, make_memory_cgroup
from node_proc import PinionNode

MiB = 1024 * 1024
LIMIT = 128 * MiB
SIZE = 1024 * MiB


class _HashOnly:
    """An importer sink that stores nothing: the CIDs alone."""

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        return len(blocks)


def write_pseudo_random(path: Path, size: int, seed: int = 17) -> None:
    """``size`` pseudo-random bytes, written 1 MiB at a time (never all in memory)."""
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(rng.randbytes(MiB))


@pytest.mark.long  # 3-6 min on 2 cores: LevelDB compaction I/O with almost no page cache
@pytest.mark.timeout(1500)
def test_1gib_add_fits_in_a_128mib_cgroup(tmp_path: Path) -> None:
    try:
        cg = make_memory_cgroup(LIMIT)
    except CgroupUnavailable as exc:
        pytest.skip(f"no writable memory cgroup on this machine: {exc}")
    node = PinionNode(tmp_path / "repo")
    data = tmp_path / "data.bin"
    try:
        node.cli("init", "--profile", "test")
        write_pseudo_random(data, SIZE)
        with open(data, "rb") as fh:
            expected = cid_to_str(importer.import_file(fh, _HashOnly()).cid)
        node.prefix = cg.prefix()
        node.start()
        res = node.cli("add", "-Q", str(data), check=False, timeout=1400)
        alive = node.proc is not None and node.proc.poll() is None
        assert cg.oom_kills() == 0, f"the OOM killer struck in the {LIMIT >> 20} MiB cgroup: {res.stderr.decode()}"
        assert alive, f"the daemon died: {node.log.read_text()[-2000:]}"
        assert res.returncode == 0, res.stderr.decode()
        assert res.stdout.decode().strip() == expected
        assert node.cli("pin", "ls", "--type", "recursive").stdout.decode().split()[0] == expected
    finally:
        node.kill()
        data.unlink(missing_ok=True)
        cg.remove()
