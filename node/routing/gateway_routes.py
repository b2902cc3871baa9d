"""``/routing/v1`` on the gateway port (``Gateway.ExposeRoutingAPI``): answers from our own blocks, then the DHT.

The routes themselves are :func:`bitswap.routing.routing_v1_server.routing_v1_routes`; this
module supplies the lookups: providers = this node when the block is in its store (its
announced swarm addresses, bitswap; never for the cluster's CRDT blocks), then the node's routers; peers = this node, a connected
peer's known addresses, or the routers' ``find_peer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bitswap.routing.records import TRANSPORT_BITSWAP, PeerRecord, parse_peer_id
from bitswap.routing.routing_v1_server import providers_with_self, routing_v1_routes

from blockstore.cid import multihash_of
from cluster.crdt.provide_exclusion import crdt_exclusion

from .service import RoutingService, RoutingUnavailable

__all__ = ["routing_v1_for_node"]


def routing_v1_for_node(routing: RoutingService | None, store: Any, p2p: Any) -> list[web.AbstractRouteDef]:
    """The ``/routing/v1`` routes of this node (``routing`` None or off: own blocks only)."""

    def self_record() -> PeerRecord:
        info = p2p.peer_info("swarm") if p2p is not None else {"ID": "", "Addresses": []}
        addrs = tuple(a.rsplit("/p2p/", 1)[0] for a in info["Addresses"])
        return PeerRecord(parse_peer_id(info["ID"]), addrs, (TRANSPORT_BITSWAP,))

    async def others(cid: bytes, limit: int) -> AsyncIterator[PeerRecord]:
        if routing is None or not routing.active:
            return
        try:
            found = routing.find_providers(cid, limit)
        except RoutingUnavailable:
            return
        async for rec in found:
            yield rec

    internal = crdt_exclusion(store.db)

    def held(cid: bytes) -> bool:
        # the cluster's CRDT blocks are never advertised, here as in the provide queue
        return store.has(cid) and not internal(multihash_of(cid))

    async def has_block(cid: bytes) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, held, cid)

    find_providers = providers_with_self(has_block, self_record, others)

    async def find_peer(peer: bytes, limit: int) -> AsyncIterator[PeerRecord]:
        if p2p is not None and peer == parse_peer_id(p2p.peer_info("swarm")["ID"]):
            yield self_record()
            return
        if routing is None or not routing.active:
            return
        rec = await routing.find_peer(peer)
        if rec is not None:
            yield rec

    return routing_v1_routes(find_providers, find_peer)
