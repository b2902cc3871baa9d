"""The connection manager's decision (node/routing/connmgr.py: pick_trims)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.routing.connmgr import Conn, pick_trims


def test_nothing_trimmed_up_to_the_high_water_mark() -> None:
    conns = [Conn(f"p{i}", opened=0.0) for i in range(10)]
    assert pick_trims(conns, low=5, high=10, grace=0, now=100) == []


def test_trims_down_to_low_least_valuable_and_newest_first() -> None:
    conns = [Conn("old-dht", 0.0, value=1), Conn("old", 0.0), Conn("newer", 50.0), Conn("newest", 60.0), Conn("dht", 70.0, value=1)]
    assert pick_trims(conns, low=2, high=4, grace=0, now=100) == ["newest", "newer", "old"]


def test_grace_period_and_protected_peers_are_kept() -> None:
    conns = [Conn("young", 95.0), Conn("book", 0.0, protected=True), Conn("a", 0.0), Conn("b", 0.0)]
    # 4 > high 3: trim to 1, but only a and b may go
    assert sorted(pick_trims(conns, low=1, high=3, grace=20, now=100)) == ["a", "b"]


conn_lists = st.lists(
    st.builds(Conn, st.text(min_size=1, max_size=4), st.floats(0, 100), st.booleans(), st.integers(0, 3)),
    max_size=40,
    unique_by=lambda c: c.peer,
)


@given(conn_lists, st.integers(0, 20), st.integers(0, 20), st.floats(0, 50))
def test_trim_properties(conns: list[Conn], a: int, b: int, grace: float) -> None:
    low, high = min(a, b), max(a, b)
    now = 100.0
    victims = pick_trims(conns, low, high, grace, now)
    by_peer = {c.peer: c for c in conns}
    assert len(set(victims)) == len(victims)
    if len(conns) <= high:
        assert victims == []
    else:
        # never below low, never a protected or young peer
        assert len(conns) - len(victims) >= low
        for v in victims:
            assert not by_peer[v].protected and now - by_peer[v].opened >= grace
        eligible = [c for c in conns if not c.protected and now - c.opened >= grace]
        assert len(victims) == min(len(eligible), len(conns) - low)
        # every kept eligible peer is at least as valuable as every trimmed one
        kept = [c for c in eligible if c.peer not in victims]
        if victims and kept:
            assert max(by_peer[v].value for v in victims) <= min(c.value for c in kept)
