"""The Kademlia routing table: k-buckets by common prefix length, sans-I/O.

Rules (the kad-dht spec and go-libp2p-kad-dht's behaviour, kubo's DHT):

- Only DHT *servers* enter: the shell adds a peer after it answered one of
  our requests on ``/ipfs/kad/1.0.0`` (a probe after connecting, or a query of
  a lookup). Peers that only send us requests (clients) never enter.
- Bucket ``i`` holds up to ``k`` peers whose point shares exactly ``i`` leading
  bits with ours. A peer for a full bucket waits in that bucket's replacement
  cache (newest first, at most ``k``): long-lived peers are kept, as Kademlia
  prescribes, and a newcomer cannot push them out.
- A peer that fails (a request times out or the stream cannot be opened)
  is removed at once and the newest replacement takes its place
  (``peer_failed``). Peers not heard from for ``stale_after`` seconds are
  reported by ``stale_peers`` so the shell can probe them.
- A bucket not looked up for ``refresh_interval`` seconds is due for refresh
  (``buckets_due``): the shell looks up a random key in it.

Times are passed in (seconds, any monotonic origin); nothing here reads a clock.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .kad_keyspace import KEY_BITS, MAX_REFRESH_CPL, common_prefix_len, kad_point

__all__ = ["K", "TableEntry", "RoutingTable"]

K = 20  #: bucket size and replication parameter (kad-dht spec)


@dataclass(slots=True)
class TableEntry:
    """One peer of the table."""

    peer: bytes  #: binary peer ID
    point: int  #: kad_point(peer)
    added_at: float
    last_seen: float  #: last time it answered us


class RoutingTable:
    """k-buckets around ``local`` (a binary peer ID). See the module docstring for the rules."""

    def __init__(self, local: bytes, *, k: int = K, refresh_interval: float = 600.0, stale_after: float = 600.0) -> None:
        self.local = local
        self.local_point = kad_point(local)
        self.k = k
        self.refresh_interval = refresh_interval
        self.stale_after = stale_after
        self._buckets: list[dict[bytes, TableEntry]] = [{} for _ in range(KEY_BITS + 1)]
        self._replacements: list[dict[bytes, float]] = [{} for _ in range(KEY_BITS + 1)]
        self._index: dict[bytes, int] = {}  # peer -> bucket
        self._refreshed: list[float | None] = [None] * (KEY_BITS + 1)

    # ----------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, peer: bytes) -> bool:
        return peer in self._index

    def peers(self) -> list[bytes]:
        """Every peer in the table."""
        return list(self._index)

    def bucket_of(self, peer: bytes) -> int:
        """The bucket index ``peer`` belongs to (its common prefix length with us)."""
        return common_prefix_len(self.local_point, kad_point(peer))

    def bucket_sizes(self) -> dict[int, int]:
        """Non-empty buckets: {index: peers}."""
        return {i: len(b) for i, b in enumerate(self._buckets) if b}

    def closest(self, point: int, count: int | None = None, *, exclude: bytes | None = None) -> list[bytes]:
        """Up to ``count`` (default k) peers of the table closest to ``point``, nearest first."""
        n = self.k if count is None else count
        entries = (e for b in self._buckets if b for e in b.values() if e.peer != exclude)
        return [e.peer for e in heapq.nsmallest(n, entries, key=lambda e: e.point ^ point)]

    # ----------------------------------------------------------------- updates
    def add(self, peer: bytes, now: float) -> bool:
        """A DHT server answered us: add it (or refresh its last_seen). False if its bucket is full.

        A peer that does not fit waits in the bucket's replacement cache.
        """
        if peer == self.local:
            return False
        idx = self._index.get(peer)
        if idx is not None:
            self._buckets[idx][peer].last_seen = now
            return True
        point = kad_point(peer)
        idx = common_prefix_len(self.local_point, point)
        bucket = self._buckets[idx]
        if len(bucket) < self.k:
            bucket[peer] = TableEntry(peer, point, now, now)
            self._index[peer] = idx
            self._replacements[idx].pop(peer, None)
            return True
        cache = self._replacements[idx]
        cache.pop(peer, None)
        cache[peer] = now
        if len(cache) > self.k:
            del cache[next(iter(cache))]  # the oldest
        return False

    def peer_failed(self, peer: bytes, now: float) -> bytes | None:
        """``peer`` did not answer: remove it, promote the newest replacement; returns the promoted peer."""
        idx = self._index.pop(peer, None)
        if idx is None:
            for cache in self._replacements:
                cache.pop(peer, None)
            return None
        del self._buckets[idx][peer]
        cache = self._replacements[idx]
        if not cache:
            return None
        newest = next(reversed(cache))
        del cache[newest]
        point = kad_point(newest)
        self._buckets[idx][newest] = TableEntry(newest, point, now, now)
        self._index[newest] = idx
        return newest

    def remove(self, peer: bytes) -> bool:
        """Drop ``peer`` (e.g. it switched to client mode); True if it was in the table."""
        idx = self._index.pop(peer, None)
        if idx is None:
            return False
        del self._buckets[idx][peer]
        return True

    # ----------------------------------------------------------------- maintenance
    def stale_peers(self, now: float) -> list[bytes]:
        """Peers not heard from for ``stale_after`` seconds: probe them, then ``add`` or ``peer_failed``."""
        limit = now - self.stale_after
        return [e.peer for b in self._buckets if b for e in b.values() if e.last_seen <= limit]

    def mark_refreshed(self, point: int, now: float) -> None:
        """A lookup of ``point`` completed: its bucket counts as refreshed."""
        self._refreshed[common_prefix_len(self.local_point, point)] = now

    def buckets_due(self, now: float) -> list[int]:
        """Buckets to refresh now: up to one past the deepest non-empty one (at most MAX_REFRESH_CPL),
        not looked up within ``refresh_interval`` seconds."""
        deepest = max((i for i, b in enumerate(self._buckets) if b), default=0)
        top = min(deepest + 1, MAX_REFRESH_CPL)
        due = []
        for i in range(top + 1):
            last = self._refreshed[i]
            if last is None or now - last >= self.refresh_interval:
                due.append(i)
        return due
