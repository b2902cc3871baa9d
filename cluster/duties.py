"""Who acts alone, and on which pins: expiry and re-allocation of a gone peer's pins.

Some changes to the pinset must be made by exactly one peer, or every peer
would write the same change (IPFS Cluster's rule): the peer whose
blake2b-256 hash of its peer ID is XOR-closest to the hash of the CID, among
the trusted peers of the peer set, acts; the others leave it. Every peer
computes the same answer from the same peer set, so no coordination is
needed; two peers with different views may both act, which the CRDT merges.

Pure: pins, peer lists and time come in as arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .pin import Pin


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=32).digest(), "big")


def xor_closest(cid: bytes, peers: Iterable[str]) -> str | None:
    """The peer whose blake2b-256 hash is XOR-closest to the CID's (ties: the smaller peer ID); None without peers."""
    target = _hash(cid)
    best: tuple[int, str] | None = None
    for peer in peers:
        distance = target ^ _hash(peer.encode())
        if best is None or (distance, peer) < best:
            best = (distance, peer)
    return best[1] if best else None


def expires_here(pin: Pin, now: int, peers: Iterable[str], me: str) -> bool:
    """Whether ``me`` removes ``pin`` now: its ``expire_at`` (ns) passed and ``me`` is XOR-closest among ``peers``."""
    return bool(pin.expire_at) and pin.expire_at <= now and xor_closest(pin.cid, peers) == me


def repins_here(pin: Pin, gone: str, peers: Iterable[str], me: str) -> bool:
    """Whether ``me`` re-allocates ``pin`` away from ``gone``: it is allocated there and ``me`` is
    XOR-closest among ``peers`` (the trusted peers of the peer set, without ``gone``)."""
    return gone in pin.allocations and xor_closest(pin.cid, peers) == me


def without_peer(pin: Pin, gone: str) -> Pin:
    """``pin`` with ``gone`` taken out of its allocations (the allocator tops them up again)."""
    return pin.with_(allocations=tuple(p for p in pin.allocations if p != gone))
