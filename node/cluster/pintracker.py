"""The pin tracker of a peer: asyncio workers over :class:`cluster.tracker.TrackerStore`.

``ConcurrentPins`` pin workers and one unpin worker take due operations
from the persistent queues. A pin fetches the DAG through ``fetch(pin,
progress)`` (bitswap, see :class:`node.cluster.fetch.DagFetcher`) and is
cancelled when no block arrives for ``PinTimeout`` seconds (not a total
time, as upstream); then the CID goes into the local pins (``Pins``) that GC
keeps, once :func:`blockstore.gc.record_pin` found the DAG complete (a block
a garbage collection removed meanwhile is fetched again). While queued or
being fetched, the tracker's records are GC roots (``cluster.tracker.pin_roots``).
Pins of content uploaded to this peer wait in a lane of their own, taken by
one more worker that records them from the local blocks (no network).
An unpin removes the local pin. Failures are retried with backoff and
end in ``pin_failed`` (see the store's rules). Every ``RecoverInterval``
seconds failed operations are queued again.

``on_replica_change`` is the CRDT replica's hook (a worker thread, under the
replica's lock): it writes one LevelDB batch and wakes the workers;
``on_replica_changes`` does the same for all the changes of one delta at once.

Pins go through a pipeline whose steps each serve many pins at a time, so a
thousand small pins cost a few LevelDB batches and bridge crossings, not
thousands: a dispatcher takes every due pin up to ``ConcurrentPins`` in flight
in one write batch (:meth:`TrackerStore.take_many`) and starts a task per pin;
each task fetches its DAG (the fetcher batches the local checks and the
bitswap requests of the pins that start together); local pins are recorded
and the tracker's records finished for all the pins done meanwhile in one
worker-thread job (:class:`~node.cluster.batcher.Batcher`, one write batch).

Size: over 500 lines because the pin lane's dispatcher, the unpin and local
workers, reconciliation and recovery share the in-flight state (running fetches,
pin tasks, wake-up tokens) that cancels a pin replaced by an unpin.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from blockstore.dagwalk import BlockNotFound
from blockstore.gc import record_pin
from blockstore.kv import KVStore
from blockstore.pins import DIRECT, RECURSIVE
from blockstore.pins import LocalPinError
from blockstore.pins import Pins
from blockstore.cid import cid_to_str
from blockstore.store import BlockStore
from cluster.crdt.orset import Change
from cluster.pin import Pin, PinError
from cluster.status import PinInfo, StatusRow
from cluster.tracker import DONE_PIN, LOCAL, PIN, UNPIN, TrackerConfig, TrackerStore

from ..errors import NodeError
from .batcher import Batcher

log = logging.getLogger(__name__)
#: one DEBUG line per pin stage (``Logging.Subsystems: {"pintracker.stages": "DEBUG"}``):
#: ``queued <cid> <unix s>`` and ``done <cid> taken=.. fetch_start=.. fetch_end=.. recorded=..``
stages = logging.getLogger(__name__ + ".stages")

Fetch = Callable[[Pin, Callable[[int], None]], Awaitable[None]]
#: longest sleep of an idle worker before it looks at the queue again (retries come due)
IDLE_POLL = 5.0
#: pins of the pinset merged per worker-thread call while reconciling
RECONCILE_PAGE = 1000
#: fetch-then-record rounds of one pin attempt (a garbage collection can remove a block in between)
RECORD_ROUNDS = 3


class PinTracker:
    """Pins and unpins what the pinset allocates to this peer (see module docstring)."""

    def __init__(
        self,
        db: KVStore,
        pins: Pins,
        peer_id: str,
        config: dict[str, Any],
        *,
        fetch: Fetch,
        unpin_hook: Callable[[bytes], Awaitable[None]] | None = None,
        blocks: BlockStore | None = None,
        is_local: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.store = TrackerStore(db, TrackerConfig.from_config(config))
        self._pins = pins
        self._fetch = fetch
        self._unpin_hook = unpin_hook
        #: with the block store, a pin is recorded only once its DAG is complete, safely
        #: against a garbage collection running meanwhile (blockstore/gc.py)
        self._blocks = blocks
        #: whether a CID's content was uploaded to this peer (its pin goes to the local lane;
        #: needs ``blocks``, the local worker records it without the network)
        self._is_local = is_local if blocks is not None else None
        self.concurrent_pins = max(1, int(config.get("ConcurrentPins", 10)))
        self.pin_timeout = float(config.get("PinTimeout", 120))
        self.recover_interval = float(config.get("RecoverInterval", 720))
        self._loop: asyncio.AbstractEventLoop | None = None
        #: wake-up tokens for idle workers (at most one per worker: no thundering herd)
        self._wake: dict[str, asyncio.Queue[None]] = {}
        self._running: dict[bytes, asyncio.Task[None]] = {}  # cid -> its fetch task
        self._pinning: set[asyncio.Task[None]] = set()  # the pin tasks the dispatcher started
        #: record the local pins, then finish the records, of every pin done meanwhile (one job)
        self._recorder: Batcher[tuple[bytes, Pin, str, int | None], BaseException | None] = Batcher(self._record_many)
        self._finisher: Batcher[tuple[bytes, str, str | None], Any] = Batcher(self.store.finish_many)
        self._tasks: list[asyncio.Task[None]] = []
        #: counters for metrics
        self.counters = {"pinned": 0, "unpinned": 0, "pin_errors": 0, "timeouts": 0}

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Re-queue what a crash interrupted and start the workers and the recover loop."""
        self._loop = asyncio.get_running_loop()
        self._wake = {PIN: asyncio.Queue(1), UNPIN: asyncio.Queue(1), LOCAL: asyncio.Queue(1)}
        requeued = await self._loop.run_in_executor(None, self.store.requeue_running)
        if requeued:
            log.info("pin tracker: %d interrupted operations queued again", requeued)
        self._tasks = [asyncio.create_task(self._pin_dispatcher(), name="pin-dispatcher")]
        self._tasks.append(asyncio.create_task(self._worker(UNPIN), name="unpin-worker"))
        self._tasks.append(asyncio.create_task(self._worker(LOCAL), name="local-pin-worker"))
        self._tasks.append(asyncio.create_task(self._recover_loop(), name="pin-recover"))

    async def stop(self) -> None:
        """Cancel the workers (running operations are queued again at the next start)."""
        for task in [*self._tasks, *self._running.values(), *self._pinning]:
            task.cancel()
        for task in [*self._tasks, *self._pinning]:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("pin tracker task %s failed", task.get_name())
        self._tasks.clear()
        self._running.clear()
        self._pinning.clear()
        self._loop = None

    # ------------------------------------------------------------ the replica's hook
    def on_replica_change(self, change: Change) -> None:
        """The replica's ``on_change`` hook: :meth:`on_replica_changes` of one change."""
        self.on_replica_changes([change])

    def on_replica_changes(self, changes: list[Change]) -> None:
        """The replica's hook for all the changes of one delta: one write batch for all of them."""
        items: list[tuple[bytes, Pin | None, bytes | None]] = []
        for change in changes:
            pin: Pin | None = None
            if change.value is not None:
                try:
                    pin = Pin.from_cbor(change.value)
                except PinError as exc:
                    log.warning("pin %s in the state cannot be decoded: %s", cid_to_str(change.key), exc)
                    continue
            items.append((change.key, pin, change.value))
        self.on_state_changes(items)

    def on_state_changes(self, items: list[tuple[bytes, Pin | None, bytes | None]]) -> None:
        """:meth:`on_state_change` of each (cid, pin or None, its DAG-CBOR or None), in one write batch."""
        now = time.time_ns()
        wants: list[tuple[bytes, Pin | None, bytes | None, bool]] = []
        for cid, pin, raw in items:
            if pin is not None and pin.is_allocated_to(self.peer_id) and not (pin.expire_at and pin.expire_at <= now):
                local = self._is_local is not None and self._is_local(cid)
                wants.append((cid, pin, raw, local))
            else:
                wants.append((cid, None, None, False))
        if not wants:
            return
        outcomes = self.store.want_many(wants, now)
        logged = stages.isEnabledFor(logging.DEBUG)
        for (cid, pin, _raw, local), outcome in zip(wants, outcomes):
            if pin is not None and outcome == "queued":
                if logged:
                    stages.debug("queued %s %.6f", cid_to_str(cid), now / 1e9)
                self._notify(LOCAL if local else PIN, cid)
            elif pin is None and outcome != "none":
                self._notify(UNPIN, cid)

    def on_state_change(self, cid: bytes, pin: Pin | None, raw: bytes | None = None) -> None:
        """A pin was added, changed or removed in the pinset: queue what this peer must do
        (:meth:`on_state_changes` of one item; ``raw``: the pin's DAG-CBOR as the pinset holds it)."""
        self.on_state_changes([(cid, pin, raw)])

    def _notify(self, op: str, cid: bytes) -> None:
        loop = self._loop
        if loop is None:
            return  # not started: the queue is on disk, the workers find it at start
        try:
            loop.call_soon_threadsafe(self._on_queued, op, cid)
        except RuntimeError:  # the loop is closing
            pass

    def _on_queued(self, op: str, cid: bytes) -> None:
        """On the loop: wake a worker; a new op on a CID whose pin is being fetched cancels that fetch."""
        running = self._running.get(cid)
        if running is not None:
            rec = self.store.get(cid)
            if rec is None or rec.op != PIN or rec.status != "pinning":
                running.cancel()
        self._wake_one(op)

    def _wake_one(self, op: str) -> None:
        """Wake one idle worker of ``op`` (a no-op when every worker already has a token)."""
        queue = self._wake.get(op)
        if queue is not None and not queue.full():
            queue.put_nowait(None)

    # ------------------------------------------------------------ workers
    async def _pin_dispatcher(self) -> None:
        """Take every due pin (up to ``ConcurrentPins`` in flight) in one step and start a task per pin."""
        loop = asyncio.get_running_loop()
        wake = self._wake[PIN]
        while True:
            free = self.concurrent_pins - len(self._pinning)
            if free <= 0:
                await wake.get()  # a pin task ended (or a pin was queued): look again
                continue
            try:
                recs = await loop.run_in_executor(None, self.store.take_many, PIN, free)
            except Exception:
                log.exception("reading the pin queue failed")
                await asyncio.sleep(1.0)
                continue
            if not recs:
                due = await loop.run_in_executor(None, self.store.next_due, PIN)
                delay = IDLE_POLL if due is None else max(0.0, min(IDLE_POLL, (due - time.time_ns()) / 1e9))
                try:
                    await asyncio.wait_for(wake.get(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                continue
            for rec in recs:
                task = asyncio.create_task(self._pin_task(rec.cid, rec.pin), name="pin")
                self._pinning.add(task)
                task.add_done_callback(self._pin_task_done)

    def _pin_task_done(self, task: asyncio.Task[None]) -> None:
        self._pinning.discard(task)
        self._wake_one(PIN)  # a slot is free

    async def _pin_task(self, cid: bytes, raw: bytes | None) -> None:
        try:
            await self._pin(cid, Pin.from_cbor(raw) if raw is not None else None)
        except asyncio.CancelledError:
            raise
        except Exception:  # the record stays "pinning": queued again at the next start
            log.exception("pinning %s failed", cid_to_str(cid))

    async def _worker(self, op: str) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake[op]
        while True:
            try:
                rec = await loop.run_in_executor(None, self.store.take, op)
            except Exception:
                log.exception("reading the %s queue failed", op)
                await asyncio.sleep(1.0)
                continue
            if rec is None:
                due = await loop.run_in_executor(None, self.store.next_due, op)
                delay = IDLE_POLL if due is None else max(0.0, min(IDLE_POLL, (due - time.time_ns()) / 1e9))
                try:
                    await asyncio.wait_for(wake.get(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                continue
            if op == PIN:
                await self._pin(rec.cid, rec.pin_obj())
            elif op == LOCAL:
                await self._pin_local(rec.cid, rec.pin_obj())
            else:
                await self._unpin(rec.cid)

    async def _pin(self, cid: bytes, pin: Pin | None) -> None:
        """Fetch a running pin's DAG, record the local pin and finish its record (batched with others)."""
        if pin is None:
            await self._finisher.submit((cid, PIN, "the pin's data is missing from the tracker"))
            return
        kind = RECURSIVE if pin.max_depth == -1 or pin.max_depth > 0 else DIRECT
        error: str | None = None
        marks = [time.time()]  # taken, then fetch start/end and recorded (the stages log)
        recorded = False
        for _round in range(RECORD_ROUNDS):
            since = self._blocks.gc_epoch if self._blocks is not None else None
            try:
                marks.append(time.time())
                error = await self._fetch_once(cid, pin)
                marks.append(time.time())
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # the tracker is stopping
                return  # replaced by an unpin (or a changed pin): the new op is queued
            if error is not None:
                break
            # recorded and finished as "pinned" in one job with the other pins done meanwhile
            failure = await self._recorder.submit((cid, pin, kind, since))
            if failure is None:
                recorded = True
                break
            if isinstance(failure, _Replaced):
                return  # replaced meanwhile: the new op is queued, nothing was recorded
            if isinstance(failure, BlockNotFound):
                # a garbage collection removed a block between the fetch and the pin: fetch again
                error = f"block {failure} of the DAG went missing before the pin was recorded"
            else:  # a block that does not decode, a write that failed
                error = str(failure) or type(failure).__name__
                break
        if recorded:
            self.counters["pinned"] += 1
        else:
            self.counters["pin_errors"] += 1
        marks.append(time.time())
        if not recorded:
            await self._finisher.submit((cid, PIN, error))
        if stages.isEnabledFor(logging.DEBUG):
            stages.debug("done %s taken=%.6f fetch_start=%.6f fetch_end=%.6f recorded=%.6f finished=%.6f error=%s",
                         cid_to_str(cid), marks[0], marks[1], marks[-2], marks[-1], time.time(), error is not None)

    async def _pin_local(self, cid: bytes, pin: Pin | None) -> None:
        """A pin of the local lane: record it from the blocks here, or move it to the pin queue."""
        loop = asyncio.get_running_loop()
        if pin is None:
            await loop.run_in_executor(None, self.store.finish, cid, PIN, "the pin's data is missing from the tracker")
            return
        kind = RECURSIVE if pin.max_depth == -1 or pin.max_depth > 0 else DIRECT
        try:
            await loop.run_in_executor(None, self._record, cid, pin, kind)
        except Exception as exc:  # BlockNotFound above all: not all here
            log.debug("local pin %s goes to the pin queue: %s", cid.hex(), exc)
            await loop.run_in_executor(None, self.store.demote, cid)  # fetched (or failed) like any pin
            self._wake_one(PIN)
            return
        self.counters["pinned"] += 1
        await loop.run_in_executor(None, self.store.finish, cid, PIN, None)

    def _record_many(self, items: list[tuple[bytes, Pin, str, int | None]]) -> list[BaseException | None]:
        """In a worker thread: record the local pin of each fetched (cid, pin, kind, GC epoch)
        whose pin is still running, then finish those records as pinned in one write batch;
        per item None (pinned) or what stopped it (:class:`_Replaced`, BlockNotFound, ...)."""
        out: list[BaseException | None] = []
        done: list[tuple[bytes, str, str | None]] = []
        for cid, pin, kind, since in items:
            try:
                # under the tracker's lock: an unpin that replaces this pin comes before the check
                # (nothing recorded) or after the local pin is written (its unpin removes it)
                with self.store.lock:
                    if not self.store.is_running(cid, PIN):
                        raise _Replaced(cid_to_str(cid))
                    # no fsync: the tracker's "pinned" record written next depends on it (LevelDB keeps order)
                    self._record(cid, pin, kind, since)
            except Exception as exc:  # noqa: BLE001 - handed to the pin's task
                out.append(exc)
                continue
            out.append(None)
            done.append((cid, PIN, None))
        if done:
            self.store.finish_many(done)
        return out

    def _record(self, cid: bytes, pin: Pin, kind: str, since: int | None = None) -> None:
        """Write the local pin once the DAG is complete (blocking; BlockNotFound when it is not).
        ``since``: the block store's GC epoch before the fetch that walked the DAG."""
        add = functools.partial(self._pins.add, cid, kind, sync=False)
        if self._blocks is None:
            add()
            return
        depth = None if pin.max_depth < 0 else pin.max_depth
        before = self._pins.get(cid)
        try:
            record_pin(self._blocks, cid, add, max_depth=depth, checked_since=since)
        except BlockNotFound:
            if before is None and self._pins.get(cid) is not None:
                self._pins.remove(cid)  # not complete: not pinned
            raise

    async def _fetch_once(self, cid: bytes, pin: Pin) -> str | None:
        """Run one fetch of the pin's DAG; the error (None: done). Cancelled when no block
        arrives for ``PinTimeout`` seconds; CancelledError when the operation was replaced."""
        loop = asyncio.get_running_loop()
        progressed = asyncio.Event()

        def progress(_blocks: int) -> None:
            if _on_loop(loop):
                progressed.set()
            else:
                loop.call_soon_threadsafe(progressed.set)

        task = asyncio.ensure_future(self._fetch(pin, progress))
        self._running[cid] = task  # type: ignore[assignment]
        try:
            while not task.done():
                progressed.clear()
                waiter = asyncio.ensure_future(progressed.wait())
                done, _ = await asyncio.wait({task, waiter}, timeout=self.pin_timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    waiter.cancel()
                    task.cancel()
                    self.counters["timeouts"] += 1
                    return f"pin timed out: no block arrived for {self.pin_timeout:g} s"
                if waiter not in done:
                    waiter.cancel()
            try:
                await task
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return str(exc) or type(exc).__name__
            return None
        finally:
            self._running.pop(cid, None)
            if not task.done():
                task.cancel()

    async def _unpin(self, cid: bytes) -> None:
        loop = asyncio.get_running_loop()
        error: str | None = None
        try:
            await loop.run_in_executor(None, self._pins.remove, cid)
        except LocalPinError:
            pass  # not pinned here (a pin that never finished): nothing to remove
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        if error is None and self._unpin_hook is not None:
            try:
                await self._unpin_hook(cid)
            except Exception as exc:
                error = str(exc) or type(exc).__name__
        if error is None:
            self.counters["unpinned"] += 1
        await loop.run_in_executor(None, self.store.finish, cid, UNPIN, error)

    async def _recover_loop(self) -> None:
        while True:
            await asyncio.sleep(self.recover_interval)
            try:
                n = len(await self.recover_all(include_final=False))
                if n:
                    log.info("pin tracker: %d failed operations queued again", n)
            except Exception:
                log.exception("periodic recover failed")

    # ------------------------------------------------------------ reconciliation and recovery
    async def sync_state(self, pins: AsyncIterator[Pin] | Iterable[Pin]) -> None:
        """Reconcile with the pinset at start: queue pins allocated here that are not tracked,
        unpin tracked CIDs the pinset no longer allocates here. Both sides stream in CID order;
        the merge runs a page at a time in a worker thread."""
        loop = asyncio.get_running_loop()
        cursor = _Cursor(self.store.iter_records())
        page: list[Pin] = []
        async for pin in _aiter(pins):
            page.append(pin)
            if len(page) >= RECONCILE_PAGE:
                await loop.run_in_executor(None, self._reconcile, page, cursor, False)
                page = []
        await loop.run_in_executor(None, self._reconcile, page, cursor, True)
        self._wake_all()

    def _reconcile(self, page: list[Pin], cursor: _Cursor, last: bool) -> None:
        """Merge one page of the pinset (CID order) with the tracker's records (blocking);
        the changes of the page are written in one batch."""
        changes: list[tuple[bytes, Pin | None, bytes | None]] = []
        for pin in page:
            while cursor.head is not None and cursor.head.cid < pin.cid:
                changes.append((cursor.head.cid, None, None))  # tracked here, gone from the pinset
                cursor.advance()
            if cursor.head is not None and cursor.head.cid == pin.cid:
                cursor.advance()
                changes.append((pin.cid, pin, None))
            elif pin.is_allocated_to(self.peer_id):
                if self._pins.get(pin.cid) is not None:
                    self.store.adopt_pinned(pin.cid)  # already here (e.g. uploaded to this peer)
                else:
                    changes.append((pin.cid, pin, None))
        if last:
            while cursor.head is not None:
                changes.append((cursor.head.cid, None, None))
                cursor.advance()
        self.on_state_changes(changes)

    def _wake_all(self) -> None:
        for op, queue in self._wake.items():
            while not queue.full():
                self._wake_one(op)

    async def recover(self, cid: bytes, pin: Pin | None = None) -> PinInfo:
        """Queue a failed operation on ``cid`` again (also a pin that should be here and is not)."""
        loop = asyncio.get_running_loop()
        rec = await loop.run_in_executor(None, self.store.recover, cid)
        if rec is not None and rec.status == DONE_PIN and pin is not None and self._pins.get(cid) is None:
            await loop.run_in_executor(None, self.store.forget_pinned, cid)
            await loop.run_in_executor(None, self.on_state_change, cid, pin)
        elif rec is None and pin is not None and pin.is_allocated_to(self.peer_id) and self._pins.get(cid) is None:
            await loop.run_in_executor(None, self.on_state_change, cid, pin)
        self._wake_all()
        return await loop.run_in_executor(None, self.status, cid, pin)

    async def recover_all(self, include_final: bool = True) -> list[PinInfo]:
        """Queue every failed operation again; the PinInfo of each."""
        loop = asyncio.get_running_loop()
        cids = await loop.run_in_executor(None, lambda: list(self.store.errored(include_final)))
        out = []
        for cid in cids:
            rec = await loop.run_in_executor(None, self.store.recover, cid)
            if rec is not None:
                out.append(rec.info(self.peer_id))
        self._wake_all()
        return out

    # ------------------------------------------------------------ status
    def status(self, cid: bytes, pin: Pin | None) -> PinInfo:
        """This peer's status of ``cid`` given its pin in the pinset (blocking: LevelDB)."""
        rec = self.store.get(cid)
        if rec is not None:
            info = rec.info(self.peer_id)
            if rec.status == DONE_PIN and self._pins.get(cid) is None:
                return PinInfo(cid, self.peer_id, status="unexpectedly_unpinned", timestamp=rec.ts,
                               error="the item should be pinned but it is not")
            return info
        if pin is None:
            return PinInfo(cid, self.peer_id, status="unpinned")
        if not pin.is_allocated_to(self.peer_id):
            return PinInfo(cid, self.peer_id, status="remote")
        if self._pins.get(cid) is not None:
            return PinInfo(cid, self.peer_id, status="pinned")
        return PinInfo(cid, self.peer_id, status="unexpectedly_unpinned", error="the item should be pinned but it is not")

    def iter_status(self, start: bytes | None = None) -> Iterator[PinInfo]:
        """This peer's tracked CIDs from ``start`` on, sorted by CID bytes (blocking: LevelDB)."""
        for rec in self.store.iter_records(start):
            if rec.status == DONE_PIN and self._pins.get(rec.cid) is None:
                yield PinInfo(rec.cid, self.peer_id, status="unexpectedly_unpinned", timestamp=rec.ts,
                              error="the item should be pinned but it is not")
            else:
                yield rec.info(self.peer_id)

    # status rows (the status streams' read: no object per CID)
    def status_rows(self, start: bytes | None = None, limit: int = 1000) -> list[tuple[bytes, StatusRow]]:
        """Up to ``limit`` (CID, row) of this peer's tracked CIDs from ``start`` on, sorted by CID
        bytes: :meth:`iter_status` as :data:`~cluster.status.StatusRow`\\ s (blocking: LevelDB)."""
        return [(cid, self._checked(cid, row)) for cid, row in itertools.islice(self.store.iter_rows(start), limit)]

    def page_status(self, page: Sequence[tuple[bytes, Mapping[str, Any]]]) -> list[StatusRow]:
        """This peer's status row of each pin of a page of the pinset, (CID, stored fields as
        :func:`cluster.pin.pin_fields` has them) sorted by CID: :meth:`status` of each, from one
        scan of the records in the page's range (blocking: LevelDB)."""
        if not page:
            return []
        tracked = dict(self.store.iter_rows(page[0][0], page[-1][0]))
        me = self.peer_id
        out: list[StatusRow] = []
        for cid, fields in page:
            row = tracked.get(cid)
            if row is not None:
                out.append(self._checked(cid, row))
                continue
            allocations = fields.get("allocations")
            if allocations and me not in allocations:
                out.append(_REMOTE)
            elif self._pins.get(cid) is not None:
                out.append(_PINNED)
            else:
                out.append(_UNEXPECTED)
        return out

    def _checked(self, cid: bytes, row: StatusRow) -> StatusRow:
        """``row``, or ``unexpectedly_unpinned`` when it says pinned and the local pin is gone."""
        if row[0] == DONE_PIN and self._pins.get(cid) is None:
            return ("unexpectedly_unpinned", row[1], _UNEXPECTED[2], 0, False)
        return row

    def queue_length(self) -> int:
        """Pins and unpins waiting to run."""
        return self.store.queue_length()

    def counts(self) -> dict[str, int]:
        """Tracked CIDs by status (O(1))."""
        return self.store.counts()

    def pins_queued(self) -> int:
        """Pins waiting to run (what the pin-queue admission rule counts)."""
        return self.store.pins_queued()

    def tracks_pin(self, cid: bytes) -> bool:
        """Whether the tracker's operation on ``cid`` is a pin (blocking: LevelDB)."""
        rec = self.store.get(cid)
        return rec is not None and rec.op == PIN


#: status rows of CIDs this peer does not track (as :meth:`PinTracker.status` has them)
_REMOTE: StatusRow = ("remote", 0, "", 0, False)
_PINNED: StatusRow = ("pinned", 0, "", 0, False)
_UNEXPECTED: StatusRow = ("unexpectedly_unpinned", 0, "the item should be pinned but it is not", 0, False)


class _Replaced(NodeError):
    """The pin was replaced (an unpin, a changed pin) before its local pin was recorded."""


class _Cursor:
    """The tracker's records, read one at a time while reconciling."""

    def __init__(self, records: Iterator[Any]) -> None:
        self._records = records
        self.head: Any = next(records, None)

    def advance(self) -> None:
        self.head = next(self._records, None)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _aiter(items: AsyncIterator[Pin] | Iterable[Pin]) -> AsyncIterator[Pin]:
    if hasattr(items, "__aiter__"):
        async for item in items:  # type: ignore[union-attr]
            yield item
    else:
        for item in items:  # type: ignore[union-attr]
            yield item
