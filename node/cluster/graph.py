"""The cluster's connection graph (``GET /health/graph``): who is connected to whom on the cluster and IPFS hosts."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..p2p.service import P2PService
from .interfaces import PeerCaller
from .membership import PEER_TIMEOUT, Membership

log = logging.getLogger(__name__)


class ConnectGraph:
    """This peer's links, and the ``ConnectGraph`` of the peer set (each peer asked over RPC)."""

    def __init__(self, p2p: P2PService, members: Membership, rpc: PeerCaller) -> None:
        self._p2p = p2p
        self._members = members
        self._rpc = rpc

    async def links(self) -> dict[str, Any]:
        """This peer's connected cluster and IPFS peers, and its IPFS ID (the ``links`` RPC)."""
        cluster = [p["Peer"] for p in await self._p2p.peers("cluster")]
        ipfs = [p["Peer"] for p in await self._p2p.peers("swarm")]
        return {"cluster": cluster, "ipfs": ipfs, "ipfs_id": self._members.ipfs_id}

    async def health_graph(self) -> dict[str, Any]:
        """The ``ConnectGraph``: who is connected to whom on the cluster and IPFS hosts."""
        members = self._members
        me = members.peer_id
        peers = members.peerset()
        graph: dict[str, Any] = {
            "cluster_id": me,
            "id_to_peername": {},
            "ipfs_links": {},
            "cluster_links": {},
            "cluster_trust_links": {p: members.is_trusted(p) for p in peers},
            "cluster_to_ipfs": {},
        }

        async def links(peer: str) -> tuple[str, dict[str, Any] | None]:
            try:
                if peer == me:
                    return peer, await self.links()
                return peer, await self._rpc.call(peer, "links", timeout=PEER_TIMEOUT)
            except Exception as exc:  # an unreachable peer has no links in the graph
                log.debug("links of %s: %s", peer, exc)
                return peer, None

        for peer, data in await asyncio.gather(*(links(p) for p in peers)):
            ping = members.ping_info(peer) if peer != me else {"peer_name": members.peername}
            graph["id_to_peername"][peer] = ping.get("peer_name", "")
            if data is None:
                graph["cluster_links"][peer] = []
                continue
            graph["cluster_links"][peer] = data["cluster"]
            graph["cluster_to_ipfs"][peer] = data["ipfs_id"]
            graph["ipfs_links"][data["ipfs_id"]] = data["ipfs"]
        return graph
