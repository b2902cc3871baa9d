"""Real py-libp2p hosts running Pinion's DHT on loopback, for the routing tests and benchmark.

Hosts are built with Pinion's host settings (``node.p2p.compat``: Noise and
Yamux only, one connection per peer, no auto-connector) and each DHT keeps
its provider records in its own LevelDB under the given directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair

from bitswap.routing.dht import DHT
from bitswap.routing.dht_config import CLIENT, SERVER, DHTConfig
from blockstore.db import open_db
from node.p2p import compat

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def make_host() -> Any:
    """A TCP + Noise + Yamux host with a fresh Ed25519 identity, as node/p2p/hosts.py builds the swarm host."""
    compat.install()
    kp = create_new_key_pair()
    host = new_host(
        key_pair=kp,
        sec_opt=compat.security_options(kp),
        muxer_opt=compat.muxer_options(),
        connection_config=compat.connection_config(),
        enable_mDNS=False,
        enable_upnp=False,
    )
    compat.disable_auto_connector(host)
    return host


def p2p_addr(host: Any) -> str:
    """The host's first listen address with its /p2p/ peer ID."""
    addr = str(host.get_transport_addrs()[0])
    return f"{addr}/p2p/{host.get_id().to_base58()}"


def lan_config(**overrides: Any) -> DHTConfig:
    """A server-mode DHT config that accepts loopback addresses (a local test network)."""
    return DHTConfig(mode=overrides.pop("mode", SERVER), allow_private_addrs=True, **overrides)


@asynccontextmanager
async def dht_nodes(
    root: Path, count: int, config: DHTConfig | None = None, *, clients: int = 0, **overrides: Any
) -> AsyncIterator[list[DHT]]:
    """``count`` running hosts, each with a running DHT over its own LevelDB in ``root/nI``; all stopped
    on exit. The last ``clients`` of them run in client mode."""
    async with AsyncExitStack() as stack:
        dbs: list[Any] = []
        stack.callback(lambda: [db.close() for db in dbs])  # last, once hosts and DHTs are down
        hosts = []
        for _ in range(count):
            host = make_host()
            await stack.enter_async_context(host.run(listen_addrs=[LOOPBACK]))
            hosts.append(host)
        nursery = await stack.enter_async_context(trio.open_nursery())  # first to stop
        dhts: list[DHT] = []
        for i, host in enumerate(hosts):
            dbs.append(open_db(root / f"n{i}"))
            cfg = config if config is not None else lan_config(**overrides)
            settings = {f: getattr(cfg, f) for f in cfg.__slots__}
            if i >= count - clients:
                settings["mode"] = CLIENT
            dht = DHT(host, dbs[-1], DHTConfig(**settings))
            await nursery.start(dht.run)
            dhts.append(dht)
        try:
            yield dhts
        finally:
            nursery.cancel_scope.cancel()


async def wait_for(pred: Any, timeout: float = 60.0, interval: float = 0.05) -> None:
    """Poll ``pred()`` until true; fail after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(interval)
