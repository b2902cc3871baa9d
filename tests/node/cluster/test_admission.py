"""The cluster peer's allocation view (node/cluster/pinning.py) (no network): untrusted peers' metrics and full pin queues.

A lying peer cannot win allocations by announcing huge free space unless the
operator opts in, nor block pins by announcing a full queue: it is only left
out. This peer's queue is counted exactly, other peers' from their pinqueue metric."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from blockstore.cid import cid_for
from cluster.monitor import Metric, MetricStore
from cluster.pin import Pin
from cluster.tracker import QueueFull
from cluster.trust import TrustedPeers
from node.cluster.membership import Membership
from node.cluster.pinning import Pinning, PinningConfig
from node.cluster.pintracker import PinTracker
from node.repo import Repo

TRUSTED, UNTRUSTED = "12D3KooWTrustedPeerTrustedPeerTrustedPeerTrusted", "12D3KooWUntrustedUntrustedUntrustedUntrustedAa"


@pytest.fixture
def peer(tmp_path: Path) -> Any:
    Repo.init(tmp_path / "repo", profile="test")
    repo = Repo.open(tmp_path / "repo")
    me = repo.config["Cluster"]["PeerID"]
    repo.config["Cluster"]["TrustedPeers"] = [me, TRUSTED]
    repo.config["PinTracker"]["MaxPinQueueSize"] = 20
    trust = TrustedPeers(me, repo.config["Cluster"]["TrustedPeers"])
    members = Membership(None, MetricStore(me), trust, None, peer_id=me, peername="me", ipfs_id="")  # type: ignore[arg-type]
    tracker = PinTracker(repo.db, repo.pins, me, repo.config["PinTracker"], fetch=_never)
    yield Pinning(None, tracker, members, members.monitor, PinningConfig.from_config(repo.config))  # type: ignore[arg-type]
    repo.close()


async def _never(_pin: Pin, _progress: Any) -> None:
    raise AssertionError("allocation never fetches")


def _announce(cp: Pinning, peer: str, free: int, queue: int) -> None:
    expire = time.time_ns() + 60 * 10**9
    for m in (
        Metric("ping", peer, "{}", expire),
        Metric("tag:group", peer, "default", expire, partitionable=True),
        Metric("freespace", peer, str(free), expire, weight=free),
        Metric("pinqueue", peer, str(queue), expire, weight=-queue),
    ):
        cp.monitor.add(m)


def _pin(n: int, r: int = 1) -> Pin:
    return Pin(cid_for(b"pin %d" % n), replication_factor_min=r, replication_factor_max=r)


def test_untrusted_metrics_and_full_queues_are_left_out(peer: Pinning) -> None:
    me = peer.peer_id
    _announce(peer, me, 10**9, 0)
    _announce(peer, TRUSTED, 10**12, 0)
    _announce(peer, UNTRUSTED, 10**16, 0)
    assert peer.allocate(_pin(1), None, None) == [TRUSTED]  # the most free space among the trusted
    untrusting = Pinning(None, peer._tracker, peer._members, peer.monitor, replace(peer.config, allow_untrusted=True))  # type: ignore[arg-type]
    assert untrusting.allocate(_pin(1), None, None) == [UNTRUSTED]

    # the trusted peer's queue is full (18 of 20: only uploads may take the last 2 places)
    _announce(peer, TRUSTED, 10**12, 18)
    assert peer.allocate(_pin(2), None, None) == [me]
    # an existing allocation stays where it is: a re-pin is no new queue entry
    assert peer.allocate(_pin(2), Pin(_pin(2).cid, allocations=(TRUSTED,)), None) == [TRUSTED]
    # two copies need both trusted peers: 429, not 400
    with pytest.raises(QueueFull, match=r"pin queue is full on 12D3KooWTrusted\S* \(18 queued\); PinTracker.MaxPinQueueSize is 20"):
        peer.allocate(_pin(3, r=2), None, None)
    # this peer's own queue: counted exactly; an upload may use the reserved places
    peer.admitting = 18
    with pytest.raises(QueueFull):
        peer.allocate(_pin(4), None, None)
    assert peer.allocate(_pin(4), None, None, upload=True) == [me]
    with pytest.raises(QueueFull):
        peer.admit_local_pin()  # the kubo RPC's pin/add
    peer.admitting = 0
    peer.admit_local_pin()

    # pins for every peer: a full trusted queue refuses them; an untrusted peer's metric cannot
    everywhere = Pin(cid_for(b"everywhere"))
    with pytest.raises(QueueFull):
        peer.allocate(everywhere, None, None)
    assert peer.allocate(everywhere, everywhere, None) == []  # a re-pin (new name, metadata): no new entry
    _announce(peer, TRUSTED, 10**12, 0)
    _announce(peer, UNTRUSTED, 10**16, 10**6)
    assert peer.allocate(everywhere, None, None) == []
