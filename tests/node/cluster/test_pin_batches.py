"""Concurrent pins written together (node/cluster/pinning.py ``Pinning.pin`` over its Coalescer), on a real
CRDT replica: one pinset write per batch, each pin's error its own, pins of a batch see the earlier ones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from blockstore.cid import cid_for
from cluster.allocator import AllocationError
from cluster.crdt.replica import PUT, ReceiveQueueFull
from cluster.monitor import Metric, MetricStore
from cluster.pin import Pin
from cluster.tracker import QueueFull as PinQueueFull
from cluster.trust import TrustedPeers
from node.cluster.membership import Membership
from node.cluster.pinning import Pinning, PinningConfig
from node.cluster.pinset import open_replica
from node.cluster.pintracker import PinTracker
from node.repo import Repo


class ReplicaPinset:
    """The pinset calls Pinning makes, on the repo's real replica (``update_many`` in a worker thread, as the daemon)."""

    def __init__(self, replica: Any) -> None:
        self.replica = replica
        self.writes: list[int] = []  # pins per add_many call

    async def get(self, cid: bytes) -> Pin | None:
        value = self.replica.set.get(cid)
        return Pin.from_cbor(value) if value is not None else None

    async def get_many(self, cids: list[bytes]) -> list[Pin | None]:
        return [await self.get(cid) for cid in cids]

    async def add_many(self, pins: list[Pin]) -> None:
        self.replica.apply_many([(PUT, p.cid, p.to_cbor()) for p in pins], time.monotonic())
        self.writes.append(len(pins))

    async def update_many(self, cids: list[bytes], build: Any) -> None:
        written: list[Pin] = []

        def ops(values: list[bytes | None]) -> list[tuple[int, bytes, bytes]]:
            written.extend(build([Pin.from_cbor(v) if v is not None else None for v in values]))
            return [(PUT, p.cid, p.to_cbor()) for p in written]

        await asyncio.to_thread(self.replica.update_many, cids, ops, time.monotonic())  # as the daemon: off the loop
        self.writes.append(len(written))


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    Repo.init(tmp_path / "repo", profile="test")
    repo = Repo.open(tmp_path / "repo")
    me = repo.config["Cluster"]["PeerID"]
    repo.config["PinTracker"]["MaxPinQueueSize"] = 20
    members = Membership(None, MetricStore(me), TrustedPeers(me, ["*"]), None, peer_id=me, peername="me", ipfs_id="")  # type: ignore[arg-type]
    tracker = PinTracker(repo.db, repo.pins, me, repo.config["PinTracker"], fetch=_never)
    pinset = ReplicaPinset(open_replica(repo, max_queue_size=1000))
    pinning = Pinning(pinset, tracker, members, members.monitor, PinningConfig.from_config(repo.config))  # type: ignore[arg-type]
    expire = time.time_ns() + 600 * 10**9
    for m in (
        Metric("ping", me, "{}", expire),
        Metric("tag:group", me, "default", expire, partitionable=True),
        Metric("freespace", me, str(10**12), expire, weight=10**12),
    ):
        members.monitor.add(m)
    yield pinning, pinset
    repo.close()


async def _never(_pin: Pin, _progress: Any) -> None:
    raise AssertionError("never fetches")


def _pin(n: int, **kw: Any) -> Pin:
    kw.setdefault("replication_factor_min", 1)
    kw.setdefault("replication_factor_max", 1)
    return Pin(cid_for(b"batch pin %d" % n), **kw)


def test_concurrent_pins_make_one_write_and_each_error_is_its_own(cluster: Any) -> None:
    pinning, pinset = cluster

    async def main() -> list[Any]:
        pins = [_pin(i) for i in range(10)]
        pins[3] = _pin(3, replication_factor_min=2, replication_factor_max=2)  # one peer only: cannot be placed
        pins[6] = _pin(6, pin_update=cid_for(b"never pinned"))
        return await asyncio.gather(*(pinning.pin(p) for p in pins), return_exceptions=True)

    results = asyncio.run(main())
    assert pinset.writes == [8]  # one write for the batch, without the two refused pins
    assert isinstance(results[3], AllocationError) and "2 peers needed" in str(results[3])
    assert isinstance(results[6], ValueError) and "is not pinned in the cluster" in str(results[6])
    for i, r in enumerate(results):
        if i not in (3, 6):
            assert isinstance(r, Pin) and r.allocations == (pinning.peer_id,) and r.timestamp > 0
            assert Pin.from_cbor(pinset.replica.set.get(r.cid)) == r
    assert pinset.replica.set.get(_pin(3).cid) is None and pinset.replica.set.get(_pin(6).cid) is None
    assert pinning.counters["pin_add"] == 8 and pinning.counters["pin_add_errors"] == 2
    assert pinning.admitting == 0


def test_pins_of_a_batch_see_the_earlier_ones(cluster: Any) -> None:
    pinning, pinset = cluster
    first = _pin(1, name="first")

    async def main() -> list[Any]:
        return await asyncio.gather(
            pinning.pin(first),
            pinning.pin(_pin(2, pin_update=first.cid)),  # updates from a pin written just before it
            pinning.pin(first.with_(name="again", max_depth=0)),  # a recursive pin cannot become direct
            pinning.pin(first.with_(name="renamed")),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert pinset.writes == [3]
    assert isinstance(results[1], Pin)
    assert isinstance(results[2], ValueError) and "pinned recursively" in str(results[2])
    assert Pin.from_cbor(pinset.replica.set.get(first.cid)).name == "renamed"  # the later write wins


def test_the_queue_limit_holds_inside_one_batch(cluster: Any) -> None:
    pinning, pinset = cluster

    async def main() -> list[Any]:
        return await asyncio.gather(*(pinning.pin(_pin(i)) for i in range(30)), return_exceptions=True)

    results = asyncio.run(main())
    accepted = [r for r in results if isinstance(r, Pin)]
    refused = [r for r in results if isinstance(r, PinQueueFull)]
    assert len(accepted) == 18 and len(refused) == 12  # MaxPinQueueSize 20, the last tenth kept for uploads
    assert results[:18] == accepted  # in submission order
    assert pinset.writes == [18] and pinning.admitting == 0


def test_a_failed_write_fails_the_pins_it_carried_only(cluster: Any) -> None:
    pinning, pinset = cluster
    pinset.replica.max_queue_size = 3  # batching on: the replica's queue refuses a write of 5

    async def main() -> tuple[list[Any], Any]:
        pinset.replica.batching, pinset.replica.max_batch_size = True, 1000
        bad = await asyncio.gather(*(pinning.pin(_pin(i)) for i in range(5)), pinning.pin(_pin(9, replication_factor_min=5, replication_factor_max=5)), return_exceptions=True)
        good = await pinning.pin(_pin(100))  # the next batch is not affected
        return bad, good

    bad, good = asyncio.run(main())
    assert all(isinstance(r, ReceiveQueueFull) for r in bad[:5]), bad
    assert isinstance(bad[5], AllocationError)  # its own error, not the write's
    assert all(pinset.replica.set.get(_pin(i).cid) is None for i in range(5)) and pinset.replica.queued() == 1
    assert isinstance(good, Pin) and pinning.admitting == 0
    assert pinning.counters["pin_add_errors"] == 6 and pinning.counters["pin_add"] == 1


def test_the_view_is_built_once_until_the_metrics_change(cluster: Any) -> None:
    pinning, _pinset = cluster

    async def pin_some(start: int) -> None:
        for i in range(start, start + 5):
            await pinning.pin(_pin(i))

    asyncio.run(pin_some(0))
    assert pinning.views.builds == 1
    expire = time.time_ns() + 600 * 10**9
    pinning.monitor.add(Metric("freespace", pinning.peer_id, str(10**11), expire, weight=10**11))
    asyncio.run(pin_some(10))
    assert pinning.views.builds == 2
    assert pinning.view().metrics["freespace"][0].value == str(10**11)


def test_pin_many_writes_all_or_nothing_in_one_step(cluster: Any) -> None:
    pinning, pinset = cluster
    pins = [_pin(i) for i in range(5)] + [_pin(2, name="second")]  # a CID twice: the second sees the first
    written = asyncio.run(pinning.pin_many(pins))
    assert pinset.writes == [6] and [p.cid for p in written] == [p.cid for p in pins]
    assert Pin.from_cbor(pinset.replica.set.get(_pin(2).cid)).name == "second"
    bad = [_pin(10), _pin(11, replication_factor_min=4, replication_factor_max=4), _pin(12)]
    with pytest.raises(AllocationError, match=r"^bafk\S+: not enough peers"):
        asyncio.run(pinning.pin_many(bad))
    assert all(pinset.replica.set.get(p.cid) is None for p in bad) and pinset.replica.queued() == 0
    assert pinning.admitting == 0 and pinning.counters["pin_add"] == 6 and pinning.counters["pin_add_errors"] == 1
