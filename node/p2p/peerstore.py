"""Known peer addresses, remembered across restarts in the repo's LevelDB.

Keys: ``NS_NODE + b"peers/" + <host name> + b"/" + <peer ID>``; value: the
peer's dialable multiaddrs (without ``/p2p/``), newline-separated, most recent
first. Each host (``swarm``, ``cluster``) keeps its own list.

Addresses come from our own dials (``remember``) and from what a connected
peer announces over identify (``learn``): a peer that comes back on a new
address replaces the stale one, so its peers stop redialling where it was.
"""

from __future__ import annotations

from blockstore.kv import KVStore
from blockstore.layout import NS_NODE

PEERS_PREFIX = NS_NODE + b"peers/"
MAX_ADDRS_PER_PEER = 8  #: addresses kept per peer (oldest dropped)
MAX_LEARNT_PEERS = 1024  #: peers ``learn`` adds on its own (peers already known are always updated)


class PeerBook:
    """The known peers of one host, persisted in LevelDB; safe to call from any thread."""

    def __init__(self, db: KVStore, host_name: str) -> None:
        if not host_name or "/" in host_name:
            raise ValueError(f"peer book host name must be non-empty without '/': {host_name!r}")
        self._db = db
        self._prefix = PEERS_PREFIX + host_name.encode() + b"/"

    def _key(self, peer_id: str) -> bytes:
        if not peer_id or "/" in peer_id:
            raise ValueError(f"invalid peer ID: {peer_id!r}")
        return self._prefix + peer_id.encode()

    def remember(self, peer_id: str, addr: str) -> None:
        """Record that ``peer_id`` was reached at ``addr`` (a multiaddr without /p2p/)."""
        if not addr.startswith("/") or "\n" in addr:
            raise ValueError(f"invalid multiaddr: {addr!r}")
        key = self._key(peer_id)
        old = self.addrs(peer_id)
        new = [addr] + [a for a in old if a != addr]
        new = new[:MAX_ADDRS_PER_PEER]
        if new != old:
            self._db.put(key, "\n".join(new).encode())

    def learn(self, peer_id: str, addrs: list[str], *, add: bool = False) -> bool:
        """Replace ``peer_id``'s addresses with ``addrs`` (what it announced, best first).

        Only peers already in the book are updated, unless ``add`` (then new peers
        too, up to ``MAX_LEARNT_PEERS``). Returns whether the book changed.
        """
        for addr in addrs:
            if not addr.startswith("/") or "\n" in addr:
                raise ValueError(f"invalid multiaddr: {addr!r}")
        new = list(dict.fromkeys(addrs))[:MAX_ADDRS_PER_PEER]
        old = self.addrs(peer_id)
        if not new or new == old:
            return False
        if not old and (not add or self.count() >= MAX_LEARNT_PEERS):
            return False
        self._db.put(self._key(peer_id), "\n".join(new).encode())
        return True

    def count(self) -> int:
        """How many peers the book holds."""
        return sum(1 for _ in self._db.iterator(prefix=self._prefix, include_value=False))

    def addrs(self, peer_id: str) -> list[str]:
        """Known addresses of ``peer_id``, most recent first (empty if unknown)."""
        raw = self._db.get(self._key(peer_id))
        return raw.decode().split("\n") if raw else []

    def forget(self, peer_id: str) -> None:
        """Drop ``peer_id`` from the book."""
        self._db.delete(self._key(peer_id))

    def known(self) -> dict[str, list[str]]:
        """Every known peer with its addresses."""
        out: dict[str, list[str]] = {}
        for key, value in self._db.iterator(prefix=self._prefix):
            out[key[len(self._prefix) :].decode()] = value.decode().split("\n")
        return out
