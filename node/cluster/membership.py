"""Who is in the cluster: the peer set, each peer's identity from its pings, ``ID`` objects, removing a peer.

The peer set is every peer with a fresh ``ping`` metric and this peer (as IPFS
Cluster), minus peers removed by ``peer_rm`` until they ping again. A peer's
name and IPFS addresses come from the JSON value of its latest ping (bounded:
a lying peer's value is parsed with a size limit). Also the monitor's read
side for the APIs (metric names, latest metrics, alerts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from cluster.monitor import MetricStore
from cluster.trust import TrustedPeers

from ..jsonlimits import loads as json_loads
from ..p2p.peer_rpc import PeerRpcError
from ..p2p.service import P2PService
from .errors import ClusterError, NotFoundError
from .interfaces import PeerCaller

log = logging.getLogger(__name__)

VERSION = "1.1.6"  #: the IPFS Cluster API version whose shapes we serve
RPC_PROTOCOL_VERSION = "/pinion/cluster-rpc/1.0.0"
#: seconds a peer gets to answer one status/recover/id call
PEER_TIMEOUT = 15.0


def now_ns() -> int:
    """The current unix time in nanoseconds."""
    return time.time_ns()


class Membership:
    """The peer set and the peers' identities (see module docstring)."""

    def __init__(
        self,
        p2p: P2PService,
        monitor: MetricStore,
        trust: TrustedPeers,
        rpc: PeerCaller,
        *,
        peer_id: str,
        peername: str,
        ipfs_id: str,
    ) -> None:
        self._p2p = p2p
        self.monitor = monitor
        self._trust = trust
        self._rpc = rpc
        self.peer_id = peer_id
        self.peername = peername
        self.ipfs_id = ipfs_id
        self._removed: dict[str, int] = {}  # peer -> ns it was removed (until it pings again)
        self._identities: dict[str, tuple[float, tuple[str, str, tuple[str, ...]]]] = {}

    def is_trusted(self, peer: str) -> bool:
        """Whether ``peer`` is in ``Cluster.TrustedPeers`` (``*`` trusts everyone)."""
        return self._trust.is_trusted(peer)

    def peerset(self) -> list[str]:
        """Cluster peers with a fresh ping (and this peer), minus peers removed until they ping again."""
        now = now_ns()
        peers = []
        for peer in self.monitor.peerset(now):
            removed = self._removed.get(peer)
            if removed is not None:
                seen = self.monitor.last_seen(peer) or 0
                if seen <= removed:
                    continue
                del self._removed[peer]
            peers.append(peer)
        if self.peer_id not in peers:
            peers.append(self.peer_id)
        return sorted(peers)

    def is_removed(self, peer: str) -> bool:
        """Whether ``peer`` was removed by ``peer_rm`` and has not pinged since."""
        return peer in self._removed

    def ping_info(self, peer: str) -> dict[str, Any]:
        """The decoded value of ``peer``'s latest ping metric ({} when none)."""
        metric = self.monitor.latest_for("ping", peer, now_ns())
        if metric is None:
            return {}
        try:
            value = json_loads(metric.value, max_bytes=64 * 1024)  # a lying peer's value is bounded too
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def swarm_addresses(self) -> list[str]:
        """This node's IPFS (swarm) multiaddrs with ``/p2p/``: the ``origins`` of its uploads."""
        return list(self._p2p.peer_info("swarm")["Addresses"])

    def ping_value(self) -> dict[str, Any]:
        """The value of this peer's ping metric (informer source)."""
        return {
            "peer_name": self.peername,
            "ipfs_id": self.ipfs_id,
            "ipfs_addresses": self.swarm_addresses(),
            "cluster_addresses": self._p2p.peer_info("cluster")["Addresses"],
        }

    def identity(self, peer: str) -> tuple[str, str, tuple[str, ...]]:
        """(peer name, IPFS ID, IPFS addresses) of ``peer``, from its ping; cached for a second."""
        now = time.monotonic()
        hit = self._identities.get(peer)
        if hit is not None and now - hit[0] < 1.0:
            return hit[1]
        if peer == self.peer_id:
            ident = (self.peername, self.ipfs_id, tuple(self.swarm_addresses()))
        else:
            ping = self.ping_info(peer)
            ident = (ping.get("peer_name", ""), ping.get("ipfs_id", ""), tuple(ping.get("ipfs_addresses", ())))
        self._identities[peer] = (now, ident)
        return ident

    async def id(self) -> dict[str, Any]:
        """This peer's ``ID`` object (IPFS Cluster shape)."""
        peers = self.peerset()
        addresses = self._p2p.peer_info("cluster")["Addresses"]
        peer_addrs: list[str] = []
        for peer in peers:
            if peer != self.peer_id:
                peer_addrs.extend(self.ping_info(peer).get("cluster_addresses", []))
        return {
            "id": self.peer_id,
            "addresses": addresses,
            "cluster_peers": peers,
            "cluster_peers_addresses": peer_addrs,
            "version": VERSION,
            "commit": "",
            "rpc_protocol_version": RPC_PROTOCOL_VERSION,
            "error": "",
            "ipfs": {"id": self.ipfs_id, "addresses": self.swarm_addresses(), "error": ""},
            "peername": self.peername,
        }

    async def peers(self) -> list[dict[str, Any]]:
        """The ``ID`` of every peer of the peer set (each asked over RPC; errors in its ``error``)."""

        async def ask(peer: str) -> dict[str, Any]:
            if peer == self.peer_id:
                return await self.id()
            try:
                return await self._rpc.call(peer, "id", timeout=PEER_TIMEOUT)
            except PeerRpcError as exc:
                info = self.ping_info(peer)
                return {
                    "id": peer,
                    "addresses": info.get("cluster_addresses", []),
                    "cluster_peers": [],
                    "cluster_peers_addresses": [],
                    "version": "",
                    "commit": "",
                    "rpc_protocol_version": RPC_PROTOCOL_VERSION,
                    "error": str(exc),
                    "ipfs": {"id": info.get("ipfs_id", ""), "addresses": info.get("ipfs_addresses", []), "error": ""},
                    "peername": info.get("peer_name", ""),
                }

        return list(await asyncio.gather(*(ask(p) for p in self.peerset())))

    async def peer_rm(self, peer: str) -> None:
        """Remove ``peer`` from this peer's view of the cluster (``DELETE /peers/{peer}``,
        ``pinion ctl peers rm``): its metrics and place in the peer set, its entry in the
        cluster peer book (it is no longer redialled) and our connections to it.

        Any peer this peer knows can be removed, also one already gone from the peer
        set (which was still redialled). A removed peer that still runs comes back only
        by connecting to us again and pinging (then it is a member like any other; a
        peer that is not in ``Cluster.TrustedPeers`` never changes the pinset).
        Raises ValueError for a malformed peer ID, NotFoundError for an unknown one.
        """
        if not _is_peer_id(peer):
            raise ValueError(f"invalid peer ID {peer!r}")
        if peer == self.peer_id:
            raise ClusterError("a peer cannot remove itself; stop it instead")
        known = peer in self.peerset() or self.monitor.last_seen(peer) is not None
        if not known:
            known = peer in await self._p2p.known_peers("cluster")
        if not known:
            raise NotFoundError(f"peer {peer} is not a known cluster peer")
        self._removed[peer] = now_ns()
        self.monitor.forget(peer)
        try:
            await self._p2p.disconnect(peer, "cluster")
        except Exception as exc:  # already gone: nothing to close
            log.debug("disconnecting %s: %s", peer, exc)
        log.info("peer %s removed from the peer set and the peer book", peer)

    # ------------------------------------------------------------ the monitor, read by the APIs
    def metric_names(self) -> list[str]:
        """Names of the metrics this peer has seen."""
        return self.monitor.names()

    def latest_metrics(self, name: str) -> list[dict[str, Any]]:
        """The latest valid metric ``name`` of every peer of the peer set."""
        peers = set(self.peerset())
        return [m.to_json() for m in self.monitor.latest(name, now_ns()) if m.peer in peers]

    def alerts(self) -> list[dict[str, Any]]:
        """Recent alerts (expired metrics of peers), newest first."""
        return [a.to_json() for a in self.monitor.alerts()]

    def own_metric(self, name: str) -> int | None:
        """The integer value of this peer's latest metric ``name`` (None when absent or not a number)."""
        metric = self.monitor.latest_for(name, self.peer_id, now_ns())
        try:
            return int(metric.value) if metric is not None else None
        except ValueError:
            return None


def _is_peer_id(text: str) -> bool:
    """Whether ``text`` is a base58 libp2p peer ID (a multihash of a public key)."""
    from libp2p.peer.id import ID
    from multiformats import multihash

    try:
        multihash.unwrap(ID.from_base58(text).to_bytes())
    except Exception:
        return False
    return True
