"""cluster/prepare.py's cached view: ViewCache invalidation, and the allocation memo equals allocating afresh."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.cid import cid_for
from cluster.allocator import AllocationError
from cluster.monitor import Metric, MetricStore
from cluster.pin import Pin
from cluster.prepare import AllocationView, Placement, ViewCache, allocations
from cluster.trust import TrustedPeers

PEERS = ["me", "p1", "p2", "p3", "p4", "p5"]
RULES = Placement(me="me", max_queue=20, is_trusted=TrustedPeers("me", ["*"]).is_trusted)


def _view(free: dict[str, int], tags: dict[str, str], queues: dict[str, int], untrusted: set[str]) -> AllocationView:
    expire = time.time_ns() + 60 * 10**9
    metrics = {
        "tag:group": [Metric("tag:group", p, tags[p], expire, partitionable=True) for p in free],
        "freespace": [Metric("freespace", p, str(f), expire, weight=f) for p, f in free.items()],
    }
    return AllocationView(set(free), ["tag:group", "freespace"], metrics, {}, set(untrusted), dict(queues))


def _outcome(pin: Pin, existing: Pin | None, view: AllocationView, **kw: object) -> object:
    try:
        return ("ok", allocations(pin, existing, view, RULES, **kw))  # type: ignore[arg-type]
    except AllocationError as exc:
        return (type(exc).__name__, str(exc))


views = st.builds(
    lambda peers, free, tags, queues, untrusted: _view(
        {p: free[i] for i, p in enumerate(peers)},
        {p: tags[i] for i, p in enumerate(peers)},
        {p: queues[i] for i, p in enumerate(peers)},
        set(untrusted) & set(peers),
    ),
    st.lists(st.sampled_from(PEERS), min_size=1, max_size=6, unique=True),
    st.lists(st.integers(0, 10**6), min_size=6, max_size=6),
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=6, max_size=6),
    st.lists(st.integers(0, 20), min_size=6, max_size=6),
    st.lists(st.sampled_from(PEERS), max_size=3),
)
replication = st.sampled_from([(1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (1, 6), (6, 6), (-1, -1)])


@settings(max_examples=300, deadline=None)
@given(
    view=views,
    pins=st.lists(
        st.tuples(
            replication,
            st.lists(st.sampled_from(PEERS), max_size=2),  # current allocations
            st.lists(st.sampled_from(PEERS), max_size=2),  # user allocations
            st.sampled_from([None, 0, 500, 10**7]),  # size
            st.lists(st.sampled_from(PEERS), max_size=1),  # blacklist
            st.booleans(),  # upload
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_memoized_allocations_equal_fresh_ones(view: AllocationView, pins: list) -> None:
    """Whatever the pins, allocating through a view with a memo (warm after the first pins)
    gives the same peers, or the same error, as allocating from scratch."""
    cached = view._replace(memo={})
    for n, ((rmin, rmax), current, users, size, blacklist, upload) in enumerate(pins):
        cid = cid_for(b"pin %d" % n)
        pin = Pin(cid, replication_factor_min=rmin, replication_factor_max=rmax, user_allocations=tuple(users))
        existing = Pin(cid, allocations=tuple(current)) if current else None
        kw = {"size": size, "blacklist": tuple(blacklist), "upload": upload}
        assert _outcome(pin, existing, cached, **kw) == _outcome(pin, existing, view, **kw)
        # twice: the second answer comes from the memo when the pin is plain
        assert _outcome(pin, existing, cached, **kw) == _outcome(pin, existing, view, **kw)


def test_memo_is_used_for_plain_pins_only_and_is_bounded() -> None:
    view = _view({"me": 10, "p1": 100}, {"me": "a", "p1": "b"}, {}, set())._replace(memo={})
    pin = Pin(cid_for(b"x"), replication_factor_min=1, replication_factor_max=1)
    assert allocations(pin, None, view, RULES) == ["p1"]
    assert len(view.memo or {}) == 1
    allocations(pin, None, view, RULES, size=5)  # sized: placed on its own
    allocations(pin.with_(user_allocations=("me",)), None, view, RULES)
    assert len(view.memo or {}) == 1
    for r in range(1, 400):
        try:
            allocations(Pin(cid_for(b"x"), replication_factor_min=1, replication_factor_max=r), None, view, RULES)
        except AllocationError:
            pass
    assert 0 < len(view.memo or {}) <= 256


def test_view_cache_misses_on_a_new_key_and_after_expiry() -> None:
    cache = ViewCache()
    base = _view({"me": 1}, {"me": "a"}, {}, set())
    assert cache.get(("v", 1), 0) is None
    kept = cache.put(("v", 1), base, until=100)
    assert kept.memo == {} and base.memo is None
    assert cache.get(("v", 1), 99) is kept
    assert cache.get(("v", 1), 100) is None  # a metric it read expired
    assert cache.get(("v", 2), 50) is None  # the metrics changed
    cache.put(("v", 2), base, until=None)
    assert cache.get(("v", 2), 10**30) is not None  # nothing expires
    cache.clear()
    assert cache.get(("v", 2), 0) is None
    assert cache.builds == 2


def test_metric_store_version_and_next_expiry() -> None:
    store = MetricStore("me")
    v0 = store.version
    assert store.next_expiry(0) is None
    assert store.add(Metric("freespace", "p1", "5", 1000))
    assert store.add(Metric("ping", "p1", "{}", 700))
    assert store.version == v0 + 2
    assert not store.add(Metric("freespace", "p1", "5", 900))  # older: ignored, no change
    assert store.version == v0 + 2
    assert store.next_expiry(0) == 700
    assert store.next_expiry(700) == 1000  # the ping expired: the next change is the freespace metric
    assert store.next_expiry(1000) is None
    store.forget("p1")
    assert store.version == v0 + 3
