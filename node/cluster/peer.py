"""The cluster peer: the front the REST and pinning-service APIs call, delegating to one component per job.

One :class:`ClusterPeer` per daemon, on the private cluster host (see the
package docstring for where each job lives). :func:`open_cluster` builds the
components in dependency order, each receiving what it needs at
construction: trust and the peer RPC first, then membership, connections and
the fetcher, the pin tracker, the CRDT replica (whose change hook is the
tracker), the pinset service, and the peer over all of them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from blockstore.cid import cid_to_str
from blockstore.uploads import Uploads
from cluster.monitor import MetricStore
from cluster.pin import Pin
from cluster.trust import TrustedPeers

from ..content import NetworkContent
from ..core import CoreAPI
from ..errors import CoreError, NotFound
from ..fetching import FetchingCore
from ..p2p.peer_rpc import PeerRPC
from ..p2p.service import P2PService
from ..repo import Repo
from .connect import Connector
from .errors import NotFoundError
from .fetch import DagFetcher
from .graph import ConnectGraph
from .informer import Informer
from .membership import Membership
from .peer_rpc import PeerRPCHandlers
from .pinning import Pinning, PinningConfig
from .pinset import PinsetService, open_replica
from .pintracker import PinTracker
from .status import ClusterStatus
from .upkeep import Upkeep, UpkeepConfig
from .uploads import UploadReleaser
from ..tasks import cancel_tasks

log = logging.getLogger(__name__)


class ClusterPeer:
    """One peer of the cluster: starts and stops its components and delegates every call to them."""

    def __init__(
        self,
        repo: Repo,
        p2p: P2PService,
        *,
        members: Membership,
        rpc: PeerRPC,
        connector: Connector,
        tracker: PinTracker,
        pinset: PinsetService,
        resolver: FetchingCore,
        freespace: Callable[[], int],
    ) -> None:
        self.config = repo.config
        self.peer_id = members.peer_id
        self.members = members
        self.monitor = members.monitor
        self.rpc = rpc
        self.tracker = tracker
        self.pinset = pinset
        self._repo = repo
        self._resolver = resolver
        self._connector = connector
        cluster = self.config["Cluster"]
        self.graph = ConnectGraph(p2p, members, rpc)
        self.pinning = Pinning(pinset, tracker, members, self.monitor, PinningConfig.from_config(self.config))
        self.cluster_status = ClusterStatus(pinset, tracker, members, rpc)
        self.upkeep = Upkeep(pinset, members, self.pinning, UpkeepConfig.from_config(self.config))
        self.uploads = UploadReleaser(
            Uploads(repo.db), pinset, tracker, self.cluster_status,
            peer_id=self.peer_id, interval=float(cluster["MonitorPingInterval"]),
        )
        PeerRPCHandlers(pinset, tracker, members, self.graph, pinset).register(rpc)
        self.informer = Informer(
            p2p,
            self.monitor,
            peer_id=self.peer_id,
            cluster_name=cluster["Name"],
            ping_interval=float(cluster["MonitorPingInterval"]),
            ttl=float(cluster["MetricTTL"]),
            tags={str(k): str(v) for k, v in cluster.get("Tags", {}).items()},
            ping_value=members.ping_value,
            freespace=freespace,
            pinqueue=tracker.queue_length,
            numpin=lambda: tracker.counts().get("pinned", 0),
            on_alert=self.upkeep.on_alert,
        )
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the peer RPC, tracker, informer and loops (the pinset already runs)."""
        self.rpc.start()
        await self.tracker.start()
        await self.informer.start()
        self._tasks = [
            asyncio.create_task(self._sync_tracker(), name="cluster-sync-tracker"),
            asyncio.create_task(self.upkeep.run(), name="cluster-state-sync"),
            asyncio.create_task(self._connector.run(), name="cluster-connect"),
            asyncio.create_task(self.uploads.run(), name="cluster-uploads"),
        ]

    async def stop(self) -> None:
        """Stop the loops, the informer and the tracker (before the pinset and hosts stop)."""
        await cancel_tasks(self._tasks, "cluster", log)
        self._tasks.clear()
        await self.pinning.close()
        await self.upkeep.stop()
        await self.informer.stop()
        await self.tracker.stop()

    async def _sync_tracker(self) -> None:
        """Reconcile the tracker with the state at start (pins allocated here that it has not seen)."""
        try:
            await self.tracker.sync_state(self.pinset.iter_pins())
        except Exception:
            log.exception("reconciling the pin tracker with the state failed")

    # ------------------------------------------------------------ peers (membership.py, graph.py)
    def swarm_addresses(self) -> list[str]:
        """This node's IPFS (swarm) multiaddrs with ``/p2p/``: the ``origins`` of its uploads."""
        return self.members.swarm_addresses()

    def peerset(self) -> list[str]:
        """The peers of the cluster now."""
        return self.members.peerset()

    async def id(self) -> dict[str, Any]:
        """This peer's ``ID`` object."""
        return await self.members.id()

    async def peers(self) -> list[dict[str, Any]]:
        """The ``ID`` of every peer of the peer set."""
        return await self.members.peers()

    async def peer_rm(self, peer: str) -> None:
        """Remove ``peer`` from this peer's view of the cluster."""
        await self.members.peer_rm(peer)

    async def health_graph(self) -> dict[str, Any]:
        """The ``ConnectGraph`` of the peer set."""
        return await self.graph.health_graph()

    def metric_names(self) -> list[str]:
        """Names of the metrics this peer has seen."""
        return self.members.metric_names()

    def latest_metrics(self, name: str) -> list[dict[str, Any]]:
        """The latest valid metric ``name`` of every peer of the peer set."""
        return self.members.latest_metrics(name)

    def alerts(self) -> list[dict[str, Any]]:
        """Recent alerts, newest first."""
        return self.members.alerts()

    # ------------------------------------------------------------ pins (pinning.py)
    def admit_local_pin(self) -> None:
        """QueueFull when this peer's pin queue cannot take a kubo RPC ``pin/add``."""
        self.pinning.admit_local_pin()

    async def pin(self, pin: Pin, *, size: int | None = None, defaults: bool = True, upload: bool = False) -> Pin:
        """Allocate and commit ``pin`` (also a pin update: ``pin.pin_update``); returns it as committed."""
        return await self.pinning.pin(pin, size=size, defaults=defaults, upload=upload)

    async def pin_many(self, pins: list[Pin], *, defaults: Sequence[bool] | None = None) -> list[Pin]:
        """Allocate and commit many pins in one pinset write (uploads add them this way)."""
        return await self.pinning.pin_many(pins, defaults=defaults)

    async def unpin(self, cid: bytes) -> Pin:
        """Remove ``cid`` from the pinset; returns the pin as it was."""
        return await self.pinning.unpin(cid)

    async def get_pin(self, cid: bytes) -> Pin:
        """The pin of ``cid`` in the pinset (NotFoundError when absent)."""
        pin = await self.pinset.get(cid)
        if pin is None:
            raise NotFoundError(f"{cid_to_str(cid)} is not pinned in the cluster")
        return pin

    async def iter_pins(
        self, *, types: Collection[str] = (), name: str | None = None, meta: Mapping[str, str] | None = None
    ) -> AsyncIterator[Pin]:
        """Every pin of the pinset, sorted by CID, filtered by type, exact name and metadata (from the index)."""
        async for pin in self.pinset.iter_pins(name=name, meta=meta):
            if types and pin.type not in types:
                continue
            yield pin

    async def resolve(self, path: str) -> bytes:
        """The CID an ``/ipfs/...`` (or ``/ipld/...``) path points to; ValueError/NotFoundError."""
        if path.startswith("/ipld/"):
            path = "/ipfs/" + path[len("/ipld/") :]
        try:
            return await self._resolver.resolve(path)  # missing blocks are awaited on the loop, in no thread
        except NotFound as exc:
            raise NotFoundError(str(exc)) from None
        except CoreError as exc:
            raise ValueError(str(exc)) from None

    # ------------------------------------------------------------ status (status.py)
    async def status(self, cid: bytes, *, local: bool = False) -> dict[str, Any]:
        """The ``GlobalPinInfo`` of ``cid``."""
        return await self.cluster_status.status(cid, local=local)

    def status_all(
        self,
        *,
        local: bool = False,
        filter_mask: int = 0,
        cids: Sequence[bytes] | None = None,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """``GlobalPinInfo`` of every pin (or of ``cids``), streamed in CID order."""
        return self.cluster_status.status_all(local=local, filter_mask=filter_mask, cids=cids, name=name, meta=meta)

    def status_all_ndjson(
        self,
        *,
        local: bool = False,
        filter_mask: int = 0,
        cids: Sequence[bytes] | None = None,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        """:meth:`status_all` as NDJSON text, a page of lines per item (what ``GET /pins`` sends)."""
        return self.cluster_status.status_all_ndjson(local=local, filter_mask=filter_mask, cids=cids, name=name, meta=meta)

    async def recover(self, cid: bytes, *, local: bool = False) -> dict[str, Any]:
        """Re-queue a failed pin or unpin of ``cid``."""
        return await self.cluster_status.recover(cid, local=local)

    def recover_all(self, *, local: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Re-queue every failed pin and unpin; yields what was re-queued."""
        return self.cluster_status.recover_all(local=local)

    async def status_counts(self) -> dict[str, Any]:
        """Pins by status on every peer of the peer set and their sum."""
        return await self.cluster_status.status_counts()

    # ------------------------------------------------------------ metrics
    def stats(self) -> dict[str, Any]:
        """Numbers for Prometheus: tracker counts by status, queue, peers, counters, informer values."""
        return {
            "status": self.tracker.counts(),
            "queue": self.tracker.queue_length(),
            "peers": len(self.members.peerset()),
            "counters": {**self.pinning.counters, **self.upkeep.counters},
            "freespace": self.members.own_metric("freespace"),
            "uploads": sum(1 for _ in Uploads(self._repo.db)),
        }


def free_space_of(repo: Repo) -> Callable[[], int]:
    """A blocking call giving the bytes this peer may still store: ``Datastore.StorageMax``
    (read now, once) minus what the block store holds."""
    store, storage_max = repo.store, int(repo.config["Datastore"]["StorageMax"])

    def free_space() -> int:
        return max(0, storage_max - store.stats()["stored_bytes"])

    return free_space


async def open_cluster(
    repo: Repo,
    core: CoreAPI,
    p2p: P2PService,
    content: NetworkContent,
    *,
    reads: Executor | None = None,
    pinset_pool: Executor | None = None,
) -> ClusterPeer:
    """Build the cluster peer and its components and start the pinset (the peer itself is started
    by :meth:`ClusterPeer.start`). ``reads``: the daemon's reads pool (path resolution, local DAG
    walks); ``pinset_pool``: where replica calls run."""
    handle = p2p.cluster
    if handle is None:
        raise RuntimeError("the cluster peer needs the cluster host (set Cluster.Secret)")
    config = repo.config
    cluster = config["Cluster"]
    peer_id: str = cluster["PeerID"]
    trust = TrustedPeers(peer_id, cluster.get("TrustedPeers", ["*"]))
    rpc = PeerRPC(handle, run=p2p.bridge.run, run_asyncio=p2p.bridge.run_asyncio, is_trusted=trust.is_trusted)
    members = Membership(
        p2p,
        MetricStore(peer_id),
        trust,
        rpc,
        peer_id=peer_id,
        peername=cluster.get("Peername") or socket.gethostname(),
        ipfs_id=config["Identity"]["PeerID"],
    )
    connector = Connector(p2p, members, interval=float(cluster["MonitorPingInterval"]))

    freespace = free_space_of(repo)
    fetcher = DagFetcher(content, repo.store, connector, freespace=freespace, reads=reads)
    tracker = PinTracker(
        repo.db,
        repo.pins,
        peer_id,
        config["PinTracker"],
        fetch=fetcher.fetch,
        blocks=repo.store,
        is_local=Uploads(repo.db).has,
    )
    loop = asyncio.get_running_loop()
    replica = await loop.run_in_executor(  # resumes pending heads: LevelDB I/O
        None,
        functools.partial(
            open_replica,
            repo,
            max_batch_size=cluster["BatchMaxSize"],
            max_batch_age=float(cluster["BatchMaxAge"]),
            on_changes=tracker.on_replica_changes,
        ),
    )
    pinset = PinsetService(
        replica,
        repo.store,
        p2p,
        cluster_name=cluster["Name"],
        rebroadcast_interval=float(cluster["RebroadcastInterval"]),
        snapshot_interval=float(cluster["SnapshotInterval"]),
        snapshot_min_deltas=int(cluster["SnapshotMinDeltas"]),
        executor=pinset_pool,
        rpc=rpc,
    )
    await pinset.start()
    return ClusterPeer(
        repo,
        p2p,
        members=members,
        rpc=rpc,
        connector=connector,
        tracker=tracker,
        pinset=pinset,
        resolver=FetchingCore(core, content, reads),
        freespace=freespace,
    )
