"""cluster/allocator.py: IPFS Cluster's allocation rules, the balanced order, and our size accounting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockstore.cid import cid_for
from cluster.allocator import AllocationError, allocate, balanced_order
from cluster.monitor import Metric

CID = cid_for(b"allocate me")
BY = ["tag:group", "freespace"]
GiB = 2**30


def _metrics(peers: dict[str, tuple[str, int]], queue: dict[str, int] | None = None) -> dict[str, list[Metric]]:
    """peer -> (group, free bytes)."""
    out: dict[str, list[Metric]] = {
        "tag:group": [Metric("tag:group", p, g, 10**19, partitionable=True) for p, (g, _f) in peers.items()],
        "freespace": [Metric("freespace", p, str(f), 10**19, valid=f > 0, weight=f) for p, (_g, f) in peers.items()],
    }
    if queue is not None:
        out["pinqueue"] = [Metric("pinqueue", p, str(q), 10**19, weight=-q) for p, q in queue.items()]
    return out


CLUSTER = {
    "a1": ("a", 5 * GiB),
    "a2": ("a", 9 * GiB),
    "b1": ("b", 7 * GiB),
    "b2": ("b", 1 * GiB),
    "c1": ("c", 2 * GiB),
}


def _alloc(rmin: int, rmax: int, metrics: dict[str, list[Metric]] | None = None, **kw: object) -> list[str]:
    kw.setdefault("current", [])
    kw.setdefault("priority", [])
    return allocate(CID, rmin=rmin, rmax=rmax, metrics=metrics or _metrics(CLUSTER), allocate_by=kw.pop("by", BY), **kw)  # type: ignore[arg-type]


def test_everywhere_is_no_allocation() -> None:
    assert _alloc(-1, -1) == []


def test_replicas_go_to_different_groups_most_free_space_first() -> None:
    # group totals: a = 14 GiB, b = 8 GiB, c = 2 GiB; in each group the peer with most space
    assert _alloc(2, 2) == ["a2", "b1"]
    assert _alloc(3, 3) == ["a2", "b1", "c1"]
    assert _alloc(4, 5) == ["a2", "b1", "c1", "a1", "b2"]


def test_freespace_only_orders_by_space() -> None:
    assert _alloc(2, 3, by=["freespace"]) == ["a2", "b1", "a1"]


def test_shortest_queue_breaks_ties_when_asked_for() -> None:
    m = _metrics({"x": ("g", GiB), "y": ("g", GiB), "z": ("g", GiB)}, queue={"x": 50, "y": 0, "z": 7})
    assert _alloc(2, 2, m, by=["tag:group", "pinqueue", "freespace"]) == ["y", "z"]


def test_user_allocations_come_first() -> None:
    assert _alloc(2, 2, priority=["c1"]) == ["c1", "a2"]
    assert _alloc(1, 1, priority=["b2", "c1"]) == ["c1"]  # ordered among themselves by the balanced rule, as upstream


def test_valid_current_allocations_are_kept_and_topped_up() -> None:
    assert _alloc(2, 3, current=["c1", "b2"]) == ["c1", "b2"]  # already >= rmin: unchanged
    assert _alloc(3, 3, current=["c1", "gone"]) == ["c1", "a2", "b1"]  # a peer without metrics is dropped
    assert _alloc(1, 1, current=["c1", "b2"]) == ["c1"]  # above rmax: trimmed


def test_blacklisted_and_invalid_peers_are_never_chosen() -> None:
    m = _metrics({**CLUSTER, "full": ("c", 0)})
    assert "full" not in _alloc(5, 6, m)
    assert "a2" not in _alloc(2, 2, blacklist=["a2"])
    assert _alloc(1, 1, current=["a2"], blacklist=["a2"]) == ["b1"]


def test_too_few_peers_is_a_clear_error() -> None:
    """It says how many peers are needed, how many exist and why the others cannot take it."""
    with pytest.raises(AllocationError, match=r"6 peers needed \(replication factor min 6\), 5 can take it; the cluster has 5 peers$"):
        _alloc(6, 6)
    # a peer already holding it counts among those that can; the peer set size comes from the caller
    with pytest.raises(AllocationError, match=r"100 peers needed .*, 5 can take it; the cluster has 7 peers$"):
        _alloc(100, 100, current=["a1"], peerset=7)
    m = _metrics({**CLUSTER, "full": ("c", 0)})
    with pytest.raises(AllocationError, match=r"4 can take it; the cluster has 6 peers, 1 of them untrusted, 1 without valid metrics"):
        _alloc(5, 5, m, excluded={"b2": "untrusted"})
    with pytest.raises(AllocationError, match=r"1 of them untrusted, 2 of them with a full pin queue$"):
        _alloc(5, 5, excluded={"b2": "untrusted", "a1": "with a full pin queue", "a2": "with a full pin queue"})
    with pytest.raises(AllocationError, match=r"1 of them excluded, 3 without room for"):
        _alloc(2, 2, size=6 * GiB, blacklist=["a2"])
    # a peer re-allocated away from that already left the peer set is not one "of them"
    with pytest.raises(AllocationError, match=r"6 peers needed .*, 5 can take it; the cluster has 5 peers$"):
        _alloc(6, 6, blacklist=["gone"])


def test_excluded_peers_are_never_chosen_nor_kept() -> None:
    assert _alloc(1, 1, excluded={"a2": "untrusted"}) == ["b1"]
    assert _alloc(1, 1, current=["a2"], excluded={"a2": "untrusted"}) == ["b1"]
    assert _alloc(1, 1, priority=["a2"], excluded={"a2": "untrusted"}) == ["b1"]


def test_a_known_size_excludes_peers_without_room() -> None:
    assert _alloc(2, 2, size=6 * GiB) == ["a2", "b1"]
    # a2 already got 4 GiB since its last metric: only b1 has 6 GiB left
    assert _alloc(1, 2, size=6 * GiB, reserved={"a2": 4 * GiB}) == ["b1"]
    with pytest.raises(AllocationError, match="without room for"):
        _alloc(3, 3, size=6 * GiB)
    assert _alloc(1, 1, size=None) == ["a2"]


def test_invalid_factors_are_refused() -> None:
    with pytest.raises(AllocationError):
        _alloc(3, 2)


# ---------------------------------------------------------------- properties
peer_names = st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=4), min_size=1, max_size=12, unique=True)


@st.composite
def clusters(draw: st.DrawFn) -> dict[str, tuple[str, int]]:
    names = draw(peer_names)
    return {p: (draw(st.sampled_from("xyzw")), draw(st.integers(min_value=0, max_value=100))) for p in names}


@given(clusters(), st.integers(min_value=1, max_value=8), st.integers(min_value=0, max_value=4), st.data())
def test_allocation_properties(cluster: dict[str, tuple[str, int]], rmin: int, extra: int, data: st.DataObject) -> None:
    rmax = rmin + extra
    names = sorted(cluster)
    current = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    blacklist = data.draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    metrics = _metrics(cluster)
    valid = [p for p, (_g, f) in cluster.items() if f > 0 and p not in blacklist]
    try:
        out = allocate(CID, rmin=rmin, rmax=rmax, current=current, priority=[], metrics=metrics, allocate_by=BY, blacklist=blacklist)
    except AllocationError:
        assert len(valid) < rmin  # only when there were not enough usable peers
        return
    assert len(out) == len(set(out))  # no duplicates
    assert not set(out) & set(blacklist)
    assert set(out) <= set(valid)
    kept = [p for p in current if p in valid]
    if len(kept) >= rmin:
        assert out == kept[:rmax]
    else:
        assert out[: len(kept)] == kept  # valid current allocations kept, first
        assert rmin <= len(out) <= rmax


@given(clusters(), st.integers(min_value=1, max_value=4))
def test_new_replicas_spread_over_tag_groups(cluster: dict[str, tuple[str, int]], r: int) -> None:
    groups = {g for p, (g, f) in cluster.items() if f > 0}
    if r > len(groups):
        return
    try:
        out = _alloc(r, r, _metrics(cluster))
    except AllocationError:
        return
    assert len({cluster[p][0] for p in out}) == len(out)  # every copy in a different group


def test_balanced_order_of_nothing() -> None:
    assert balanced_order([], BY, {}) == []
