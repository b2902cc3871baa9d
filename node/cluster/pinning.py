"""Writing pins: admission to the pin queues, allocation over the live peer set, the pinset write.

:meth:`Pinning.pin` checks the user's options, reads the pin the pinset
holds, reads the :class:`~cluster.prepare.AllocationView` of the latest
informer metrics of the peer set (trusted peers only unless
``Cluster.AllocateToUntrustedPeers``; the bytes reserved by recent
allocations, :mod:`cluster.reservations`; the pin queues, this peer's
counted exactly) and lets :func:`cluster.prepare.prepare` decide, then
writes the pin. The view is built from the metrics once and kept until they
change (:class:`~cluster.prepare.ViewCache`).

Concurrent pins travel together (:class:`~node.cluster.coalesce.Coalescer`):
the pins that arrive within ``PIN_WINDOW`` seconds, or while the previous
batch is being written, are read from the pinset in one worker-thread call,
placed against one view, and written in one pinset write (one CRDT queue
write, so one delta for the batch when it commits). Each pin's error is its
own; each pin is acknowledged when its batch is durably queued. While the write is on its way to the tracker, a pin newly
allocated here counts in this peer's queue (``admitting``), so a burst of
pins cannot overfill it. ``admit_local_pin`` applies the same rule to the
kubo RPC's ``pin/add``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from blockstore.cid import cid_to_str
from cluster.allocator import AllocationError
from cluster.monitor import MetricStore
from cluster.pin import Pin, PinError
from cluster.pinoptions import check_user_options
from cluster.prepare import AllocationView, Placement, ViewCache, admits, allocations, prepare, queue_message
from cluster.reservations import Reservations
from cluster.tracker import QueueFull, admission_limit

from .coalesce import Coalescer
from .errors import NotFoundError
from .interfaces import PinsetState, TrackerView
from .membership import Membership, now_ns

log = logging.getLogger(__name__)

#: seconds a byte reservation on a peer lasts when no newer freespace metric arrives
RESERVATION_TTL = 600.0
#: seconds concurrent pins wait for each other before their batch is written
PIN_WINDOW = 0.002
#: most pins written in one batch of concurrent pins
PIN_BATCH = 1000


class PinRequest(NamedTuple):
    """One :meth:`Pinning.pin` call waiting for its batch."""

    pin: Pin
    size: int | None
    defaults: bool
    upload: bool


@dataclass(frozen=True, slots=True)
class PinningConfig:
    """The settings pinning reads, from ``Cluster`` and ``PinTracker``, read once at construction."""

    #: ``Cluster.ReplicationFactorMin`` / ``ReplicationFactorMax``: a pin's defaults
    replication: tuple[int, int]
    #: ``PinTracker.MaxPinQueueSize``: a peer whose queue is this full takes no new pin
    max_queue: int
    #: ``Cluster.AllocateBy``: the metrics allocation sorts peers by
    allocate_by: tuple[str, ...]
    #: ``Cluster.AllocateToUntrustedPeers``
    allow_untrusted: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PinningConfig:
        """From a loaded config (defaults filled by :mod:`node.config`)."""
        cluster = config["Cluster"]
        return cls(
            replication=(int(cluster["ReplicationFactorMin"]), int(cluster["ReplicationFactorMax"])),
            max_queue=int(config["PinTracker"]["MaxPinQueueSize"]),
            allocate_by=tuple(cluster["AllocateBy"]),
            allow_untrusted=bool(cluster["AllocateToUntrustedPeers"]),
        )


class Pinning:
    """Pins and unpins in the cluster pinset (see module docstring)."""

    def __init__(
        self,
        pinset: PinsetState,
        tracker: TrackerView,
        members: Membership,
        monitor: MetricStore,
        config: PinningConfig,
    ) -> None:
        self._pinset = pinset
        self._tracker = tracker
        self._members = members
        self.monitor = monitor
        self.config = config
        self.peer_id = members.peer_id
        self.reservations = Reservations(self.peer_id, int(RESERVATION_TTL * 1e9))
        #: pins admitted to this peer's queue, not yet written to the pinset
        self.admitting = 0
        #: guards ``admitting`` and ``reservations``: a batch is placed in the pinset's worker thread
        self._lock = threading.Lock()
        #: counters for metrics
        self.counters = {"pin_add": 0, "pin_add_errors": 0, "unpin": 0}
        #: the view of the peer set's metrics, rebuilt when they change
        self.views = ViewCache()
        #: concurrent :meth:`pin` calls, written a batch at a time
        self.batcher: Coalescer[PinRequest, Pin] = Coalescer(self._pin_batch, window=PIN_WINDOW, max_batch=PIN_BATCH)

    # ------------------------------------------------------------ the rules and the view
    def rules(self) -> Placement:
        """The allocation rules of this peer."""
        config = self.config
        return Placement(
            me=self.peer_id,
            max_queue=config.max_queue,
            is_trusted=self._members.is_trusted,
            allow_untrusted=config.allow_untrusted,
            defaults=config.replication,
        )

    def own_queue(self) -> int:
        """Pins queued on this peer, counting those admitted and not yet written to the pinset."""
        return self._tracker.pins_queued() + self.admitting

    def view(self) -> AllocationView:
        """What allocation reads now: the peer set, ``AllocateBy``, their latest metrics, reservations,
        the untrusted peers (unless ``Cluster.AllocateToUntrustedPeers``) and the pin queues.

        Everything but this peer's queue and the reservations comes from the cached view,
        rebuilt when a metric arrives or expires or a peer is removed."""
        now = now_ns()
        allocate_by = list(self.config.allocate_by)
        allow_untrusted = self.config.allow_untrusted
        key = (self.monitor.version, self.config.allocate_by, allow_untrusted)  # a removed peer: its metrics are dropped
        base = self.views.get(key, now)
        if base is None:
            base = self.views.put(key, self._build_view(now, allocate_by, allow_untrusted), self.monitor.next_expiry(now))
        queues = dict(base.queues)
        queues[self.peer_id] = self.own_queue()
        with self._lock:
            reserved = self.reservations.reserved(now, self._freespace_seen)
        return base._replace(reserved=reserved, queues=queues)

    def _build_view(self, now: int, allocate_by: list[str], allow_untrusted: bool) -> AllocationView:
        """The view of the metrics at ``now`` (this peer's queue and the reservations left empty)."""
        peers = set(self._members.peerset())
        metrics = {name: [m for m in self.monitor.latest(name, now) if m.peer in peers] for name in allocate_by}
        untrusted = set() if allow_untrusted else {p for p in peers if not self._members.is_trusted(p)}
        queues: dict[str, int] = {}
        for metric in self.monitor.latest("pinqueue", now):
            if metric.peer in peers and metric.peer != self.peer_id:
                try:
                    queues[metric.peer] = int(metric.value)
                except ValueError:
                    continue
        return AllocationView(peers, allocate_by, metrics, {}, untrusted, queues)

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
        max_queue = self.config.max_queue
        if self.own_queue() >= admission_limit(max_queue, upload=False):
            raise QueueFull(queue_message(None, {self.peer_id: ""}, {self.peer_id: self.own_queue()}, max_queue))

    # ------------------------------------------------------------ writes
    async def pin(self, pin: Pin, *, size: int | None = None, defaults: bool = True, upload: bool = False) -> Pin:
        """Allocate and commit ``pin``; returns it as committed (durably queued in the pinset).

        ``defaults``: a pin with replication -1/-1 gets ``Cluster.ReplicationFactorMin/Max``
        (pass False when the user asked for "everywhere" explicitly). ``size``: the DAG's
        size when known, so no peer is allocated more than it can store. ``upload``: its
        content was just uploaded to this peer (this peer's queue takes it up to
        ``MaxPinQueueSize``; other pins stop a tenth short).
        Raises ValueError/PinError/AllocationError for a pin that cannot be made, QueueFull
        (an AllocationError) when the pin queues of the peers it needs are full.
        Concurrent calls are written together (see module docstring).
        """
        return await self.batcher.submit(PinRequest(pin, size, defaults, upload))

    async def _pin_batch(self, requests: list[PinRequest]) -> list[Pin | BaseException]:
        """Pin a batch of :meth:`pin` requests: one view, one worker-thread call that reads the held
        pins, places the batch and writes it (``PinsetState.update_many``).

        Requests are placed in order, each against the pins written before it in the
        batch (a pin twice in a batch, or a pin update of a pin of the same batch, see
        the earlier one). A request that cannot be made gets its own error; when the
        pinset write fails, every request written by it gets that error."""
        outcomes: list[Pin | BaseException | None] = []  # None: not decided yet
        wanted: dict[bytes, None] = {}
        for req in requests:
            try:
                check_user_options(req.pin)  # garbage never enters the pinset, whatever API sent it
            except Exception as exc:
                outcomes.append(exc)
                continue
            outcomes.append(None)
            wanted[req.pin.cid] = None
            if req.pin.pin_update is not None and req.pin.pin_update != req.pin.cid:
                wanted[req.pin.pin_update] = None
        cids = list(wanted)
        view, rules = self.view(), self.rules()  # one view of the peers and metrics for the whole batch
        admitted = 0

        def place(held_pins: list[Pin | None]) -> list[Pin]:
            """In the pinset's worker thread, between its read and its write: the pins to write."""
            nonlocal admitted
            held = dict(zip(cids, held_pins))
            committed: list[Pin] = []
            for i, req in enumerate(requests):
                if outcomes[i] is not None:
                    continue
                pin = req.pin
                try:
                    if pin.pin_update is not None and pin.pin_update != pin.cid and held[pin.pin_update] is None:
                        raise ValueError(f"pin-update: {cid_to_str(pin.pin_update)} is not pinned in the cluster")
                    existing = held[pin.cid]
                    done = self._prepare(pin, existing, size=req.size, defaults=req.defaults, view=view, upload=req.upload, rules=rules)
                except Exception as exc:
                    outcomes[i] = exc
                    continue
                n = self._admit(done, existing)
                admitted += n
                view.queues[self.peer_id] += n
                if req.size:  # the next pins of the batch see the bytes this one reserved
                    for peer in done.allocations:
                        if peer != self.peer_id:
                            view.reserved[peer] = view.reserved.get(peer, 0) + req.size
                held[pin.cid] = done
                outcomes[i] = done
                committed.append(done)
            return committed

        written: list[int] = [i for i, o in enumerate(outcomes) if o is None]
        try:
            if cids:
                await self._pinset.update_many(cids, place)
        except Exception as exc:  # nothing of this write is stored: each of its pins fails
            for i in written:
                if not isinstance(outcomes[i], BaseException):
                    outcomes[i] = exc
        finally:
            with self._lock:
                self.admitting -= admitted
        results: list[Pin | BaseException] = []
        for outcome in outcomes:
            assert outcome is not None  # place() decided every pending request, or the write failed
            self.counters["pin_add_errors" if isinstance(outcome, BaseException) else "pin_add"] += 1
            results.append(outcome)
        return results

    async def write(self, pin: Pin, *, size: int | None, defaults: bool, blacklist: Collection[str] = (), upload: bool = False) -> Pin:
        """Prepare ``pin`` over the pinset's current pin and write it (no user-option check, no counters)."""
        existing = await self._pinset.get(pin.cid)
        committed = self._prepare(pin, existing, size=size, defaults=defaults, blacklist=blacklist, upload=upload)
        admitted = self._admit(committed, existing)
        try:
            await self._pinset.add(committed)
        finally:
            with self._lock:
                self.admitting -= admitted
        return committed

    def _admit(self, pin: Pin, existing: Pin | None) -> int:
        """Count ``pin`` in this peer's queue until the pinset write reaches the tracker (1 or 0)."""
        if admits(pin, existing, self.peer_id):
            with self._lock:
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
        rules: Placement | None = None,
    ) -> Pin:
        now = now_ns()
        committed = prepare(
            pin, existing, view or self.view(), rules or self.rules(),
            now=now, size=size, defaults=defaults, blacklist=blacklist, upload=upload,
        )
        if size:
            with self._lock:
                self.reservations.reserve(committed.allocations, size, now)
        return committed

    async def pin_many(self, pins: list[Pin], *, defaults: Sequence[bool] | None = None) -> list[Pin]:
        """Allocate and commit many pins in one pinset write (bulk imports); returns them as committed.

        Each pin follows the rules of :meth:`pin`; the first pin that cannot be
        made raises (ValueError/PinError/AllocationError naming its CID; QueueFull when
        the queues are full) and nothing of the batch is written.
        """
        view, rules = self.view(), self.rules()  # one view of the peers and metrics for the whole batch
        admitted = 0
        failed: list[BaseException] = []
        committed: list[Pin] = []

        def place(held_pins: list[Pin | None]) -> list[Pin]:
            """In the pinset's worker thread, between its read and its write: the pins to write."""
            nonlocal admitted
            held = dict(zip(cids, held_pins))
            for i, pin in enumerate(pins):
                old = held[pin.cid]  # a CID twice in the batch: the second sees the first
                try:
                    check_user_options(pin)
                    done = self._prepare(pin, old, size=None, defaults=defaults[i] if defaults else True, view=view, rules=rules)
                except (ValueError, PinError, AllocationError) as exc:
                    failed.append(exc)
                    raise type(exc)(f"{cid_to_str(pin.cid)}: {exc}") from None
                n = self._admit(done, old)
                admitted += n
                view.queues[self.peer_id] += n
                held[pin.cid] = done
                committed.append(done)
            return committed

        cids = list(dict.fromkeys(p.cid for p in pins))
        try:
            await self._pinset.update_many(cids, place)
        finally:
            with self._lock:
                self.admitting -= admitted
            self.counters["pin_add_errors"] += len(failed)
        self.counters["pin_add"] += len(committed)
        return committed

    async def close(self) -> None:
        """Let the batch being written finish; cancel the pins still waiting (at shutdown)."""
        await self.batcher.close()

    async def unpin(self, cid: bytes) -> Pin:
        """Remove ``cid`` from the pinset; returns the pin as it was (NotFoundError when absent)."""
        existing = await self._pinset.get(cid)
        if existing is None or not await self._pinset.remove(cid):
            raise NotFoundError(f"{cid_to_str(cid)} is not pinned in the cluster")
        self.counters["unpin"] += 1
        return existing
