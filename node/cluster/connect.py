"""Connection upkeep: a cluster-host connection to every peer of the peer set, and swarm connections to a pin's providers.

Bootstrapping connects a new peer to one other; the pinset's bitswap and the
peer RPC work best when every peer is connected to every other, as in IPFS
Cluster, so every ``MonitorPingInterval`` seconds the peers of the peer set we
are not connected to are dialled at the cluster addresses of their pings.
Before and while a pin's DAG is fetched, its origins and the IPFS addresses
of the other allocated peers are dialled on the swarm host.
"""

from __future__ import annotations

import asyncio
import logging

from cluster.pin import Pin

from ..p2p.service import P2PService
from .membership import Membership

log = logging.getLogger(__name__)

#: seconds one dial may take
DIAL_TIMEOUT = 5.0


class Connector:
    """Dials cluster peers and content providers (see module docstring)."""

    def __init__(self, p2p: P2PService, members: Membership, *, interval: float) -> None:
        self._p2p = p2p
        self._members = members
        self.interval = interval  #: ``Cluster.MonitorPingInterval``

    async def run(self) -> None:
        """Every ``interval`` seconds: dial the peers of the peer set we are not connected to."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.connect_peers()
            except Exception:
                log.exception("connecting to the cluster peers failed")

    async def connect_peers(self) -> None:
        """Dial each unconnected peer of the peer set at up to two of its cluster addresses."""
        me = self._members.peer_id
        connected = {p["Peer"] for p in await self._p2p.peers("cluster")}
        for peer in self._members.peerset():
            if peer == me or peer in connected:
                continue
            for addr in self._members.ping_info(peer).get("cluster_addresses", [])[:2]:
                full = addr if "/p2p/" in addr else f"{addr}/p2p/{peer}"
                try:
                    await self._p2p.connect(full, "cluster", timeout=DIAL_TIMEOUT)
                    break
                except Exception as exc:  # try its next address; the next round retries
                    log.debug("connecting to cluster peer %s at %s: %s", peer, full, exc)

    async def connect_providers(self, pin: Pin) -> None:
        """Dial ``pin``'s origins and the IPFS addresses of the other peers allocated to it
        (of every peer when it has no origins) on the swarm host."""
        members = self._members
        connected = {p["Peer"] for p in await self._p2p.peers("swarm")}
        addrs: list[str] = list(pin.origins)
        for peer in members.peerset():
            if peer != members.peer_id and (not pin.allocations or peer in pin.allocations or not pin.origins):
                addrs.extend(members.ping_info(peer).get("ipfs_addresses", [])[:2])
        tried: set[str] = set()
        for addr in addrs:
            target = addr.rsplit("/p2p/", 1)[-1] if "/p2p/" in addr else ""
            if not target or target == members.ipfs_id or target in connected or target in tried:
                continue
            tried.add(target)
            try:
                await self._p2p.connect(addr, "swarm", timeout=DIAL_TIMEOUT)
                connected.add(target)
            except Exception as exc:  # a provider we cannot reach: others may serve the blocks
                log.debug("connecting to provider %s: %s", addr, exc)

    async def keep_connecting(self, pin: Pin) -> None:
        """Dial ``pin``'s providers every ``interval`` seconds until cancelled (providers may
        appear during a fetch: a peer joins, its pings arrive, content is added)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.connect_providers(pin)
