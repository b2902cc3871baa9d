"""The reservation ledger: bytes allocated to peers that their freespace metric does not show yet.

A peer's ``freespace`` metric is published every ``MetricTTL / 2`` seconds, so
pins allocated to it in between are not yet subtracted from it; without a
ledger a burst of large pins would all go to the peer that last announced the
most room. Each allocation with a known size reserves that many bytes on every
*other* allocated peer (this peer measures its own store directly).

Invariants: a reservation counts while it is newer than the peer's latest
freespace metric (``seen <= at``) and younger than ``ttl_ns``; an expired
reservation is dropped from the ledger at the next read. Pure: time comes in
as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Reservations:
    """Bytes reserved per peer since its latest freespace metric (see module docstring)."""

    def __init__(self, me: str, ttl_ns: int) -> None:
        self._me = me
        self._ttl_ns = ttl_ns
        self._entries: list[tuple[str, int, int]] = []  # (peer, bytes, ns)

    def reserve(self, peers: Iterable[str], size: int, now: int) -> None:
        """Reserve ``size`` bytes at time ``now`` on each of ``peers`` (except this peer; 0 bytes: nothing)."""
        if size:
            self._entries.extend((peer, size, now) for peer in peers if peer != self._me)

    def reserved(self, now: int, seen: Callable[[str], int]) -> dict[str, int]:
        """Bytes reserved on each peer and not yet visible in its metric; ``seen(peer)`` is when
        its latest freespace metric was received (0: never). Drops reservations older than the TTL."""
        keep: list[tuple[str, int, int]] = []
        out: dict[str, int] = {}
        for peer, size, at in self._entries:
            if now - at > self._ttl_ns:
                continue
            keep.append((peer, size, at))
            if seen(peer) <= at:
                out[peer] = out.get(peer, 0) + size
        self._entries = keep
        return out

    def __len__(self) -> int:
        """Reservations held (expired ones stay until the next :meth:`reserved`)."""
        return len(self._entries)
