"""cluster/reservations.py: bytes reserved on peers until their freespace metric shows them, for at most the TTL."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cluster.reservations import Reservations

ME, A, B = "me", "peer-a", "peer-b"
S = 10**9  # ns per second


def test_reservations_count_until_a_newer_metric_or_the_ttl() -> None:
    ledger = Reservations(ME, ttl_ns=600 * S)
    ledger.reserve([ME, A, B], 100, now=10 * S)  # this peer measures its own store: not reserved
    ledger.reserve([A], 50, now=20 * S)
    never = lambda _peer: 0  # noqa: E731
    assert ledger.reserved(30 * S, never) == {A: 150, B: 100}
    # A's freespace metric received at 15 s covers the first reservation, not the second
    assert ledger.reserved(30 * S, lambda p: 15 * S if p == A else 0) == {A: 50, B: 100}
    # past the TTL every reservation is dropped from the ledger
    assert ledger.reserved(700 * S, never) == {}
    assert len(ledger) == 0


def test_zero_size_reserves_nothing() -> None:
    ledger = Reservations(ME, ttl_ns=S)
    ledger.reserve([A], 0, now=0)
    assert len(ledger) == 0 and ledger.reserved(0, lambda _p: 0) == {}


@given(st.lists(st.tuples(st.sampled_from([ME, A, B]), st.integers(1, 10**12), st.integers(0, 1000)), max_size=30),
       st.integers(0, 2000))
def test_reserved_is_the_sum_of_live_unseen_reservations(entries: list[tuple[str, int, int]], now_s: int) -> None:
    ledger = Reservations(ME, ttl_ns=600 * S)
    for peer, size, at in entries:
        ledger.reserve([peer], size, now=at * S)
    seen = {A: 500 * S}
    expect: dict[str, int] = {}
    for peer, size, at in entries:
        if peer != ME and now_s * S - at * S <= 600 * S and seen.get(peer, 0) <= at * S:
            expect[peer] = expect.get(peer, 0) + size
    assert ledger.reserved(now_s * S, lambda p: seen.get(p, 0)) == expect
