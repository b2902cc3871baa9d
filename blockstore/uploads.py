"""Uploads kept until their cluster pin is settled: durable GC roots for content not (yet) pinned.

Content uploaded through the cluster REST API's ``/add`` is stored without a
local pin: the cluster decides where it is pinned, and the peers allocated to
it fetch it from here. Until that is settled the blocks must survive garbage
collection. The import's journal (see :mod:`blockstore.store`) keeps them while
the upload runs; :meth:`BlockStore.commit <blockstore.store.BlockStore.commit>`
turns the journal into an upload marker ``NS_UPLOADS + root CID -> upload
time (u64 ns)`` in the same write batch, so there is no instant, crash
included, where the blocks are neither journaled nor marked.

The node releases a marker once the cluster pin is settled (see
``ClusterPeer.release_uploads``): the tracker of this peer took the pin over,
every allocated peer reports it pinned, or it was refused or removed.
Garbage collection treats every marker as a recursive root
(:mod:`blockstore.gc`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from .kv import KVStore
from .layout import NS_UPLOADS

_U64 = struct.Struct(">Q")


def marker(cid: bytes, now_ns: int) -> tuple[bytes, bytes]:
    """The (key, value) of the marker of an upload whose root is ``cid``, made at ``now_ns``."""
    return NS_UPLOADS + cid, _U64.pack(now_ns)


class Uploads:
    """The upload markers of one repo."""

    def __init__(self, db: KVStore) -> None:
        self._db = db

    def has(self, cid: bytes) -> bool:
        """Whether an upload with root ``cid`` is kept."""
        return self._db.get(NS_UPLOADS + cid) is not None

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        """Every (root CID, upload time in unix ns), streamed from disk."""
        return self.scan()

    def scan(self, after: bytes | None = None) -> Iterator[tuple[bytes, int]]:
        """(root CID, upload time in unix ns) in CID order, from the first CID above ``after``."""
        n = len(NS_UPLOADS)
        if after is None:
            it = self._db.iterator(prefix=NS_UPLOADS)
        else:
            it = self._db.iterator(start=NS_UPLOADS + after, include_start=False, stop=NS_UPLOADS[:-1] + b"0")
        with it:
            for key, value in it:
                yield key[n:], _U64.unpack(value)[0]

    def release(self, cids: Iterable[bytes]) -> None:
        """Forget the markers of ``cids`` (their blocks become garbage unless something else keeps them)."""
        with self._db.write_batch(sync=True) as wb:
            for cid in cids:
                wb.delete(NS_UPLOADS + cid)
