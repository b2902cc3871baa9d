"""Real py-libp2p hosts and Pinion block stores for the bitswap tests and benchmark.

Hosts are built as the study recommends (Noise only, Yamux only, one
connection per peer so a dial does not wait 250 ms) and listen on a free
loopback port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from bitswap import Bitswap, BitswapConfig
from blockstore.db import open_db
from blockstore.store import BlockStore

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def make_host() -> Any:
    """A TCP + Noise + Yamux host with a fresh Ed25519 identity (not yet running)."""
    kp = create_new_key_pair()
    return new_host(
        key_pair=kp,
        sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(kp, noise_privkey=new_x25519_key_pair().private_key)},
        muxer_opt={YAMUX_PROTOCOL_ID: Yamux},
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )


@asynccontextmanager
async def running_host() -> AsyncIterator[Any]:
    """A host listening on a free loopback port, stopped on exit."""
    host = make_host()
    async with host.run(listen_addrs=[LOOPBACK]):
        yield host


def full_addr(host: Any) -> multiaddr.Multiaddr:
    """The host's first listen address with its /p2p/ peer ID."""
    addr = host.get_addrs()[0]
    if "/p2p/" not in str(addr):
        addr = addr.encapsulate(multiaddr.Multiaddr(f"/p2p/{host.get_id().to_string()}"))
    return addr


async def connect(a: Any, b: Any) -> None:
    """Dial b from a."""
    with trio.fail_after(10):
        await a.connect(info_from_p2p_addr(full_addr(b)))


def open_store(path: Path) -> BlockStore:
    """A LevelDB block store in ``path``."""
    return BlockStore(open_db(str(path)))


@asynccontextmanager
async def bitswap_node(path: Path, config: BitswapConfig | None = None) -> AsyncIterator[Bitswap]:
    """A running host with a running Bitswap over a LevelDB store in ``path``; all stopped on exit."""
    store = open_store(path)
    try:
        async with running_host() as host:
            bs = Bitswap(host, store, config)
            async with trio.open_nursery() as nursery:
                await nursery.start(bs.run)
                try:
                    yield bs
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        store.db.close()
