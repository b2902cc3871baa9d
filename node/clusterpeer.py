"""The cluster peer: the pinset, the informers, the allocator and the pin tracker working together.

This is what the REST API (``node/restapi``) and the pinning service API
(``node/pinsvc``) call. One :class:`ClusterPeer` per daemon, running on the
private cluster host:

- **Pinning** (:meth:`ClusterPeer.pin`): replication factors from the pin or
  the config defaults, allocations chosen by :func:`cluster.allocator.allocate`
  from the latest informer metrics of the *trusted* peers of the peer set
  (untrusted ones too with ``Cluster.AllocateToUntrustedPeers``), leaving out
  peers whose pin queue is full (:func:`cluster.tracker.admission_limit`;
  QueueFull, HTTP 429, when too few are left), then the pin is written to
  the CRDT pinset. Every peer's :class:`~node.pintracker.PinTracker` sees the
  change (``on_state_change``) and pins or unpins what is allocated to it.
- **Uploads**: content uploaded here (``/add``) is kept from garbage
  collection by a marker (``blockstore/uploads.py``) until its pin is settled
  (:func:`cluster.uploads.settled`), checked every ``MonitorPingInterval``.
- **Peers and metrics**: :class:`~node.informer.Informer` publishes this peer's
  ping, free space, tags, queue length and pin count on gossipsub; the peer set
  is every peer with a fresh ping (as IPFS Cluster).
- **Status**: this peer's view comes from its tracker; the other peers' views
  come over the peer RPC (:mod:`node.p2p.rpc`). Listings stream: the state and
  every peer's status stream are sorted by CID, so they merge with bounded
  memory however many pins there are.
- **Background loops**: expired pins (``expire_at``) are removed by one peer
  (the XOR-closest to the CID), and, when ``Cluster.DisableRepinning`` is off,
  the pins of a peer gone longer than ``Cluster.RepinningGrace`` are
  re-allocated, again by exactly one peer.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, NamedTuple

from blockstore.cid import CidError, cid_from_str, cid_to_str
from blockstore.dagwalk import BlockNotFound as DagBlockNotFound
from blockstore.dagwalk import walk_dag
from blockstore.uploads import Uploads
from cluster.allocator import AllocationError, allocate
from cluster.monitor import Alert, Metric, MetricStore
from cluster.pin import Pin, PinError, meta_term, name_term
from cluster.pinoptions import check_user_options
from cluster.status import PinInfo, global_pin_info
from cluster.tracker import QueueFull, admission_limit
from cluster.uploads import settled as upload_settled

from .content import NetworkContent
from .core import CoreAPI, CoreError
from .core import NotFound as CoreNotFound
from .fetching import FetchingCore
from .informer import Informer
from .jsonlimits import loads as json_loads
from .p2p.rpc import PeerRPC, RpcError, one, paged
from .p2p.service import P2PService
from .pinset import PinsetService
from .pintracker import PinTracker
from .repo import Repo

log = logging.getLogger(__name__)

VERSION = "1.1.6"  #: the IPFS Cluster API version whose shapes we serve
RPC_PROTOCOL_VERSION = "/pinion/cluster-rpc/1.0.0"
#: seconds a peer gets to answer one status/recover/id call
PEER_TIMEOUT = 15.0
#: pins read from LevelDB per worker-thread call while streaming
PAGE = 1000
#: seconds a byte reservation on a peer lasts when no newer freespace metric arrives
RESERVATION_TTL = 600.0
#: upload markers looked at per round of ``release_uploads``
UPLOADS_PER_ROUND = 256


class AllocationView(NamedTuple):
    """What one allocation (or one batch of them) reads: see ``ClusterPeer._allocation_view``."""

    peers: set[str]
    allocate_by: list[str]
    metrics: dict[str, list[Metric]]
    reserved: dict[str, int]
    untrusted: set[str]  #: peers whose metrics may not be used (not in TrustedPeers, no opt-in)
    queues: dict[str, int]  #: pins queued per peer (this peer: exact; others: their pinqueue metric)


def _queue_message(cid: bytes | None, full: Mapping[str, str], queues: Mapping[str, int], max_queue: int) -> str:
    """The QueueFull message: whose queue is full and what the limit is."""
    peers = ", ".join(f"{p} ({queues.get(p, 0)} queued)" for p in sorted(full))
    what = f"pinning {cid_to_str(cid)}" if cid is not None else "pinning"
    return (
        f"{what} refused: the pin queue is full on {peers}; PinTracker.MaxPinQueueSize is {max_queue}, "
        f"the last {max_queue // 10} places are kept for uploads; try again later"
    )


class NotFoundError(LookupError):
    """The pin (or peer) is not there: HTTP 404."""


class ClusterError(RuntimeError):
    """The cluster cannot do it now: HTTP 500 with the message."""


def now_ns() -> int:
    """The current unix time in nanoseconds."""
    return time.time_ns()


def xor_closest(cid: bytes, peers: Iterable[str]) -> str | None:
    """The peer whose blake2b-256 hash is XOR-closest to the CID's (IPFS Cluster's rule for who acts alone)."""
    target = int.from_bytes(hashlib.blake2b(cid, digest_size=32).digest(), "big")
    best: tuple[int, str] | None = None
    for peer in peers:
        distance = target ^ int.from_bytes(hashlib.blake2b(peer.encode(), digest_size=32).digest(), "big")
        if best is None or (distance, peer) < best:
            best = (distance, peer)
    return best[1] if best else None


def is_allocated(pin: Pin, peer: str) -> bool:
    """Whether ``peer`` must hold ``pin`` (empty allocations: every peer)."""
    return not pin.allocations or peer in pin.allocations


class ClusterPeer:
    """One peer of the cluster (see module docstring)."""

    def __init__(
        self,
        repo: Repo,
        core: CoreAPI,
        p2p: P2PService,
        content: NetworkContent,
        *,
        reads: Executor | None = None,
    ) -> None:
        self.repo = repo
        self.core = core
        #: the daemon's reads pool: path resolution and local DAG walks (None: the default executor)
        self._reads = reads
        self._fetching = FetchingCore(core, content, reads)
        self.config = repo.config
        self._p2p = p2p
        self._content = content
        cluster = self.config["Cluster"]
        self.peer_id: str = cluster["PeerID"]
        self.peername: str = cluster.get("Peername") or socket.gethostname()
        self.ipfs_id: str = self.config["Identity"]["PeerID"]
        self._trusted = list(cluster.get("TrustedPeers", ["*"]))
        self.monitor = MetricStore(self.peer_id)
        self.tracker = PinTracker(
            repo.db,
            repo.pins,
            self.peer_id,
            self.config["PinTracker"],
            fetch=self._fetch,
            blocks=repo.store,
            is_local=Uploads(repo.db).has,
        )
        self.pinset: PinsetService | None = None
        self.informer: Informer | None = None
        self.rpc: PeerRPC | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reservations: list[tuple[str, int, int]] = []  # (peer, bytes, ns)
        self._admitting = 0  # pins admitted to this peer's queue, not yet written to the pinset
        self._uploads_cursor: bytes | None = None  # the last upload marker release_uploads looked at
        self._removed: dict[str, int] = {}  # peer -> ns it was removed (until it pings again)
        self._gone_since: dict[str, int] = {}  # peer -> ns of its ping alert
        self._identities: dict[str, tuple[float, tuple[str, str, tuple[str, ...]]]] = {}
        #: counters for metrics
        self.counters = {"pin_add": 0, "pin_add_errors": 0, "unpin": 0, "expired": 0, "repinned": 0}

    # ------------------------------------------------------------ lifecycle
    def on_state_change(self, change: Any) -> None:
        """The replica's change hook: tell the tracker (called under the replica lock, from a worker thread)."""
        pin: Pin | None = None
        if change.value is not None:
            try:
                pin = Pin.from_cbor(change.value)
            except PinError as exc:
                log.warning("pin %s in the state cannot be decoded: %s", cid_to_str(change.key), exc)
                return
        self.tracker.on_state_change(change.key, pin, change.value)

    async def start(self, pinset: PinsetService) -> None:
        """Start the tracker, informer, peer RPC and loops (the pinset already runs)."""
        self.pinset = pinset
        assert self._p2p.cluster is not None
        self.rpc = PeerRPC(
            self._p2p.cluster,
            run=self._p2p.bridge.run,
            run_asyncio=self._p2p.bridge.run_asyncio,
            is_trusted=self.is_trusted,
        )
        for name, handler in (
            ("id", self._rpc_id),
            ("status", self._rpc_status),
            ("status_all", self._rpc_status_all),
            ("recover", self._rpc_recover),
            ("recover_all", self._rpc_recover_all),
            ("links", self._rpc_links),
            ("counts", self._rpc_counts),
            ("pinset_branch", pinset.serve_branch),
        ):
            self.rpc.register(name, handler)
        pinset.rpc = self.rpc
        self.rpc.start()
        cluster = self.config["Cluster"]
        self.informer = Informer(
            self._p2p,
            self.monitor,
            peer_id=self.peer_id,
            cluster_name=cluster["Name"],
            ping_interval=float(cluster["MonitorPingInterval"]),
            ttl=float(cluster["MetricTTL"]),
            tags={str(k): str(v) for k, v in cluster.get("Tags", {}).items()},
            ping_value=self._ping_value,
            freespace=self._freespace,
            pinqueue=self.tracker.queue_length,
            numpin=self._numpin,
            on_alert=self._on_alert,
        )
        await self.tracker.start()
        await self.informer.start()
        self.core.admit_pin = self.admit_local_pin
        self._tasks = [
            asyncio.create_task(self._sync_tracker(), name="cluster-sync-tracker"),
            asyncio.create_task(self._state_sync_loop(), name="cluster-state-sync"),
            asyncio.create_task(self._connect_loop(), name="cluster-connect"),
            asyncio.create_task(self._uploads_loop(), name="cluster-uploads"),
        ]

    async def stop(self) -> None:
        """Stop the loops, the informer and the tracker (before the pinset and hosts stop)."""
        self.core.admit_pin = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("cluster task %s failed", task.get_name())
        self._tasks.clear()
        if self.informer is not None:
            await self.informer.stop()
        await self.tracker.stop()

    def is_trusted(self, peer: str) -> bool:
        """Whether ``peer`` is in ``Cluster.TrustedPeers`` (``*`` trusts everyone)."""
        return "*" in self._trusted or peer in self._trusted or peer == self.peer_id

    # ------------------------------------------------------------ informer sources (blocking: worker thread)
    def _ping_value(self) -> dict[str, Any]:
        return {
            "peer_name": self.peername,
            "ipfs_id": self.ipfs_id,
            "ipfs_addresses": self.swarm_addresses(),
            "cluster_addresses": self._p2p.peer_info("cluster")["Addresses"],
        }

    def _freespace(self) -> int:
        used = self.repo.store.stats()["stored_bytes"]
        return max(0, int(self.config["Datastore"]["StorageMax"]) - used)

    def _numpin(self) -> int:
        return self.tracker.counts().get("pinned", 0)

    def swarm_addresses(self) -> list[str]:
        """This node's IPFS (swarm) multiaddrs with ``/p2p/``: the ``origins`` of its uploads."""
        return list(self._p2p.peer_info("swarm")["Addresses"])

    # ------------------------------------------------------------ peers
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

    def _ping_info(self, peer: str) -> dict[str, Any]:
        """The decoded value of ``peer``'s latest ping metric ({} when none)."""
        metric = self.monitor.latest_for("ping", peer, now_ns())
        if metric is None:
            return {}
        try:
            value = json_loads(metric.value, max_bytes=64 * 1024)  # a lying peer's value is bounded too
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    async def id(self) -> dict[str, Any]:
        """This peer's ``ID`` object (IPFS Cluster shape)."""
        peers = self.peerset()
        addresses = self._p2p.peer_info("cluster")["Addresses"]
        peer_addrs: list[str] = []
        for peer in peers:
            if peer != self.peer_id:
                peer_addrs.extend(self._ping_info(peer).get("cluster_addresses", []))
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
                return await self._rpc().call(peer, "id", timeout=PEER_TIMEOUT)
            except RpcError as exc:
                info = self._ping_info(peer)
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

    # ------------------------------------------------------------ pins
    def _pinset(self) -> PinsetService:
        if self.pinset is None:
            raise ClusterError("the cluster pinset is not running")
        return self.pinset

    def _rpc(self) -> PeerRPC:
        if self.rpc is None:
            raise ClusterError("the cluster peer is not running")
        return self.rpc

    def _reserved(self, now: int) -> dict[str, int]:
        """Bytes allocated to each peer since its latest freespace metric (not yet visible in it)."""
        keep: list[tuple[str, int, int]] = []
        out: dict[str, int] = {}
        for peer, size, at in self._reservations:
            metric = self.monitor.latest_for("freespace", peer, now)
            seen = metric.received_at if metric is not None else 0
            if now - at > RESERVATION_TTL * 1e9:
                continue
            keep.append((peer, size, at))
            if seen <= at:
                out[peer] = out.get(peer, 0) + size
        self._reservations = keep
        return out

    def _allocation_view(self) -> AllocationView:
        """What allocation reads now: the peer set, ``AllocateBy``, their latest metrics, reservations,
        the untrusted peers (unless ``Cluster.AllocateToUntrustedPeers``) and the pin queues."""
        now = now_ns()
        peers = set(self.peerset())
        allocate_by = list(self.config["Cluster"]["AllocateBy"])
        metrics = {name: [m for m in self.monitor.latest(name, now) if m.peer in peers] for name in allocate_by}
        untrusted = set() if self.config["Cluster"]["AllocateToUntrustedPeers"] else {p for p in peers if not self.is_trusted(p)}
        queues: dict[str, int] = {}
        for metric in self.monitor.latest("pinqueue", now):
            if metric.peer in peers and metric.peer != self.peer_id:
                try:
                    queues[metric.peer] = int(metric.value)
                except ValueError:
                    continue
        queues[self.peer_id] = self._own_queue()
        return AllocationView(peers, allocate_by, metrics, self._reserved(now), untrusted, queues)

    def _own_queue(self) -> int:
        """Pins queued on this peer, counting those admitted and not yet written to the pinset."""
        return self.tracker.store.pins_queued() + self._admitting

    def _full_queues(self, view: AllocationView, existing: Pin | None, upload: bool) -> dict[str, str]:
        """Peers whose pin queue cannot take a new pin (``cluster/tracker.py`` admission rule); a peer
        that already holds the pin is not a new entry in its queue and is left out."""
        max_queue = int(self.config["PinTracker"]["MaxPinQueueSize"])
        full = {}
        for peer, queued in view.queues.items():
            if existing is not None and is_allocated(existing, peer):
                continue
            if queued >= admission_limit(max_queue, upload=upload and peer == self.peer_id):
                full[peer] = "with a full pin queue"
        return full

    def _allocate(
        self,
        pin: Pin,
        existing: Pin | None,
        size: int | None,
        blacklist: Collection[str] = (),
        view: AllocationView | None = None,
        upload: bool = False,
    ) -> list[str]:
        """The allocations of ``pin``; AllocationError when too few peers can take it, QueueFull
        when enough could but their pin queues are full."""
        view = view or self._allocation_view()
        full = self._full_queues(view, existing, upload)
        rmin, rmax = pin.replication_factor_min, pin.replication_factor_max
        if rmin == -1 and rmax == -1:
            # every peer pins it: each trusted peer's queue must take it (an untrusted peer's
            # queue metric could otherwise refuse every such pin)
            full = {p: r for p, r in full.items() if self.is_trusted(p)}
            if full:
                raise QueueFull(_queue_message(pin.cid, full, view.queues, self.config["PinTracker"]["MaxPinQueueSize"]))
            return []
        current = [p for p in (existing.allocations if existing else ()) if p in view.peers and p not in blacklist]
        excluded = {p: "untrusted" for p in view.untrusted}

        def run(exclude: dict[str, str]) -> list[str]:
            return allocate(
                pin.cid,
                rmin=rmin,
                rmax=rmax,
                current=current,
                priority=list(pin.user_allocations),
                metrics=view.metrics,
                allocate_by=view.allocate_by,
                blacklist=blacklist,
                size=size,
                reserved=view.reserved,
                excluded=exclude,
                peerset=len(view.peers),
            )

        try:
            return run({**excluded, **full})
        except AllocationError as exc:
            if not full:
                raise
            try:
                run(excluded)
            except AllocationError:
                raise exc from None  # not enough peers anyway: 400, the message counts the full queues
            raise QueueFull(_queue_message(pin.cid, full, view.queues, self.config["PinTracker"]["MaxPinQueueSize"])) from None

    def admit_local_pin(self) -> None:
        """Raise QueueFull when this peer's pin queue cannot take a pin of the kubo RPC's ``pin/add``
        (blocking-safe: reads counters only)."""
        max_queue = int(self.config["PinTracker"]["MaxPinQueueSize"])
        if self._own_queue() >= admission_limit(max_queue, upload=False):
            raise QueueFull(_queue_message(None, {self.peer_id: ""}, {self.peer_id: self._own_queue()}, max_queue))

    async def pin(self, pin: Pin, *, size: int | None = None, defaults: bool = True, upload: bool = False) -> Pin:
        """Allocate and commit ``pin``; returns it as committed.

        ``defaults``: a pin with replication -1/-1 gets ``Cluster.ReplicationFactorMin/Max``
        (pass False when the user asked for "everywhere" explicitly). ``size``: the DAG's
        size when known, so no peer is allocated more than it can store. ``upload``: its
        content was just uploaded to this peer (this peer's queue takes it up to
        ``MaxPinQueueSize``; other pins stop a tenth short).
        Raises ValueError/PinError/AllocationError for a pin that cannot be made, QueueFull
        (an AllocationError) when the pin queues of the peers it needs are full.
        """
        try:
            check_user_options(pin)  # garbage never enters the pinset, whatever API sent it
            if pin.pin_update is not None and pin.pin_update != pin.cid and await self._pinset().get(pin.pin_update) is None:
                raise ValueError(f"pin-update: {cid_to_str(pin.pin_update)} is not pinned in the cluster")
            committed = await self._pin(pin, size=size, defaults=defaults, upload=upload)
        except Exception:
            self.counters["pin_add_errors"] += 1
            raise
        self.counters["pin_add"] += 1
        return committed

    async def _pin(self, pin: Pin, *, size: int | None, defaults: bool, blacklist: Collection[str] = (), upload: bool = False) -> Pin:
        existing = await self._pinset().get(pin.cid)
        committed = self._prepare(pin, existing, size=size, defaults=defaults, blacklist=blacklist, upload=upload)
        admitted = self._admit(committed, existing)
        try:
            await self._pinset().add(committed)
        finally:
            self._admitting -= admitted
        return committed

    def _admit(self, pin: Pin, existing: Pin | None) -> int:
        """Count ``pin`` in this peer's queue until the pinset write reaches the tracker (1 or 0)."""
        if is_allocated(pin, self.peer_id) and (existing is None or not is_allocated(existing, self.peer_id)):
            self._admitting += 1
            return 1
        return 0

    def _prepare(
        self,
        pin: Pin,
        existing: Pin | None,
        *,
        size: int | None,
        defaults: bool,
        blacklist: Collection[str] = (),
        view: AllocationView | None = None,
        upload: bool = False,
    ) -> Pin:
        """``pin`` checked against the pinset's ``existing`` pin, with defaults, allocations and a timestamp."""
        cluster = self.config["Cluster"]
        now = now_ns()
        if pin.expire_at and pin.expire_at <= now:
            raise ValueError("expire_at is in the past")
        if defaults and pin.replication_factor_min == -1 and pin.replication_factor_max == -1:
            pin = pin.with_(
                replication_factor_min=int(cluster["ReplicationFactorMin"]),
                replication_factor_max=int(cluster["ReplicationFactorMax"]),
            )
        if existing is not None:
            if existing.type != pin.type:
                raise ValueError(f"cannot re-pin {cid_to_str(pin.cid)} as {pin.type}: it is pinned as {existing.type}")
            if existing.mode == "recursive" and pin.mode != "recursive":
                raise ValueError(f"cannot re-pin {cid_to_str(pin.cid)} as {pin.mode}: it is pinned recursively")
        for peer in pin.user_allocations:
            if not isinstance(peer, str) or not peer:
                raise ValueError("user allocations must be peer IDs")
            if not cluster["AllocateToUntrustedPeers"] and not self.is_trusted(peer):
                raise ValueError(
                    f"user allocation {peer} is not trusted (not in Cluster.TrustedPeers): "
                    "set Cluster.AllocateToUntrustedPeers to allocate pins to it"
                )
        allocations = self._allocate(pin, existing, size, blacklist, view, upload)
        committed = pin.with_(allocations=tuple(allocations), timestamp=now)
        if size:
            self._reservations.extend((peer, size, now) for peer in allocations if peer != self.peer_id)
        return committed

    async def pin_many(self, pins: list[Pin], *, defaults: Sequence[bool] | None = None) -> list[Pin]:
        """Allocate and commit many pins in one pinset write (bulk imports); returns them as committed.

        Each pin follows the rules of :meth:`pin`; the first pin that cannot be
        made raises (ValueError/PinError/AllocationError naming its CID; QueueFull when
        the queues are full) and nothing of the batch is written.
        """
        existing = await self._pinset().get_many([p.cid for p in pins])
        view = self._allocation_view()  # one view of the peers and metrics for the whole batch
        committed = []
        admitted = 0
        try:
            for i, (pin, old) in enumerate(zip(pins, existing)):
                try:
                    check_user_options(pin)
                    committed.append(self._prepare(pin, old, size=None, defaults=defaults[i] if defaults else True, view=view))
                except (ValueError, PinError, AllocationError) as exc:
                    self.counters["pin_add_errors"] += 1
                    raise type(exc)(f"{cid_to_str(pin.cid)}: {exc}") from None
                n = self._admit(committed[-1], old)
                admitted += n
                view.queues[self.peer_id] += n
            await self._pinset().add_many(committed)
        finally:
            self._admitting -= admitted
        self.counters["pin_add"] += len(committed)
        return committed

    async def unpin(self, cid: bytes) -> Pin:
        """Remove ``cid`` from the pinset; returns the pin as it was (NotFoundError when absent)."""
        existing = await self._pinset().get(cid)
        if existing is None or not await self._pinset().remove(cid):
            raise NotFoundError(f"{cid_to_str(cid)} is not pinned in the cluster")
        self.counters["unpin"] += 1
        return existing

    async def resolve(self, path: str) -> bytes:
        """The CID an ``/ipfs/...`` (or ``/ipld/...``) path points to; ValueError/NotFoundError."""
        if path.startswith("/ipld/"):
            path = "/ipfs/" + path[len("/ipld/") :]
        try:
            return await self._fetching.resolve(path)  # missing blocks are awaited on the loop, in no thread
        except CoreNotFound as exc:
            raise NotFoundError(str(exc)) from None
        except CoreError as exc:
            raise ValueError(str(exc)) from None

    async def get_pin(self, cid: bytes) -> Pin:
        """The pin of ``cid`` in the pinset (NotFoundError when absent)."""
        pin = await self._pinset().get(cid)
        if pin is None:
            raise NotFoundError(f"{cid_to_str(cid)} is not pinned in the cluster")
        return pin

    async def iter_pins(
        self,
        *,
        types: Collection[str] = (),
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Pin]:
        """Every pin of the pinset, sorted by CID, filtered by type, exact name and metadata (from the index)."""
        async for pin in self._state_pins(name=name, meta=meta):
            if types and pin.type not in types:
                continue
            yield pin

    async def _state_pins(
        self, *, name: str | None = None, meta: Mapping[str, str] | None = None, cids: Sequence[bytes] | None = None
    ) -> AsyncIterator[Pin]:
        """Pins of the state in CID order, read a page at a time in a worker thread."""
        pinset = self._pinset()
        replica = pinset.replica
        if cids is not None:
            for cid in sorted(set(cids)):
                pin = await pinset.get(cid)
                if pin is not None:
                    yield pin
            return
        terms: list[bytes] = []
        if name:
            terms.append(name_term(name))
        for k, v in (meta or {}).items():
            terms.append(meta_term(k, v))
        if terms:
            # the rarest term drives; the others are checked on the pin itself
            def matches() -> list[bytes]:
                return list(replica.set.find(terms[0]))

            for cid in sorted(await pinset.in_thread(matches)):
                pin = await pinset.get(cid)
                if pin is None:
                    continue
                if name and pin.name != name:
                    continue
                if meta and any(pin.metadata.get(k) != v for k, v in meta.items()):
                    continue
                yield pin
            return

        def page(start: bytes | None) -> list[tuple[bytes, bytes]]:
            return list(itertools.islice(replica.set.items(start), PAGE + 1))

        start: bytes | None = None
        while True:
            rows = await pinset.in_thread(page, start)
            for _key, value in rows[:PAGE]:
                try:
                    yield Pin.from_cbor(value)
                except PinError as exc:
                    log.warning("undecodable pin in the state skipped: %s", exc)
            if len(rows) <= PAGE:
                return
            start = rows[PAGE][0]

    # ------------------------------------------------------------ status
    def _identity(self, peer: str) -> tuple[str, str, tuple[str, ...]]:
        """(peer name, IPFS ID, IPFS addresses) of ``peer``, from its ping; cached for a second."""
        now = time.monotonic()
        hit = self._identities.get(peer)
        if hit is not None and now - hit[0] < 1.0:
            return hit[1]
        if peer == self.peer_id:
            ident = (self.peername, self.ipfs_id, tuple(self.swarm_addresses()))
        else:
            ping = self._ping_info(peer)
            ident = (ping.get("peer_name", ""), ping.get("ipfs_id", ""), tuple(ping.get("ipfs_addresses", ())))
        self._identities[peer] = (now, ident)
        return ident

    def _decorate(self, info: PinInfo) -> PinInfo:
        """Fill the peer name and IPFS identity of ``info`` from the peer's ping."""
        name, ipfs_id, addrs = self._identity(info.peer)
        return info.with_identity(name or info.peername, ipfs_id, addrs)

    def _plain(self, cid: bytes, peer: str, status: str, error: str = "") -> PinInfo:
        return self._decorate(PinInfo(cid=cid, peer=peer, status=status, timestamp=now_ns(), error=error))

    async def _local_status(self, cid: bytes, pin: Pin | None) -> PinInfo:
        info = await asyncio.get_running_loop().run_in_executor(None, self.tracker.status, cid, pin)
        return self._decorate(info)

    async def status(self, cid: bytes, *, local: bool = False) -> dict[str, Any]:
        """The ``GlobalPinInfo`` of ``cid``: this peer only (``local``) or every peer of the peer set."""
        pin = await self._pinset().get(cid)
        if local:
            return global_pin_info(cid, pin, [await self._local_status(cid, pin)])
        peers = self.peerset()
        infos = list(await asyncio.gather(*(self._peer_status(peer, cid, pin) for peer in peers)))
        if pin is not None:
            infos.extend(self._missing_peers(pin, peers))
        return global_pin_info(cid, pin, infos)

    def _missing_peers(self, pin: Pin, peerset: Collection[str]) -> list[PinInfo]:
        """``cluster_error`` entries for allocated peers that left the peer set (no fresh ping)."""
        return [
            self._plain(pin.cid, peer, "cluster_error", "peer is not in the peer set: no ping within the metric TTL")
            for peer in pin.allocations
            if peer not in peerset
        ]

    async def _peer_status(self, peer: str, cid: bytes, pin: Pin | None) -> PinInfo:
        if peer == self.peer_id:
            return await self._local_status(cid, pin)
        if pin is None:
            return self._plain(cid, peer, "unpinned")
        if not is_allocated(pin, peer):
            return self._plain(cid, peer, "remote")
        try:
            data = await self._rpc().call(peer, "status", cid, timeout=PEER_TIMEOUT)
            return self._decorate(PinInfo.decode(data))
        except (RpcError, ValueError) as exc:
            return self._plain(cid, peer, "cluster_error", str(exc))

    async def status_all(
        self,
        *,
        local: bool = False,
        filter_mask: int = 0,
        cids: Sequence[bytes] | None = None,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """``GlobalPinInfo`` of every pin (or of ``cids``), streamed in CID order.

        Every other peer streams its own statuses (sorted by CID) once; they are
        merged with the state as it is read, so memory stays flat. ``filter_mask``
        keeps pins where at least one peer's status matches (TrackerStatus bits).
        """
        from cluster.status import status_bit

        peers = [self.peer_id] if local else self.peerset()
        remote = {p: _PeerStream(self, p) for p in peers if p != self.peer_id}
        try:
            async for batch in _batched(self._state_pins(name=name, meta=meta, cids=cids), PAGE):
                local_infos = await asyncio.get_running_loop().run_in_executor(
                    None, lambda b=batch: [self.tracker.status(p.cid, p) for p in b]
                )
                for pin, mine in zip(batch, local_infos):
                    infos = [self._decorate(mine)]
                    for peer, stream in remote.items():
                        if not is_allocated(pin, peer):
                            infos.append(self._plain(pin.cid, peer, "remote"))
                            continue
                        infos.append(await stream.status_of(pin.cid))
                    if not local:
                        infos.extend(self._missing_peers(pin, peers))
                    if filter_mask and not any(status_bit(i.status) & filter_mask for i in infos):
                        continue
                    yield global_pin_info(pin.cid, pin, infos)
        finally:
            for stream in remote.values():
                await stream.aclose()

    async def recover(self, cid: bytes, *, local: bool = False) -> dict[str, Any]:
        """Re-queue a failed pin or unpin of ``cid`` on this peer (``local``) or on every allocated peer."""
        pin = await self._pinset().get(cid)
        if pin is None and not local:
            raise NotFoundError(f"{cid_to_str(cid)} is not pinned in the cluster")
        peers = [self.peer_id] if local else self.peerset()

        async def one_peer(peer: str) -> PinInfo:
            if peer == self.peer_id:
                return self._decorate(await self.tracker.recover(cid, pin))
            if pin is not None and not is_allocated(pin, peer):
                return self._plain(cid, peer, "remote")
            try:
                return self._decorate(PinInfo.decode(await self._rpc().call(peer, "recover", cid, timeout=PEER_TIMEOUT)))
            except (RpcError, ValueError) as exc:
                return self._plain(cid, peer, "cluster_error", str(exc))

        infos = await asyncio.gather(*(one_peer(p) for p in peers))
        return global_pin_info(cid, pin, infos)

    async def recover_all(self, *, local: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Re-queue every failed pin and unpin (this peer, or every peer); yields what was re-queued."""
        peers = [self.peer_id] if local else self.peerset()
        for peer in peers:
            if peer == self.peer_id:
                infos = [self._decorate(i) for i in await self.tracker.recover_all()]
            else:
                try:
                    infos = [
                        self._decorate(PinInfo.decode(d))
                        async for d in self._rpc().stream(peer, "recover_all", timeout=PEER_TIMEOUT)
                    ]
                except (RpcError, ValueError) as exc:
                    log.warning("recover on %s failed: %s", peer, exc)
                    continue
            for info in infos:
                pin = await self._pinset().get(info.cid)
                yield global_pin_info(info.cid, pin, [info])

    # ------------------------------------------------------------ health
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

    async def health_graph(self) -> dict[str, Any]:
        """The ``ConnectGraph``: who is connected to whom on the cluster and IPFS hosts."""
        peers = self.peerset()
        graph: dict[str, Any] = {
            "cluster_id": self.peer_id,
            "id_to_peername": {},
            "ipfs_links": {},
            "cluster_links": {},
            "cluster_trust_links": {p: self.is_trusted(p) for p in peers},
            "cluster_to_ipfs": {},
        }

        async def links(peer: str) -> tuple[str, dict[str, Any] | None]:
            try:
                if peer == self.peer_id:
                    return peer, await self._links()
                return peer, await self._rpc().call(peer, "links", timeout=PEER_TIMEOUT)
            except (RpcError, Exception) as exc:  # an unreachable peer has no links in the graph
                log.debug("links of %s: %s", peer, exc)
                return peer, None

        for peer, data in await asyncio.gather(*(links(p) for p in peers)):
            ping = self._ping_info(peer) if peer != self.peer_id else {"peer_name": self.peername}
            graph["id_to_peername"][peer] = ping.get("peer_name", "")
            if data is None:
                graph["cluster_links"][peer] = []
                continue
            graph["cluster_links"][peer] = data["cluster"]
            graph["cluster_to_ipfs"][peer] = data["ipfs_id"]
            graph["ipfs_links"][data["ipfs_id"]] = data["ipfs"]
        return graph

    async def status_counts(self) -> dict[str, Any]:
        """Pins by status on every peer of the peer set and their sum (each peer's counts are O(1)).

        ``{"peers": {peer: {status: n}}, "total": {status: n}, "errors": {peer: message}}``:
        what ``pinion top`` shows as "pins by status across the cluster".
        """

        async def ask(peer: str) -> tuple[str, dict[str, int] | None, str]:
            if peer == self.peer_id:
                return peer, self.tracker.counts(), ""
            try:
                return peer, await self._rpc().call(peer, "counts", timeout=PEER_TIMEOUT), ""
            except RpcError as exc:
                return peer, None, str(exc)

        out: dict[str, Any] = {"peers": {}, "total": {}, "errors": {}}
        for peer, counts, error in await asyncio.gather(*(ask(p) for p in self.peerset())):
            if counts is None:
                out["errors"][peer] = error
                continue
            out["peers"][peer] = counts
            for status, n in counts.items():
                out["total"][status] = out["total"].get(status, 0) + int(n)
        return out

    async def _links(self) -> dict[str, Any]:
        cluster = [p["Peer"] for p in await self._p2p.peers("cluster")]
        ipfs = [p["Peer"] for p in await self._p2p.peers("swarm")]
        return {"cluster": cluster, "ipfs": ipfs, "ipfs_id": self.ipfs_id}

    # ------------------------------------------------------------ peer RPC handlers (other peers call these)
    async def _rpc_id(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        async for page in one(await self.id()):
            yield page

    async def _rpc_status(self, _peer: str, args: Any) -> AsyncIterator[list[Any]]:
        cid = _cid_arg(args)
        pin = await self._pinset().get(cid)
        info = await asyncio.get_running_loop().run_in_executor(None, self.tracker.status, cid, pin)
        yield [info.encode()]

    async def _rpc_status_all(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        """This peer's tracked CIDs in CID order (pins not allocated here are left out: the caller knows they are remote)."""
        start: bytes | None = None
        while True:

            def page(s: bytes | None = start) -> list[PinInfo]:
                return list(itertools.islice(self.tracker.iter_status(s), PAGE + 1))

            infos = await asyncio.get_running_loop().run_in_executor(None, page)
            if infos[:PAGE]:
                yield [i.encode() for i in infos[:PAGE]]
            if len(infos) <= PAGE:
                return
            start = infos[PAGE].cid

    async def _rpc_recover(self, _peer: str, args: Any) -> AsyncIterator[list[Any]]:
        cid = _cid_arg(args)
        info = await self.tracker.recover(cid, await self._pinset().get(cid))
        yield [info.encode()]

    async def _rpc_recover_all(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        async def items() -> AsyncIterator[Any]:
            for info in await self.tracker.recover_all():
                yield info.encode()

        async for page in paged(items()):
            yield page

    async def _rpc_links(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        yield [await self._links()]

    async def _rpc_counts(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        yield [self.tracker.counts()]

    # ------------------------------------------------------------ fetching (the tracker calls this)
    async def _fetch(self, pin: Pin, progress: Any) -> None:
        """Fetch ``pin``'s DAG over bitswap: connect to its origins and to the other allocated peers first.

        A DAG already complete here (uploaded to this peer, identity CIDs) is
        checked in a worker thread and never touches the network."""
        max_depth = None if pin.max_depth < 0 else pin.max_depth
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._reads, self._complete_here, pin.cid, max_depth):
            progress(1)
            return
        if await loop.run_in_executor(None, self._freespace) <= 0:
            raise RuntimeError("Datastore.StorageMax reached: no room for new content on this peer")

        async def keep_connecting() -> None:
            # providers may appear during the fetch (a peer joins, its pings arrive, content is added)
            while True:
                await asyncio.sleep(float(self.config["Cluster"]["MonitorPingInterval"]))
                await self._connect_providers(pin)

        await self._connect_providers(pin)
        connector = asyncio.create_task(keep_connecting(), name="pin-connect")
        try:
            await self._content.fetch_dag(pin.cid, max_depth=max_depth, progress=lambda blocks, _bytes: progress(blocks))
        finally:
            connector.cancel()

    def _complete_here(self, root: bytes, max_depth: int | None) -> bool:
        """Whether every block of the DAG under ``root`` is in the local block store (blocking)."""
        try:
            for _cid, _data in walk_dag(root, self.repo.store.get, max_depth=max_depth):
                pass
        except DagBlockNotFound:
            return False
        return True

    async def _connect_providers(self, pin: Pin) -> None:
        connected = {p["Peer"] for p in await self._p2p.peers("swarm")}
        addrs: list[str] = list(pin.origins)
        for peer in self.peerset():
            if peer != self.peer_id and (not pin.allocations or peer in pin.allocations or not pin.origins):
                addrs.extend(self._ping_info(peer).get("ipfs_addresses", [])[:2])
        tried: set[str] = set()
        for addr in addrs:
            target = addr.rsplit("/p2p/", 1)[-1] if "/p2p/" in addr else ""
            if not target or target == self.ipfs_id or target in connected or target in tried:
                continue
            tried.add(target)
            try:
                await self._p2p.connect(addr, "swarm", timeout=5.0)
                connected.add(target)
            except Exception as exc:  # a provider we cannot reach: others may serve the blocks
                log.debug("connecting to provider %s: %s", addr, exc)

    # ------------------------------------------------------------ background loops
    async def _sync_tracker(self) -> None:
        """Reconcile the tracker with the state at start (pins allocated here that it has not seen)."""
        try:
            await self.tracker.sync_state(self._state_pins())
        except Exception:
            log.exception("reconciling the pin tracker with the state failed")

    async def _state_sync_loop(self) -> None:
        """Every ``Cluster.StateSyncInterval`` s: remove expired pins (only the XOR-closest peer acts)."""
        interval = float(self.config["Cluster"]["StateSyncInterval"])
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_pins()
            except Exception:
                log.exception("removing expired pins failed")

    async def _connect_loop(self) -> None:
        """Keep a cluster-host connection to every peer of the peer set (learnt from its pings).

        Bootstrapping connects a new peer to one other; the pinset's bitswap and the
        peer RPC work best when every peer is connected to every other, as in IPFS Cluster.
        """
        interval = float(self.config["Cluster"]["MonitorPingInterval"])
        while True:
            await asyncio.sleep(interval)
            try:
                connected = {p["Peer"] for p in await self._p2p.peers("cluster")}
                for peer in self.peerset():
                    if peer == self.peer_id or peer in connected:
                        continue
                    for addr in self._ping_info(peer).get("cluster_addresses", [])[:2]:
                        full = addr if "/p2p/" in addr else f"{addr}/p2p/{peer}"
                        try:
                            await self._p2p.connect(full, "cluster", timeout=5.0)
                            break
                        except Exception as exc:  # try its next address; the next round retries
                            log.debug("connecting to cluster peer %s at %s: %s", peer, full, exc)
            except Exception:
                log.exception("connecting to the cluster peers failed")

    async def _uploads_loop(self) -> None:
        """Every ``Cluster.MonitorPingInterval`` s: release the uploads whose cluster pin is settled."""
        interval = float(self.config["Cluster"]["MonitorPingInterval"])
        while True:
            await asyncio.sleep(interval)
            try:
                await self.release_uploads()
            except Exception:
                log.exception("releasing settled uploads failed")

    async def release_uploads(self, limit: int = UPLOADS_PER_ROUND) -> int:
        """Drop the upload markers (``blockstore/uploads.py``) of uploads whose cluster pin is
        settled (``cluster/uploads.py``); returns how many. Looks at ``limit`` markers at most,
        each round after the last one looked at (then from the start again)."""
        loop = asyncio.get_running_loop()
        uploads = Uploads(self.repo.db)
        markers = await loop.run_in_executor(None, lambda: list(itertools.islice(uploads.scan(self._uploads_cursor), limit)))
        self._uploads_cursor = markers[-1][0] if len(markers) == limit else None
        done: list[bytes] = []
        now = now_ns()
        for cid, at in markers:
            pin = await self._pinset().get(cid)
            rec = await loop.run_in_executor(None, self.tracker.store.get, cid)
            statuses: dict[str, str] | None = None
            if pin is not None and pin.allocations and self.peer_id not in pin.allocations:
                infos = await asyncio.gather(*(self._peer_status(p, cid, pin) for p in pin.allocations))
                statuses = {i.peer: i.status for i in infos}
            if upload_settled(pin, me=self.peer_id, age=(now - at) / 1e9, tracked_here=rec is not None and rec.op == "pin", statuses=statuses):
                done.append(cid)
        if done:
            await loop.run_in_executor(None, uploads.release, done)
        return len(done)

    async def expire_pins(self) -> int:
        """Remove pins whose ``expire_at`` passed, where this peer is the one to act; returns how many."""
        now = now_ns()
        peers = [p for p in self.peerset() if self.is_trusted(p)]
        expired = [p.cid async for p in self._state_pins() if p.expire_at and p.expire_at <= now]
        removed = 0
        for cid in expired:
            if xor_closest(cid, peers) != self.peer_id:
                continue
            if await self._pinset().remove(cid):
                removed += 1
        self.counters["expired"] += removed
        return removed

    def _on_alert(self, alert: Alert) -> None:
        """A metric expired: a ping alert may start re-allocation of the gone peer's pins."""
        metric = alert.metric
        if metric.name != "ping" or metric.peer == self.peer_id:
            return
        self._gone_since.setdefault(metric.peer, alert.triggered_at)
        if self.config["Cluster"]["DisableRepinning"]:
            return
        task = asyncio.get_running_loop().create_task(self._repin_after_grace(metric.peer), name="cluster-repin")
        self._tasks.append(task)

    async def _repin_after_grace(self, peer: str) -> None:
        await asyncio.sleep(float(self.config["Cluster"]["RepinningGrace"]))
        if peer in self.peerset():
            self._gone_since.pop(peer, None)
            return
        await self.repin_from(peer)

    async def repin_from(self, gone: str) -> int:
        """Re-allocate the pins allocated to ``gone`` (only those for which this peer is XOR-closest)."""
        peers = [p for p in self.peerset() if p != gone and self.is_trusted(p)]
        moved = 0
        async for pin in self._state_pins():
            if gone not in pin.allocations or xor_closest(pin.cid, peers) != self.peer_id:
                continue
            keep = tuple(p for p in pin.allocations if p != gone)
            try:
                await self._pin(pin.with_(allocations=keep), size=None, defaults=False, blacklist=(gone,))
                moved += 1
            except (AllocationError, ValueError, PinError) as exc:
                log.warning("re-allocating %s away from %s failed: %s", cid_to_str(pin.cid), gone, exc)
        self.counters["repinned"] += moved
        return moved

    # ------------------------------------------------------------ metrics
    def stats(self) -> dict[str, Any]:
        """Numbers for Prometheus: tracker counts by status, queue, peers, counters, informer values."""
        return {
            "status": self.tracker.counts(),
            "queue": self.tracker.queue_length(),
            "peers": len(self.peerset()),
            "counters": dict(self.counters),
            "freespace": self._own_metric("freespace"),
            "uploads": sum(1 for _ in Uploads(self.repo.db)),
        }

    def _own_metric(self, name: str) -> int | None:
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


def _cid_arg(args: Any) -> bytes:
    if isinstance(args, bytes):
        return args
    if isinstance(args, str):
        try:
            return cid_from_str(args)
        except CidError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError("a CID argument is required")


async def _batched(items: AsyncIterator[Pin], size: int) -> AsyncIterator[list[Pin]]:
    batch: list[Pin] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _PeerStream:
    """One peer's ``status_all`` stream, advanced in CID order by :meth:`ClusterPeer.status_all`."""

    def __init__(self, peer_obj: ClusterPeer, peer: str) -> None:
        self._owner = peer_obj
        self.peer = peer
        self._it: AsyncIterator[Any] | None = None
        self._head: PinInfo | None = None
        self._error: str | None = None
        self._done = False

    async def _next(self) -> PinInfo | None:
        if self._it is None:
            self._it = self._owner._rpc().stream(self.peer, "status_all", timeout=PEER_TIMEOUT).__aiter__()
        try:
            return PinInfo.decode(await self._it.__anext__())
        except StopAsyncIteration:
            self._done = True
            return None

    async def status_of(self, cid: bytes) -> PinInfo:
        """This peer's status of ``cid`` (CIDs must be asked in increasing order)."""
        if self._error is None and not self._done:
            try:
                while self._head is None or self._head.cid < cid:
                    self._head = await self._next()
                    if self._head is None:
                        break
            except (RpcError, ValueError) as exc:
                self._error = str(exc)
        if self._error is not None:
            return self._owner._plain(cid, self.peer, "cluster_error", self._error)
        if self._head is not None and self._head.cid == cid:
            return self._owner._decorate(self._head)
        # allocated here but the peer does not track it (yet): its state lags behind ours
        return self._owner._plain(cid, self.peer, "pin_queued")

    async def aclose(self) -> None:
        """Abandon the stream (closes the libp2p stream)."""
        if self._it is not None and hasattr(self._it, "aclose"):
            try:
                await self._it.aclose()  # type: ignore[attr-defined]
            except Exception:
                pass
