"""Shared builders for the cluster tests: replicas on their own LevelDB in a temp dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blockstore.cid import cid_for
from blockstore.db import open_db
from blockstore.store import BlockStore
from cluster.crdt import MissingBlock, Replica


class Peer:
    """One replica with its own repo database (closed by :meth:`close`)."""

    def __init__(self, path: Path, peer_id: str = "", **opts: Any) -> None:
        self.path = path
        self.peer_id = peer_id or path.name
        self.opts = opts
        self.db = open_db(path)
        self.blocks = BlockStore(self.db)
        self.replica = Replica(self.db, self.blocks, peer_id=self.peer_id, **opts)

    def reopen(self, **opts: Any) -> None:
        """Close and open again, as a restart does."""
        self.db.close()
        self.opts.update(opts)
        self.db = open_db(self.path)
        self.blocks = BlockStore(self.db)
        self.replica = Replica(self.db, self.blocks, peer_id=self.peer_id, **self.opts)

    def get_block(self, cid: bytes) -> bytes | None:
        """Block getter that other peers use to fetch from this one."""
        return self.blocks.get(cid)

    def send_heads(self, other: Peer) -> int:
        """Deliver this peer's heads to ``other``, fetching deltas from this peer."""
        n = 0
        for head, _height in self.replica.heads():
            n += self.deliver(head, other)
        return n

    def deliver(self, head: bytes, other: Peer) -> int:
        """Deliver one head to ``other``; when deltas were compacted away, bootstrap
        ``other`` from this peer's snapshot first (what the network shell does)."""
        try:
            return other.replica.receive(head, self.peer_id, self.get_block).applied
        except MissingBlock:
            snap = self.replica.latest_snapshot()
            if snap is None:
                raise
            other.replica.load_snapshot(snap, self.get_block)
            return other.replica.receive(head, self.peer_id, self.get_block).applied

    def state(self) -> list[tuple[bytes, bytes]]:
        """The whole set, streamed from disk."""
        return list(self.replica.set.items())

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def key(i: int) -> bytes:
    """A pin CID for test key number ``i``."""
    return cid_for(b"key-%d" % i)
