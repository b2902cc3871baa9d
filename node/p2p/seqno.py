"""The pubsub sequence-number floor of a host, remembered across restarts in the repo's LevelDB.

Gossipsub peers drop a message whose (sender, seqno) they have seen recently, so
a peer must never reuse a sequence number, also after a restart or a clock step
back. ``compat.use_monotonic_seqnos`` starts each run above this floor and
moves the floor ahead before a run could reach it.

Key: ``NS_NODE + b"pubsub-seqno/" + <host name>``; value: the floor, decimal ASCII.
"""

from __future__ import annotations

from blockstore.kv import KVStore
from blockstore.layout import NS_NODE

SEQNO_PREFIX = NS_NODE + b"pubsub-seqno/"


class SeqnoFloor:
    """One host's persisted seqno floor: every seqno it ever used is below it."""

    def __init__(self, db: KVStore, host_name: str) -> None:
        if not host_name or "/" in host_name:
            raise ValueError(f"seqno floor host name must be non-empty without '/': {host_name!r}")
        self._db = db
        self._key = SEQNO_PREFIX + host_name.encode()

    def get(self) -> int:
        """The stored floor (0 when none or unreadable)."""
        raw = self._db.get(self._key)
        try:
            return int(raw) if raw else 0
        except ValueError:
            return 0

    def set(self, floor: int) -> None:
        """Store ``floor`` durably (synced: it must survive a crash that follows)."""
        self._db.put(self._key, str(int(floor)).encode(), sync=True)
