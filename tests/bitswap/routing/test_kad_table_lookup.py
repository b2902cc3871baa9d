"""Keyspace, routing table and lookup state machine, without any network: properties, and
lookups against a simulated network of many peers (each answering from its own table)."""

from __future__ import annotations

import functools
import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bitswap.routing.kad_keyspace import MAX_REFRESH_CPL, common_prefix_len, kad_point, random_key_in_bucket
from bitswap.routing.kad_lookup import FAILED, QUERIED, Lookup
from bitswap.routing.kad_table import RoutingTable


def pid(i: int) -> bytes:
    return b"\x12\x20" + hashlib.sha256(b"peer%d" % i).digest()


points = st.integers(0, (1 << 256) - 1)


@given(points, points, points)
def test_xor_distance_is_a_metric_and_cpl_is_the_bucket(a: int, b: int, c: int) -> None:
    assert a ^ a == 0 and a ^ b == b ^ a
    assert (a ^ c) <= (a ^ b) + (b ^ c)  # triangle inequality holds for XOR
    cpl = common_prefix_len(a, b)
    assert 0 <= cpl <= 256
    if a != b:
        assert (a >> (255 - cpl)) & 1 != (b >> (255 - cpl)) & 1
        assert a >> (256 - cpl) == b >> (256 - cpl)


def test_random_key_lands_in_the_asked_bucket() -> None:
    local = kad_point(pid(0))
    for cpl in range(0, MAX_REFRESH_CPL + 1, 3):
        assert common_prefix_len(local, kad_point(random_key_in_bucket(local, cpl))) == cpl


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=300, unique=True), points)
@settings(max_examples=50, deadline=None)
def test_table_buckets_hold_at_most_k_and_closest_is_sorted(ids: list[int], target: int) -> None:
    table = RoutingTable(pid(0), k=5)
    for i in ids:
        table.add(pid(i), 1.0)
    for idx, size in table.bucket_sizes().items():
        assert size <= 5
    for p in table.peers():
        assert table.bucket_of(p) == common_prefix_len(table.local_point, kad_point(p))
    closest = table.closest(target, 10)
    dists = [kad_point(p) ^ target for p in closest]
    assert dists == sorted(dists)
    # nothing in the table is closer than the last one returned
    if len(closest) == 10:
        assert all(kad_point(p) ^ target >= dists[-1] for p in table.peers() if p not in closest)


def test_full_bucket_keeps_old_peers_and_a_failure_promotes_the_newest_replacement() -> None:
    table = RoutingTable(pid(0), k=2)
    by_bucket: dict[int, list[bytes]] = {}
    for i in range(1, 400):
        by_bucket.setdefault(table.bucket_of(pid(i)), []).append(pid(i))
    b0 = by_bucket[0][:5]
    assert table.add(b0[0], 1) and table.add(b0[1], 2)
    assert not table.add(b0[2], 3) and not table.add(b0[3], 4)  # full: they wait
    assert set(table.peers()) == {b0[0], b0[1]}
    assert table.add(b0[0], 5)  # a known peer is refreshed, not re-added
    assert table.peer_failed(b0[1], 6) == b0[3]  # the newest replacement
    assert set(table.peers()) == {b0[0], b0[3]}
    assert table.peer_failed(b0[3], 7) == b0[2]
    assert table.peer_failed(b0[2], 8) is None and set(table.peers()) == {b0[0]}
    assert not table.add(pid(0), 9)  # never ourselves


def test_stale_peers_and_buckets_due_for_refresh() -> None:
    table = RoutingTable(pid(0), k=20, refresh_interval=600, stale_after=600)
    for i in range(1, 30):
        table.add(pid(i), 100.0)
    assert table.stale_peers(500.0) == []
    assert sorted(table.stale_peers(700.0)) == sorted(table.peers())
    table.add(pid(1), 650.0)
    assert pid(1) not in table.stale_peers(700.0)
    due = table.buckets_due(1000.0)
    assert due == list(range(len(due))) and due  # never refreshed: all due, from 0
    for cpl in due:
        table.mark_refreshed(kad_point(random_key_in_bucket(table.local_point, cpl)), 1000.0)
    assert table.buckets_due(1500.0) == []
    assert table.buckets_due(1600.0) == due


@functools.lru_cache(maxsize=None)
def sim_network(seed: int) -> "SimNetwork":
    """One simulated network per seed, built once (building it is the slow part)."""
    return SimNetwork(600, 20, seed)


class SimNetwork:
    """Peers that answer FIND_NODE from their own routing table (k closest they know)."""

    def __init__(self, n: int, k: int, seed: int) -> None:
        rng = random.Random(seed)
        self.ids = [pid(i) for i in range(n)]
        self.tables = {}
        for p in self.ids:
            t = RoutingTable(p, k=k)
            for q in rng.sample(self.ids, min(n, 200)):
                t.add(q, 0.0)
            self.tables[p] = t
        self.down: set[bytes] = set(rng.sample(self.ids[1:], n // 10))

    def answer(self, peer: bytes, target: int) -> list[bytes] | None:
        if peer in self.down:
            return None
        return self.tables[peer].closest(target, 20)


def run_lookup(net: SimNetwork, start: bytes, target: int, k: int = 20, alpha: int = 3, order_seed: int = 0) -> Lookup:
    """Drive a lookup with answers arriving in random order; returns it when done."""
    rng = random.Random(order_seed)
    lk = Lookup(target, net.tables[start].closest(target, k), k=k, alpha=alpha, local=start)
    pending: list[bytes] = []
    steps = 0
    while not lk.done:
        pending += lk.next_queries()
        assert lk.in_flight <= alpha
        if not pending:
            break
        peer = pending.pop(rng.randrange(len(pending)))
        closer = net.answer(peer, target)
        if closer is None:
            lk.on_failure(peer)
        else:
            lk.on_response(peer, closer)
        steps += 1
        assert steps < 10_000
    return lk


@given(st.integers(0, 2**32), st.integers(0, 1000))
@settings(max_examples=30, deadline=None)
def test_lookups_converge_on_the_true_k_closest_live_peers(seed: int, order_seed: int) -> None:
    net = sim_network(seed % 3)
    rng = random.Random(seed)
    target = rng.getrandbits(256)
    start = net.ids[0]
    lk = run_lookup(net, start, target, order_seed=order_seed)
    assert lk.done
    live = [p for p in net.ids if p not in net.down and p != start]
    truth = sorted(live, key=lambda p: kad_point(p) ^ target)[:20]
    found = lk.closest()
    assert len(found) == 20
    # every answering peer's state is QUERIED, and the result is sorted by distance
    assert all(lk.state_of(p) == QUERIED for p in found)
    assert [kad_point(p) ^ target for p in found] == sorted(kad_point(p) ^ target for p in found)
    # it finds (nearly) all of the true k closest: each peer knows 200 of 600, so a lookup
    # reaches the true neighbourhood
    assert len(set(found) & set(truth)) >= 18
    # and asked far fewer peers than exist
    assert lk.responses + lk.failures < 200


def test_lookup_terminates_when_every_peer_fails_or_when_stopped() -> None:
    net = SimNetwork(100, 20, 1)
    net.down = set(net.ids[1:])
    lk = run_lookup(net, net.ids[0], 12345)
    assert lk.done and lk.closest() == [] and lk.in_flight == 0
    assert all(lk.state_of(p) == FAILED for p in net.tables[net.ids[0]].closest(12345, 20))
    lk2 = Lookup(1, [pid(i) for i in range(1, 50)], k=20, alpha=10)
    first = lk2.next_queries()
    assert len(first) == 10
    lk2.stop()
    assert lk2.done and lk2.next_queries() == []


def test_lookup_bounds_what_a_lying_peer_can_add() -> None:
    lk = Lookup(0, [pid(1)], k=20, alpha=1, max_peers=100)
    (p,) = lk.next_queries()
    assert lk.on_response(p, [pid(i) for i in range(2, 5000)]) == 20  # only k taken per answer
    for _ in range(20):
        for q in lk.next_queries():
            lk.on_response(q, [pid(i) for i in range(10_000 + q[3] * 100, 10_000 + q[3] * 100 + 50)])
    assert len(lk._state) <= 100
    assert lk.on_response(pid(999_999), [pid(1)]) == 0  # an answer nobody asked for is ignored
