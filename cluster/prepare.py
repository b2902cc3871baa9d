"""Allocation preparation: a pin as it enters the pinset (checked, defaulted, allocated), and who may take it.

:func:`prepare` is what every write of a pin goes through (the REST and
pinning-service APIs, bulk imports, re-allocation): the pin is checked
against the pin the pinset already holds (its type cannot change, a
recursive pin cannot become direct), user allocations must be trusted peers
(unless ``Cluster.AllocateToUntrustedPeers``), replication ``-1/-1`` gets the
configured defaults when asked to, and :func:`allocations` picks its peers.

:func:`allocations` runs :func:`cluster.allocator.allocate` over an
:class:`AllocationView`, leaving out untrusted peers and peers whose pin queue
is full (:func:`cluster.tracker.admission_limit`). When the pin could be
placed but for full queues it raises :class:`~cluster.tracker.QueueFull`
(HTTP 429, try later) rather than AllocationError (400). A peer that already
holds the pin is no new entry in its queue and is never refused for a full
queue.

An :class:`AllocationView` is built from the metrics once and reused while they
do not change (:class:`ViewCache`, keyed by the metric store's version and
valid until the first of its metrics expires); only this peer's queue and the
byte reservations are read per batch. A view built for reuse carries a memo of
allocations: a pin with nothing that makes its placement its own (no current or
user allocations, no size, no blacklist) is placed like any other pin with the
same replication factors and excluded peers, so the balanced order is computed
once per view, not once per pin.

Pure: the view, the time and the trust rule come in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from typing import NamedTuple

from blockstore.cid import cid_to_str

from .allocator import AllocationError, allocate
from .monitor import Metric
from .pin import Pin
from .tracker import QueueFull, admission_limit


class AllocationView(NamedTuple):
    """What one allocation (or one batch of them) reads: the peer set and its metrics at one moment."""

    peers: set[str]
    allocate_by: list[str]
    metrics: dict[str, list[Metric]]
    reserved: dict[str, int]  #: bytes reserved per peer (:mod:`cluster.reservations`)
    untrusted: set[str]  #: peers whose metrics may not be used (not in TrustedPeers, no opt-in)
    queues: dict[str, int]  #: pins queued per peer (this peer: exact; others: their pinqueue metric)
    #: allocations of plain pins by (rmin, rmax, excluded peers), shared by the views derived
    #: from one cached view (None: not memoized)
    memo: dict[tuple[int, int, frozenset[tuple[str, str]]], tuple[str, ...]] | None = None


#: most entries of a view's allocation memo (replication factors come from users)
MEMO_LIMIT = 256


class ViewCache:
    """The latest :class:`AllocationView` built from the metrics, reused while nothing it was built from changed.

    ``key`` names what the view was built from (the metric store's version, the
    config it read); ``until`` is when it expires by itself (the first expiry of
    a metric it read, unix ns; None: never). Pure: the time comes in as an argument.
    """

    def __init__(self) -> None:
        self._key: Hashable = None
        self._view: AllocationView | None = None
        self._until: int | None = None
        #: views built (for tests and metrics)
        self.builds = 0

    def get(self, key: Hashable, now: int) -> AllocationView | None:
        """The cached view when it was built for ``key`` and has not expired at ``now``, else None."""
        if self._view is None or key != self._key or (self._until is not None and now >= self._until):
            return None
        return self._view

    def put(self, key: Hashable, view: AllocationView, until: int | None) -> AllocationView:
        """Keep ``view`` (built for ``key``, valid before ``until``) with a fresh allocation memo; returns it."""
        view = view._replace(memo={})
        self._key, self._view, self._until = key, view, until
        self.builds += 1
        return view

    def clear(self) -> None:
        """Forget the cached view (the next :meth:`get` misses)."""
        self._view = None


class Placement(NamedTuple):
    """The rules one peer allocates by (from its config)."""

    me: str  #: this peer's ID
    max_queue: int  #: ``PinTracker.MaxPinQueueSize``
    is_trusted: Callable[[str], bool]
    allow_untrusted: bool = False  #: ``Cluster.AllocateToUntrustedPeers``
    defaults: tuple[int, int] = (-1, -1)  #: ``Cluster.ReplicationFactorMin/Max``


def queue_message(cid: bytes | None, full: Mapping[str, str], queues: Mapping[str, int], max_queue: int) -> str:
    """The QueueFull message: whose queue is full and what the limit is."""
    peers = ", ".join(f"{p} ({queues.get(p, 0)} queued)" for p in sorted(full))
    what = f"pinning {cid_to_str(cid)}" if cid is not None else "pinning"
    return (
        f"{what} refused: the pin queue is full on {peers}; PinTracker.MaxPinQueueSize is {max_queue}, "
        f"the last {max_queue // 10} places are kept for uploads; try again later"
    )


def full_queues(view: AllocationView, existing: Pin | None, upload: bool, rules: Placement) -> dict[str, str]:
    """Peers whose pin queue cannot take a new pin; a peer that already holds the pin is left out."""
    full = {}
    for peer, queued in view.queues.items():
        if existing is not None and existing.is_allocated_to(peer):
            continue
        if queued >= admission_limit(rules.max_queue, upload=upload and peer == rules.me):
            full[peer] = "with a full pin queue"
    return full


def allocations(
    pin: Pin,
    existing: Pin | None,
    view: AllocationView,
    rules: Placement,
    *,
    size: int | None = None,
    blacklist: Collection[str] = (),
    upload: bool = False,
) -> list[str]:
    """The allocations of ``pin`` ([] for "every peer"); AllocationError when too few peers can
    take it, QueueFull when enough could but their pin queues are full."""
    full = full_queues(view, existing, upload, rules)
    rmin, rmax = pin.replication_factor_min, pin.replication_factor_max
    if rmin == -1 and rmax == -1:
        # every peer pins it: each trusted peer's queue must take it (an untrusted peer's
        # queue metric could otherwise refuse every such pin)
        full = {p: r for p, r in full.items() if rules.is_trusted(p)}
        if full:
            raise QueueFull(queue_message(pin.cid, full, view.queues, rules.max_queue))
        return []
    current = [p for p in (existing.allocations if existing else ()) if p in view.peers and p not in blacklist]
    excluded = {p: "untrusted" for p in view.untrusted}
    # a plain pin's placement depends on the view, its replication factors and the excluded peers only
    memo = view.memo if not current and not pin.user_allocations and not size and not blacklist else None

    def run(exclude: dict[str, str]) -> list[str]:
        if memo is None:
            return _allocate(exclude)
        key = (rmin, rmax, frozenset(exclude.items()))
        got = memo.get(key)
        if got is None:
            got = tuple(_allocate(exclude))  # an AllocationError is not kept: its message names the CID
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[key] = got
        return list(got)

    def _allocate(exclude: dict[str, str]) -> list[str]:
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
        raise QueueFull(queue_message(pin.cid, full, view.queues, rules.max_queue)) from None


def check(pin: Pin, existing: Pin | None, rules: Placement, *, now: int, defaults: bool) -> Pin:
    """``pin`` checked against the pinset's ``existing`` pin, with the default replication factors
    when ``defaults`` and it asks for -1/-1; ValueError naming the problem."""
    if pin.expire_at and pin.expire_at <= now:
        raise ValueError("expire_at is in the past")
    if defaults and pin.replication_factor_min == -1 and pin.replication_factor_max == -1:
        pin = pin.with_(replication_factor_min=rules.defaults[0], replication_factor_max=rules.defaults[1])
    if existing is not None:
        if existing.type != pin.type:
            raise ValueError(f"cannot re-pin {cid_to_str(pin.cid)} as {pin.type}: it is pinned as {existing.type}")
        if existing.mode == "recursive" and pin.mode != "recursive":
            raise ValueError(f"cannot re-pin {cid_to_str(pin.cid)} as {pin.mode}: it is pinned recursively")
    for peer in pin.user_allocations:
        if not isinstance(peer, str) or not peer:
            raise ValueError("user allocations must be peer IDs")
        if not rules.allow_untrusted and not rules.is_trusted(peer):
            raise ValueError(
                f"user allocation {peer} is not trusted (not in Cluster.TrustedPeers): "
                "set Cluster.AllocateToUntrustedPeers to allocate pins to it"
            )
    return pin


def prepare(
    pin: Pin,
    existing: Pin | None,
    view: AllocationView,
    rules: Placement,
    *,
    now: int,
    size: int | None = None,
    defaults: bool = True,
    blacklist: Collection[str] = (),
    upload: bool = False,
) -> Pin:
    """``pin`` as it is written to the pinset: :func:`check`\\ ed, allocated, stamped with ``now``."""
    pin = check(pin, existing, rules, now=now, defaults=defaults)
    chosen = allocations(pin, existing, view, rules, size=size, blacklist=blacklist, upload=upload)
    return pin.with_(allocations=tuple(chosen), timestamp=now)


def admits(pin: Pin, existing: Pin | None, me: str) -> bool:
    """Whether writing ``pin`` over ``existing`` adds an entry to ``me``'s pin queue (newly allocated here)."""
    return pin.is_allocated_to(me) and (existing is None or not existing.is_allocated_to(me))
