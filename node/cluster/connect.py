"""Connection upkeep: a cluster-host connection to every peer of the peer set, and swarm connections to a pin's providers.

Bootstrapping connects a new peer to one other; the pinset's bitswap and the
peer RPC work best when every peer is connected to every other, as in IPFS
Cluster. Every ``MonitorPingInterval`` seconds (and once at start) the peers
we are not connected to are dialled, all at once, at the cluster addresses
their pings announced. The addresses are remembered after the pings stop
(for ``FORGET_AFTER`` seconds, or until the peer is removed): two peers that
only heard of each other through a third one must still find each other when
that one goes away (a partition, a bootstrap peer stopping), and no ping can
reach either of them before they are connected. Once a dial succeeds the
host's peer book keeps redialling the peer too.
Before and while a pin's DAG is fetched, its origins and the IPFS addresses
of the other allocated peers are dialled on the swarm host.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cluster.pin import Pin

from ..p2p.service import P2PService
from .membership import Membership

log = logging.getLogger(__name__)

#: seconds one dial may take
DIAL_TIMEOUT = 5.0
#: seconds a peer's last announced cluster addresses are still dialled after its pings stopped
FORGET_AFTER = 3600.0
#: cluster addresses dialled per peer (the first ones it announced)
ADDRS_PER_PEER = 2
#: peers whose addresses are remembered (a cluster holds tens of peers; this bounds what
#: a member announcing many made-up peer IDs could make us keep and dial)
MAX_REMEMBERED = 1024


def _is_address_of(addr: object, peer: str) -> bool:
    """Whether ``addr`` is a multiaddr string that names no peer or ``peer`` itself (a ping
    announcing another peer's ``/p2p/`` must not make us dial that one)."""
    if not isinstance(addr, str) or not addr.startswith("/"):
        return False
    return "/p2p/" not in addr or addr.endswith(f"/p2p/{peer}")


class Connector:
    """Dials cluster peers and content providers (see module docstring)."""

    def __init__(self, p2p: P2PService, members: Membership, *, interval: float) -> None:
        self._p2p = p2p
        self._members = members
        self.interval = interval  #: ``Cluster.MonitorPingInterval``
        #: peer -> (its cluster addresses from its latest ping, monotonic time of that ping)
        self._addresses: dict[str, tuple[list[str], float]] = {}

    async def run(self) -> None:
        """Now and every ``interval`` seconds: dial the cluster peers we are not connected to."""
        while True:
            try:
                await self.connect_peers()
            except Exception:
                log.exception("connecting to the cluster peers failed")
            await asyncio.sleep(self.interval)

    def remember_addresses(self, now: float) -> None:
        """Note the cluster addresses of every peer with a fresh ping; forget peers removed
        from the cluster or silent for ``FORGET_AFTER`` seconds."""
        members = self._members
        for peer in members.peerset():
            addrs = members.ping_info(peer).get("cluster_addresses")
            if isinstance(addrs, list):
                good = [a for a in addrs if _is_address_of(a, peer)][:ADDRS_PER_PEER]
                if good:
                    self._addresses[peer] = (good, now)
        for peer, (_addrs, seen) in list(self._addresses.items()):
            if now - seen > FORGET_AFTER or members.is_removed(peer):
                del self._addresses[peer]
        if len(self._addresses) > MAX_REMEMBERED:
            newest = sorted(self._addresses.items(), key=lambda item: item[1][1], reverse=True)
            self._addresses = dict(newest[:MAX_REMEMBERED])

    async def connect_peers(self) -> None:
        """Dial, concurrently, each remembered cluster peer we are not connected to."""
        self.remember_addresses(time.monotonic())
        me = self._members.peer_id
        connected = {p["Peer"] for p in await self._p2p.peers("cluster")}
        targets = [(peer, addrs) for peer, (addrs, _seen) in self._addresses.items() if peer != me and peer not in connected]
        if targets:
            await asyncio.gather(*(self._dial(peer, addrs) for peer, addrs in targets))

    async def _dial(self, peer: str, addrs: list[str]) -> None:
        """Dial ``peer`` at its addresses in turn until one connects."""
        for addr in addrs:
            full = addr if "/p2p/" in addr else f"{addr}/p2p/{peer}"
            try:
                await self._p2p.connect(full, "cluster", timeout=DIAL_TIMEOUT)
                return
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
