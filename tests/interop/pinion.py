"""A Pinion peer for the interop tests: the node's swarm host (``node.p2p.hosts``) with Pinion's bitswap on a LevelDB store.

The host is built exactly as the daemon builds its swarm host (TCP, Noise,
Yamux, identify, ping, py-libp2p fixes from ``node.p2p.compat``); bitswap
registers its protocols on it, so identify lists them. Everything runs in
the caller's trio run; Helia is driven from worker threads
(``trio.to_thread.run_sync``) so libp2p keeps serving meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from bitswap import Bitswap, BitswapConfig
from blockstore import exporter
from blockstore.cid import cid_to_str
from blockstore.db import open_db
from blockstore.store import BlockStore
from node.p2p.hosts import HostHandle
from node.p2p.identity import generate_identity, load_keypair

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


@dataclass
class PinionPeer:
    """A running Pinion swarm host, its bitswap service and block store."""

    host: HostHandle
    bitswap: Bitswap
    store: BlockStore

    @property
    def addr(self) -> str:
        """The host's loopback TCP multiaddr with its ``/p2p/`` peer ID."""
        return next(a for a in self.host.listen_addrs() if a.startswith("/ip4/127.0.0.1/tcp/"))

    @property
    def peer_id(self) -> str:
        """The host's peer ID."""
        return self.host.peer_id


@asynccontextmanager
async def running_pinion(path: Path, config: BitswapConfig | None = None) -> AsyncIterator[PinionPeer]:
    """A Pinion peer with a fresh identity and a LevelDB store under ``path``; everything stops on exit."""
    db = open_db(path / "blocks")
    try:
        store = BlockStore(db)
        _, privkey = generate_identity()
        host = HostHandle("swarm", load_keypair(privkey), [LOOPBACK])
        async with trio.open_nursery() as nursery:
            await nursery.start(host.serve)
            try:
                assert host.host is not None
                bitswap = Bitswap(host.host, store, config)
                await nursery.start(bitswap.run)
                yield PinionPeer(host, bitswap, store)
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await host.stop()
    finally:
        db.close()


def file_digest(store: BlockStore, cid: bytes) -> tuple[int, str]:
    """(size, sha256 hex) of the UnixFS file (or raw block) ``cid``, read from ``store`` alone."""
    digest = hashlib.sha256()
    size = 0
    for chunk in exporter.read_file(store.get, cid):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def dir_files(store: BlockStore, root: bytes) -> list[tuple[str, str, bytes]]:
    """Every file under the directory ``root`` as (path, CID string, bytes), read from ``store`` alone."""
    out: list[tuple[str, str, bytes]] = []
    todo = [("", root)]
    while todo:
        prefix, cid = todo.pop()
        for entry in exporter.list_dir(store.get, cid):
            path = f"{prefix}{entry.name}"
            if entry.type == "directory":
                todo.append((path + "/", entry.cid))
            else:
                out.append((path, cid_to_str(entry.cid), b"".join(exporter.read_file(store.get, entry.cid))))
    return out


async def in_thread(fn: Callable[..., object], *args: object, **kwargs: object) -> object:
    """Run a blocking call (a Helia command) in a worker thread, so the trio loop keeps serving libp2p."""
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))
