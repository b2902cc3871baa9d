"""The provide queue's exclusion hook: blocks of the cluster pinset are never announced to the network.

The CRDT's deltas and snapshot blocks live in the shared block store (so bitswap can serve them
to other cluster peers), and the replica marks each one under ``c/k/<cid>`` (``layout.BLOCK``;
the same marks keep them from garbage collection). Announcing them on the public DHT would
let anyone fetch the whole pinset, so :func:`crdt_exclusion` gives the provide queue
(``bitswap/routing/provide_queue.py``) a ``exclude(multihash)`` check against those marks.
Every CRDT block is a CIDv1 DAG-CBOR block, so the CID is rebuilt from the multihash.
"""

from __future__ import annotations

from collections.abc import Callable

from blockstore.cid import DAG_CBOR, make_cid
from blockstore.kv import KVStore

from . import layout as L

__all__ = ["crdt_exclusion"]


def crdt_exclusion(db: KVStore) -> Callable[[bytes], bool]:
    """``exclude(multihash) -> bool``: True for a block of the cluster's CRDT (one LevelDB point read)."""

    def exclude(mh: bytes) -> bool:
        return db.get(L.BLOCK + make_cid(1, DAG_CBOR, mh)) is not None

    return exclude
