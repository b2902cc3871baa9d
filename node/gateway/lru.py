"""A least-recently-used map bounded by its number of entries and by the bytes they are counted for.

Both of the gateway's caches (:mod:`node.gateway.nodecache`, :mod:`node.gateway.answers`) are
this map: each value is put with its cost in bytes; a value costing more than ``max_bytes`` is
not kept, and putting one evicts the least recently used entries until both bounds hold again.
So whatever a client asks for, a cache holds at most ``max_entries`` values and ``max_bytes``
bytes of them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

__all__ = ["SizedLRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    """A least-recently-used map bounded by entries and bytes (module docstring)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: bytes the kept values are counted for
        self.bytes = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[K]:
        """The keys, least recently used first."""
        return list(self._entries)

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, cost: int) -> None:
        """Keep ``value`` under ``key`` (counted as ``cost`` bytes) unless it alone is over the byte
        bound or ``key`` is already kept; evict the least recently used until the bounds hold."""
        if cost > self.max_bytes or key in self._entries:
            return
        self._entries[key] = (value, cost)
        self.bytes += cost
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _key, (_value, old) = self._entries.popitem(last=False)
            self.bytes -= old
