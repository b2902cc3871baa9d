"""The pinset service's compaction rounds: a live peer that has not merged the snapshot a
round would compact to puts the compaction off (it would lose deltas it is still fetching),
for at most ``COMPACTION_MAX_WAIT``; a stopped peer does not (it loads the snapshot).

The replicas are real (LevelDB in a temp dir); the cluster host is replaced by the two
things a round reads from it: the peers on the topic and the heads messages they sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from node.cluster import pinset as pinset_mod
from node.cluster.pinset import PinsetService, encode_heads
from node.p2p.service import Subscription

from ...cluster.crdt.helpers import Peer, key


class _Host:
    """The cluster host as a compaction round sees it: who is on the topic."""

    def __init__(self) -> None:
        self.on_topic: list[str] = []
        self.cluster = SimpleNamespace(topic_peers=lambda _topic: list(self.on_topic))

    async def run_in_libp2p(self, fn: Any, *args: Any) -> Any:
        return await fn(*args)


def _heads(p: Peer) -> list[bytes]:
    return [cid for cid, _h in p.replica.heads()]


async def _hear(svc: PinsetService, sender: str, heads: list[bytes]) -> None:
    """Deliver one heads message from ``sender`` through the service's receive loop."""
    sub = Subscription(svc.topic, 10)
    sub.queue.put_nowait((sender, encode_heads(heads, None)))
    task = asyncio.create_task(svc._receive_loop(sub))
    while not sub.queue.empty() or svc._sync_tasks:
        await asyncio.sleep(0.01)
    task.cancel()


@pytest.fixture
def cluster(tmp_path: Path):
    made = [Peer(tmp_path / n, peer_id=n, trusted_peers=["*"]) for n in ("a", "b")]
    yield made
    for p in made:
        p.close()


def _write(p: Peer, start: int, n: int = 5) -> None:
    for i in range(start, start + n):
        p.replica.put(key(i), b"v%d" % i)


def test_a_live_peer_behind_puts_compaction_off_until_its_heads_merge_the_snapshot(cluster) -> None:
    a, b = cluster
    host = _Host()
    svc = PinsetService(a.replica, a.blocks, host, cluster_name="t", snapshot_min_deltas=1)  # type: ignore[arg-type]

    async def run() -> None:
        a.replica.put(key(100), b"first")
        oldest = _heads(a)[0]
        _write(a, 0)
        first = await svc.snapshot_round()
        assert first is not None  # nothing to compact to yet
        _write(a, 5)
        host.on_topic = ["a", "b"]  # b is live and has not told us anything yet
        assert await svc.snapshot_round() is None
        await _hear(svc, "b", _heads(b))  # b's heads: an empty replica
        assert await svc.snapshot_round() is None
        assert svc.counters["deltas_compacted"] == 0 and a.blocks.has(oldest)
        a.send_heads(b)  # b catches up by deltas and says so
        await _hear(svc, "b", _heads(b))
        assert await svc.snapshot_round() is not None
        assert svc.counters["deltas_compacted"] > 0 and not a.blocks.has(oldest)

    asyncio.run(run())


def test_a_stopped_peer_does_not_put_compaction_off_and_a_lagging_one_only_for_a_while(cluster, monkeypatch) -> None:
    a, _b = cluster
    host = _Host()
    svc = PinsetService(a.replica, a.blocks, host, cluster_name="t", snapshot_min_deltas=1)  # type: ignore[arg-type]

    async def run() -> None:
        _write(a, 0)
        await svc.snapshot_round()
        _write(a, 5)
        host.on_topic = ["a"]  # b stopped: not on the topic
        assert await svc.snapshot_round() is not None
        assert svc.counters["deltas_compacted"] > 0
        compacted = svc.counters["deltas_compacted"]
        _write(a, 10)
        host.on_topic = ["a", "b"]  # b is back but far behind
        assert await svc.snapshot_round() is None
        monkeypatch.setattr(pinset_mod, "COMPACTION_MAX_WAIT", 0.0)
        assert await svc.snapshot_round() is not None  # waited long enough: b will load the snapshot
        assert svc.counters["deltas_compacted"] > compacted

    asyncio.run(run())


def test_a_round_without_enough_new_deltas_still_compacts_to_the_previous_snapshot(cluster) -> None:
    a, _b = cluster
    host = _Host()
    svc = PinsetService(a.replica, a.blocks, host, cluster_name="t", snapshot_min_deltas=5)  # type: ignore[arg-type]

    async def run() -> None:
        _write(a, 0)
        first = await svc.snapshot_round()
        assert first is not None and svc.counters["deltas_compacted"] == 0
        a.replica.put(key(50), b"one more")  # too few for a snapshot of its own
        assert await svc.snapshot_round() is None
        assert svc.counters["deltas_compacted"] > 0 and svc.counters["snapshots"] == 1
        assert a.replica.latest_snapshot() == first
        compacted = svc.counters["deltas_compacted"]
        assert await svc.snapshot_round() is None  # nothing left to do
        assert svc.counters["deltas_compacted"] == compacted

    asyncio.run(run())
