"""cluster/duties.py: exactly one peer acts on each pin (XOR-closest), on expired pins and a gone peer's pins."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from blockstore.cid import cid_for
from cluster.duties import expires_here, repins_here, without_peer, xor_closest
from cluster.pin import Pin

PEERS = ["12D3KooWPeerA", "12D3KooWPeerB", "12D3KooWPeerC", "12D3KooWPeerD"]


def _distance(cid: bytes, peer: str) -> int:
    h = lambda b: int.from_bytes(hashlib.blake2b(b, digest_size=32).digest(), "big")  # noqa: E731
    return h(cid) ^ h(peer.encode())


@given(st.binary(min_size=1, max_size=40), st.permutations(PEERS))
def test_xor_closest_is_the_minimum_distance_whatever_the_order(cid: bytes, peers: list[str]) -> None:
    best = xor_closest(cid, peers)
    assert best == min(PEERS, key=lambda p: (_distance(cid, p), p))
    assert xor_closest(cid, reversed(peers)) == best


def test_xor_closest_without_peers_is_none() -> None:
    assert xor_closest(b"x", []) is None


def test_exactly_one_peer_expires_an_expired_pin() -> None:
    pin = Pin(cid_for(b"expiring"), expire_at=1_000)
    assert sum(expires_here(pin, 1_000, PEERS, me) for me in PEERS) == 1
    assert not any(expires_here(pin, 999, PEERS, me) for me in PEERS)  # not yet
    assert not any(expires_here(Pin(pin.cid), 10**18, PEERS, me) for me in PEERS)  # never expires


def test_exactly_one_peer_repins_and_only_pins_of_the_gone_peer() -> None:
    gone, rest = PEERS[0], PEERS[1:]
    pin = Pin(cid_for(b"placed"), allocations=(gone, PEERS[1]))
    assert sum(repins_here(pin, gone, rest, me) for me in rest) == 1
    other = Pin(cid_for(b"elsewhere"), allocations=(PEERS[2],))
    assert not any(repins_here(other, gone, rest, me) for me in rest)
    assert without_peer(pin, gone).allocations == (PEERS[1],)


def test_pin_is_allocated_to() -> None:
    assert Pin(cid_for(b"everywhere")).is_allocated_to("anyone")
    pin = Pin(cid_for(b"two"), allocations=("a", "b"))
    assert pin.is_allocated_to("a") and not pin.is_allocated_to("c")
