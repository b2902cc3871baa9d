"""Writing pins: admission to the pin queues, allocation over the live peer set, the pinset write.

:meth:`Pinning.pin` checks the user's options, reads the pin the pinset
holds, builds an :class:`~cluster.prepare.AllocationView` from the latest
informer metrics of the peer set (trusted peers only unless
``Cluster.AllocateToUntrustedPeers``; the bytes reserved by recent
allocations, :mod:`cluster.reservations`; the pin queues, this peer's
counted exactly) and lets :func:`cluster.prepare.prepare` decide, then
writes the pin. While the write is on its way to the tracker, a pin newly
allocated here counts in this peer's queue (``admitting``), so a burst of
pins cannot overfill it. ``admit_local_pin`` applies the same rule to the
kubo RPC's ``pin/add``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from blockstore.cid import cid_to_str
from cluster.allocator import AllocationError
from cluster.monitor import MetricStore
from cluster.pin import Pin, PinError
from cluster.pinoptions import check_user_options
from cluster.prepare import AllocationView, Placement, admits, allocations, prepare, queue_message
from cluster.reservations import Reservations
from cluster.tracker import QueueFull, admission_limit

from .errors import NotFoundError
from .interfaces import PinsetState, TrackerView
from .membership import Membership, now_ns

log = logging.getLogger(__name__)

#: seconds a byte reservation on a peer lasts when no newer freespace metric arrives
RESERVATION_TTL = 600.0


class Pinning:
    """Pins and unpins in the cluster pinset (see module docstring)."""

    def __init__(
        self,
        pinset: PinsetState,
        tracker: TrackerView,
        members: Membership,
        monitor: MetricStore,
        config: Mapping[str, Any],
    ) -> None:
        self._pinset = pinset
        self._tracker = tracker
        self._members = members
        self.monitor = monitor
        #: the node's config (``Cluster``, ``PinTracker``), read at each pin
        self.config = config
        self.peer_id = members.peer_id
        self.reservations = Reservations(self.peer_id, int(RESERVATION_TTL * 1e9))
        #: pins admitted to this peer's queue, not yet written to the pinset
        self.admitting = 0
        #: counters for metrics
        self.counters = {"pin_add": 0, "pin_add_errors": 0, "unpin": 0}

    # ------------------------------------------------------------ the rules and the view
    def rules(self) -> Placement:
        """The allocation rules of this peer, from its config now."""
        cluster = self.config["Cluster"]
        return Placement(
            me=self.peer_id,
            max_queue=int(self.config["PinTracker"]["MaxPinQueueSize"]),
            is_trusted=self._members.is_trusted,
            allow_untrusted=bool(cluster["AllocateToUntrustedPeers"]),
            defaults=(int(cluster["ReplicationFactorMin"]), int(cluster["ReplicationFactorMax"])),
        )

    def own_queue(self) -> int:
        """Pins queued on this peer, counting those admitted and not yet written to the pinset."""
        return self._tracker.pins_queued() + self.admitting

    def view(self) -> AllocationView:
        """What allocation reads now: the peer set, ``AllocateBy``, their latest metrics, reservations,
        the untrusted peers (unless ``Cluster.AllocateToUntrustedPeers``) and the pin queues."""
        now = now_ns()
        peers = set(self._members.peerset())
        cluster = self.config["Cluster"]
        allocate_by = list(cluster["AllocateBy"])
        metrics = {name: [m for m in self.monitor.latest(name, now) if m.peer in peers] for name in allocate_by}
        untrusted = set() if cluster["AllocateToUntrustedPeers"] else {p for p in peers if not self._members.is_trusted(p)}
        queues: dict[str, int] = {}
        for metric in self.monitor.latest("pinqueue", now):
            if metric.peer in peers and metric.peer != self.peer_id:
                try:
                    queues[metric.peer] = int(metric.value)
                except ValueError:
                    continue
        queues[self.peer_id] = self.own_queue()
        return AllocationView(peers, allocate_by, metrics, self.reservations.reserved(now, self._freespace_seen), untrusted, queues)

    def _freespace_seen(self, peer: str) -> int:
        metric = self.monitor.latest_for("freespace", peer, now_ns())
        return metric.received_at if metric is not None else 0

    def allocate(
        self,
        pin: Pin,
        existing: Pin | None,
        size: int | None,
        blacklist: Collection[str] = (),
        view: AllocationView | None = None,
        upload: bool = False,
    ) -> list[str]:
        """The allocations of ``pin`` over the current view (:func:`cluster.prepare.allocations`)."""
        return allocations(pin, existing, view or self.view(), self.rules(), size=size, blacklist=blacklist, upload=upload)

    def admit_local_pin(self) -> None:
        """Raise QueueFull when this peer's pin queue cannot take a pin of the kubo RPC's ``pin/add``
        (blocking-safe: reads counters only)."""
        max_queue = int(self.config["PinTracker"]["MaxPinQueueSize"])
        if self.own_queue() >= admission_limit(max_queue, upload=False):
            raise QueueFull(queue_message(None, {self.peer_id: ""}, {self.peer_id: self.own_queue()}, max_queue))

    # ------------------------------------------------------------ writes
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
            if pin.pin_update is not None and pin.pin_update != pin.cid and await self._pinset.get(pin.pin_update) is None:
                raise ValueError(f"pin-update: {cid_to_str(pin.pin_update)} is not pinned in the cluster")
            committed = await self.write(pin, size=size, defaults=defaults, upload=upload)
        except Exception:
            self.counters["pin_add_errors"] += 1
            raise
        self.counters["pin_add"] += 1
        return committed

    async def write(self, pin: Pin, *, size: int | None, defaults: bool, blacklist: Collection[str] = (), upload: bool = False) -> Pin:
        """Prepare ``pin`` over the pinset's current pin and write it (no user-option check, no counters)."""
        existing = await self._pinset.get(pin.cid)
        committed = self._prepare(pin, existing, size=size, defaults=defaults, blacklist=blacklist, upload=upload)
        admitted = self._admit(committed, existing)
        try:
            await self._pinset.add(committed)
        finally:
            self.admitting -= admitted
        return committed

    def _admit(self, pin: Pin, existing: Pin | None) -> int:
        """Count ``pin`` in this peer's queue until the pinset write reaches the tracker (1 or 0)."""
        if admits(pin, existing, self.peer_id):
            self.admitting += 1
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
        now = now_ns()
        committed = prepare(
            pin, existing, view or self.view(), self.rules(),
            now=now, size=size, defaults=defaults, blacklist=blacklist, upload=upload,
        )
        if size:
            self.reservations.reserve(committed.allocations, size, now)
        return committed

    async def pin_many(self, pins: list[Pin], *, defaults: Sequence[bool] | None = None) -> list[Pin]:
        """Allocate and commit many pins in one pinset write (bulk imports); returns them as committed.

        Each pin follows the rules of :meth:`pin`; the first pin that cannot be
        made raises (ValueError/PinError/AllocationError naming its CID; QueueFull when
        the queues are full) and nothing of the batch is written.
        """
        existing = await self._pinset.get_many([p.cid for p in pins])
        view = self.view()  # one view of the peers and metrics for the whole batch
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
            await self._pinset.add_many(committed)
        finally:
            self.admitting -= admitted
        self.counters["pin_add"] += len(committed)
        return committed

    async def unpin(self, cid: bytes) -> Pin:
        """Remove ``cid`` from the pinset; returns the pin as it was (NotFoundError when absent)."""
        existing = await self._pinset.get(cid)
        if existing is None or not await self._pinset.remove(cid):
            raise NotFoundError(f"{cid_to_str(cid)} is not pinned in the cluster")
        self.counters["unpin"] += 1
        return existing
