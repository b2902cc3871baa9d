"""The pin tracker's state and decisions: what this peer must pin or unpin, in which order, and how it went.

One :class:`TrackerStore` per peer keeps, in LevelDB under ``NS_TRACKER``:

| key | value |
|---|---|
| ``t/r/<cid>`` | the record of a CID this peer pins, holds or unpins (DAG-CBOR) |
| ``t/q/<class><due><seq><cid>`` | pin queue: class 0 = priority, 1 = the rest; due = unix ns |
| ``t/l/<due><seq><cid>`` | local lane: pins whose content was uploaded to this peer |
| ``t/u/<due><seq><cid>`` | unpin queue |
| ``t/e/<cid>`` | records in an error status (what recover-all walks) |
| ``t/p/<cid>`` | operations in progress (re-queued after a crash) |
| ``t/c/<status>`` | number of records in each status |
| ``t/s`` | sequence number of the last queued operation |

Every change of a record, its index entries and the counters is one write
batch: a crash never leaves a half state, and millions of queued pins never
sit in memory. Each step also exists for many CIDs at once (:meth:`TrackerStore.want_pins`,
:meth:`~TrackerStore.take_many`, :meth:`~TrackerStore.finish_many`): one write batch for
all of them, with the same outcome as the single steps one after the other. The asyncio
shell (``node/cluster/pintracker.py``) takes due operations, runs them, and reports the
outcome here.

Rules (IPFS Cluster's stateless tracker, made persistent):

- a pin allocated here is queued ``pin_queued``; the same operation already
  queued or running only has its pin updated; the opposite operation is
  replaced (an unpin cancels a pin in flight and vice versa); attempts are
  inherited by an operation of the same kind;
- fresh pins go first: priority while the pin is younger than
  ``PriorityPinMaxAge`` and has had at most ``PriorityPinMaxRetries`` attempts;
- pins of content uploaded to this peer (``local=True``) go to a lane of their
  own, which a worker of their own takes (no network: the DAG is here), so an
  upload never waits behind fetches of content that may never come; one that
  turns out not to be here is moved to the pin queue (:meth:`TrackerStore.demote`);
- queue admission (:func:`admission_limit`): new pins are refused once
  ``MaxPinQueueSize`` pins are queued; the last tenth of the queue is kept for
  uploads (the callers answer 429);
- a failed pin becomes ``pin_error`` and is retried after ``RetryBackoff *
  2^(attempts-1)`` seconds (at most an hour); after ``MaxRetries`` attempts it
  becomes ``pin_failed`` and waits for an explicit recover;
- a pinned CID keeps a small record (status only) so that an unpin later
  removes only what the cluster pinned, never a pin a user made with
  ``pinion pin add``.

Size: over 500 lines because every rule above changes the same records, queue
entries, indexes and counters inside one write batch (:class:`_Batch`); split,
each part would need the others' key layout.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import libipld

from blockstore.kv import KVStore
from blockstore.layout import NS_TRACKER

from .allocator import AllocationError
from .pin import Pin
from .status import PinInfo

R = NS_TRACKER + b"r/"
Q = NS_TRACKER + b"q/"
LQ = NS_TRACKER + b"l/"
U = NS_TRACKER + b"u/"
E = NS_TRACKER + b"e/"
P = NS_TRACKER + b"p/"
C = NS_TRACKER + b"c/"
SEQ = NS_TRACKER + b"s"

PIN, UNPIN = "pin", "unpin"
#: the queue of the local lane (its records are pin operations)
LOCAL = "local"
#: the queue prefixes each kind of worker takes from, in order
QUEUES = {PIN: (Q + b"\x00", Q + b"\x01"), UNPIN: (U,), LOCAL: (LQ,)}
QUEUED = {PIN: "pin_queued", UNPIN: "unpin_queued"}
RUNNING = {PIN: "pinning", UNPIN: "unpinning"}
FAILED = {PIN: "pin_error", UNPIN: "unpin_error"}
DONE_PIN = "pinned"
FINAL = "pin_failed"
ERRORS = {"pin_error", "unpin_error", FINAL}
#: longest wait between retries, seconds
MAX_BACKOFF = 3600.0
_U64 = struct.Struct(">Q")


class QueueFull(AllocationError):
    """A new pin would go to a peer whose pin queue is full: HTTP 429, try again later."""

    status = 429


def admission_limit(max_queue: int, *, upload: bool) -> int:
    """How many pins may be queued on a peer when a new one is admitted to its queue.

    Uploads (content already on the peer that takes them) may fill the whole
    ``MaxPinQueueSize``; other pins stop a tenth short, so a flood of pins of
    content that must be fetched (maybe never found) leaves room for uploads."""
    return max_queue if upload else max_queue - max_queue // 10


@dataclass(frozen=True)
class TrackerConfig:
    """The ``PinTracker`` config section, in the units the core uses."""

    priority_max_age_ns: int = 86400 * 10**9
    priority_max_retries: int = 5
    max_retries: int = 10
    retry_backoff: float = 30.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> TrackerConfig:
        """From ``config["PinTracker"]`` (seconds)."""
        return cls(
            priority_max_age_ns=int(float(section.get("PriorityPinMaxAge", 86400)) * 1e9),
            priority_max_retries=int(section.get("PriorityPinMaxRetries", 5)),
            max_retries=int(section.get("MaxRetries", 10)),
            retry_backoff=float(section.get("RetryBackoff", 30)),
        )

    def backoff_ns(self, attempts: int) -> int:
        """Wait before retry number ``attempts`` (1 = after the first failure)."""
        seconds = min(MAX_BACKOFF, self.retry_backoff * 2 ** max(0, attempts - 1))
        return int(seconds * 1e9)

    def is_priority(self, pin_timestamp: int, attempts: int, now_ns: int) -> bool:
        """Upstream's rule: fresh (younger than the max age) and not retried too often."""
        return now_ns < pin_timestamp + self.priority_max_age_ns and attempts <= self.priority_max_retries


@dataclass(frozen=True)
class Record:
    """What the tracker knows of one CID."""

    cid: bytes
    op: str  #: "pin" or "unpin"
    status: str
    ts: int = 0  #: unix ns of the last status change
    attempts: int = 0
    error: str = ""
    priority: bool = False
    pin: bytes | None = None  #: the Pin (DAG-CBOR) while a pin is not done
    queue_key: bytes | None = None  #: its entry in the pin or unpin queue, when queued

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"o": self.op, "s": self.status, "t": self.ts}
        if self.attempts:
            obj["a"] = self.attempts
        if self.error:
            obj["e"] = self.error
        if self.priority:
            obj["r"] = True
        if self.pin is not None:
            obj["p"] = self.pin
        if self.queue_key is not None:
            obj["q"] = self.queue_key
        return libipld.encode_dag_cbor(obj)

    @classmethod
    def decode(cls, cid: bytes, data: bytes) -> Record:
        obj = libipld.decode_dag_cbor(data)
        return cls(
            cid=cid,
            op=obj["o"],
            status=obj["s"],
            ts=obj.get("t", 0),
            attempts=obj.get("a", 0),
            error=obj.get("e", ""),
            priority=obj.get("r", False),
            pin=obj.get("p"),
            queue_key=obj.get("q"),
        )

    @property
    def local(self) -> bool:
        """Whether it waits in the local lane (content uploaded here)."""
        return self.queue_key is not None and self.queue_key.startswith(LQ)

    def pin_obj(self) -> Pin | None:
        """The Pin of a pin operation (None once pinned or for unpins)."""
        return Pin.from_cbor(self.pin) if self.pin is not None else None

    def info(self, peer: str) -> PinInfo:
        """This record as one peer's PinInfo."""
        return PinInfo(
            cid=self.cid,
            peer=peer,
            status=self.status,
            timestamp=self.ts,
            error=self.error,
            attempt_count=self.attempts,
            priority_pin=self.priority,
        )


def record_row(data: bytes) -> tuple[str, int, str, int, bool]:
    """(status, ts, error, attempts, priority) of a stored record (``cluster.status.StatusRow``),
    read from its DAG-CBOR map without building a Record."""
    obj = libipld.decode_dag_cbor(data)
    return (obj["s"], obj.get("t", 0), obj.get("e", ""), obj.get("a", 0), obj.get("r", False))


class TrackerStore:
    """The tracker's persistent records, queues and counters (see module docstring). Thread-safe."""

    def __init__(self, db: KVStore, config: TrackerConfig | None = None) -> None:
        self._db = db
        self.config = config or TrackerConfig()
        self._lock = threading.RLock()
        raw = db.get(SEQ)
        self._seq = _U64.unpack(raw)[0] if raw else 0
        #: per queue prefix, a key at or below every live entry (see ``_first``)
        self._low: dict[bytes, bytes] = {}
        self._counts: dict[str, int] = {}
        for key, value in db.iterator(prefix=C):
            self._counts[key[len(C) :].decode()] = _U64.unpack(value)[0]

    # ------------------------------------------------------------ reads
    @property
    def lock(self) -> threading.RLock:
        """Held by every change of the records: a caller that must act only while a record
        stays as it read it (record a local pin for a pin still running) holds it meanwhile."""
        return self._lock

    def is_running(self, cid: bytes, op: str) -> bool:
        """Whether ``op`` on ``cid`` is running (not replaced or finished meanwhile)."""
        rec = self.get(cid)
        return rec is not None and rec.op == op and rec.status == RUNNING[op]

    def get(self, cid: bytes) -> Record | None:
        """The record of ``cid`` (None when untracked)."""
        data = self._db.get(R + cid)
        return Record.decode(cid, data) if data is not None else None

    def counts(self) -> dict[str, int]:
        """Records by status (O(1): kept as counters)."""
        with self._lock:
            return {k: v for k, v in self._counts.items() if v}

    def queue_length(self) -> int:
        """Pins and unpins waiting (queued now, not retries waiting for their backoff)."""
        with self._lock:
            return self._counts.get("pin_queued", 0) + self._counts.get("unpin_queued", 0)

    def pins_queued(self) -> int:
        """Pins waiting to be taken (what ``MaxPinQueueSize`` limits)."""
        with self._lock:
            return self._counts.get("pin_queued", 0)

    def iter_records(self, start: bytes | None = None) -> Iterator[Record]:
        """Every record from CID ``start`` on, sorted by CID bytes, streamed from disk."""
        n = len(R)
        it = self._db.iterator(start=R + start, stop=_after(R)) if start else self._db.iterator(prefix=R)
        with it:
            for key, value in it:
                yield Record.decode(key[n:], value)

    def iter_rows(self, start: bytes | None = None, stop: bytes | None = None) -> Iterator[tuple[bytes, tuple[str, int, str, int, bool]]]:
        """(CID, :func:`record_row`) of every record with ``start <= CID <= stop`` (None: open),
        sorted by CID bytes: what status streams read, without building a Record."""
        n = len(R)
        end = R + stop + b"\x00" if stop is not None else _after(R)
        with self._db.iterator(start=R + (start or b""), stop=end) as it:
            for key, value in it:
                yield key[n:], record_row(value)

    def in_progress(self) -> list[bytes]:
        """CIDs whose operation was running (after a crash: to re-queue)."""
        return [k[len(P) :] for k, _v in self._db.iterator(prefix=P)]

    def _first(self, prefix: bytes) -> bytes | None:
        """The first queue key under ``prefix``, read from the in-memory lower bound on.

        Taken entries are deleted, and LevelDB keeps their tombstones until a
        compaction: a scan from the start of the queue would step over all of
        them on every take. The bound is never above a live key (lowered on
        every insert below it), so starting there finds the same first key.
        """
        start = self._low.get(prefix, prefix)
        with self._db.iterator(start=start, stop=_after(prefix), include_value=False) as it:
            key = next(it, None)
        self._low[prefix] = key if key is not None else start
        return key

    def next_due(self, op: str) -> int | None:
        """Unix ns when the next ``op`` is due (None: nothing queued)."""
        best: int | None = None
        prefixes = QUEUES[op]
        with self._lock:
            for prefix in prefixes:
                key = self._first(prefix)
                if key is not None:
                    due = _U64.unpack_from(key, len(prefix))[0]
                    best = due if best is None else min(best, due)
        return best

    # ------------------------------------------------------------ writes
    def _write(self, old: Record | None, new: Record | None) -> None:
        """Replace ``old`` by ``new`` (None: absent) with their index entries and counters, in one batch."""
        with self._db.write_batch() as wb:
            self._stage(wb, old, new)

    def _stage(self, wb: Any, old: Record | None, new: Record | None) -> None:
        """Stage the replacement of ``old`` by ``new`` in the write batch ``wb`` (see :meth:`_write`)."""
        if old is not None:
            if old.queue_key is not None:
                wb.delete(old.queue_key)
            if old.status in ERRORS:
                wb.delete(E + old.cid)
            if old.status in RUNNING.values():
                wb.delete(P + old.cid)
            self._count(wb, old.status, -1)
        if new is None:
            if old is not None:
                wb.delete(R + old.cid)
        else:
            wb.put(R + new.cid, new.encode())
            if new.queue_key is not None:
                wb.put(new.queue_key, b"")
                prefix = _queue_prefix(new.queue_key)
                low = self._low.get(prefix)  # None: not known yet, scans start at the prefix
                if low is not None and new.queue_key < low:
                    self._low[prefix] = new.queue_key
            if new.status in ERRORS:
                wb.put(E + new.cid, b"")
            if new.status in RUNNING.values():
                wb.put(P + new.cid, b"")
            self._count(wb, new.status, +1)
        wb.put(SEQ, _U64.pack(self._seq))

    @contextmanager
    def _batch(self) -> Iterator[_Batch]:
        """Under the lock, a write batch whose staged records are read back before it is written."""
        with self._lock, self._db.write_batch() as wb:
            yield _Batch(self, wb)

    def _count(self, wb: Any, status: str, delta: int) -> None:
        n = max(0, self._counts.get(status, 0) + delta)
        self._counts[status] = n
        wb.put(C + status.encode(), _U64.pack(n))

    def _queue_key(self, op: str, priority: bool, due: int, cid: bytes, local: bool = False) -> bytes:
        self._seq += 1
        tail = _U64.pack(due) + _U64.pack(self._seq) + cid
        if op == UNPIN:
            return U + tail
        if local:
            return LQ + tail
        return Q + (b"\x00" if priority else b"\x01") + tail

    def _queued(self, cid: bytes, op: str, attempts: int, pin: bytes | None, pin_ts: int, due: int, now: int, status: str | None = None, error: str = "", local: bool = False) -> Record:
        priority = op == PIN and self.config.is_priority(pin_ts, attempts, now)
        return Record(
            cid=cid,
            op=op,
            status=status or QUEUED[op],
            ts=now,
            attempts=attempts,
            error=error,
            priority=priority,
            pin=pin,
            queue_key=self._queue_key(op, priority, due, cid, local),
        )

    def want_pin(self, pin: Pin, now: int | None = None, data: bytes | None = None, *, local: bool = False) -> str:
        """The state says: this peer must hold ``pin``. Returns what happened:
        ``queued``, ``updated`` (same op queued or running), ``kept`` (already pinned as asked).
        ``local``: its content was uploaded to this peer (queued in the local lane)."""
        return self.want_pins([(pin, data, local)], now)[0]

    def want_pins(self, items: Iterable[tuple[Pin, bytes | None, bool]], now: int | None = None) -> list[str]:
        """:meth:`want_pin` of each (pin, its DAG-CBOR or None, local) in one write batch; the outcomes in order."""
        now = now or time.time_ns()
        with self._batch() as b:
            return [self._want_pin(b, pin, now, data, local) for pin, data, local in items]

    def _want_pin(self, b: _Batch, pin: Pin, now: int, data: bytes | None, local: bool) -> str:
        data = data if data is not None else pin.to_cbor()  # the pinset's bytes when the caller has them
        old = b.get(pin.cid)
        if old is not None and old.op == PIN:
            if old.status in (QUEUED[PIN], RUNNING[PIN]):
                b.write(old, replace(old, pin=data))
                return "updated"
            if old.status == DONE_PIN and old.pin is None:
                return "kept"
            if old.status in (FAILED[PIN], FINAL) and old.pin == data:
                return "kept"  # the same pin again: its retry schedule stands
        attempts = old.attempts if old is not None and old.op == PIN else 0
        b.write(old, self._queued(pin.cid, PIN, attempts, data, pin.timestamp, now, now, local=local))
        return "queued"

    def want_unpin(self, cid: bytes, now: int | None = None) -> str:
        """The state says: this peer must not hold ``cid``. Returns ``queued``, ``dropped``
        (a pin that had not started: nothing to undo) or ``none`` (nothing tracked here)."""
        now = now or time.time_ns()
        with self._batch() as b:
            return self._want_unpin(b, cid, now)

    def _want_unpin(self, b: _Batch, cid: bytes, now: int) -> str:
        old = b.get(cid)
        if old is None:
            return "none"
        if old.op == UNPIN and old.status in (QUEUED[UNPIN], RUNNING[UNPIN]):
            return "none"
        if old.op == PIN and old.status in (QUEUED[PIN], FAILED[PIN], FINAL):
            b.write(old, None)
            return "dropped"
        attempts = old.attempts if old.op == UNPIN else 0
        b.write(old, self._queued(cid, UNPIN, attempts, None, 0, now, now))
        return "queued"

    def want_many(self, items: Iterable[tuple[bytes, Pin | None, bytes | None, bool]], now: int | None = None) -> list[str]:
        """Many changes of the state in one write batch: for each (cid, pin, its DAG-CBOR or None,
        local), :meth:`want_pin` when ``pin`` is given, else :meth:`want_unpin`; the outcomes in order."""
        now = now or time.time_ns()
        with self._batch() as b:
            return [
                self._want_pin(b, pin, now, data, local) if pin is not None else self._want_unpin(b, cid, now)
                for cid, pin, data, local in items
            ]

    def take(self, op: str, now: int | None = None) -> Record | None:
        """The next due ``op`` (priority pins first), marked running with one more attempt; None if none is due."""
        taken = self.take_many(op, 1, now)
        return taken[0] if taken else None

    def take_many(self, op: str, limit: int, now: int | None = None) -> list[Record]:
        """Up to ``limit`` due ``op`` operations in queue order (priority pins first), each marked
        running with one more attempt, in one write batch."""
        now = now or time.time_ns()
        run = UNPIN if op == UNPIN else PIN
        out: list[Record] = []
        with self._batch() as b:
            for prefix in QUEUES[op]:
                if len(out) >= limit:
                    break
                start = self._low.get(prefix, prefix)
                last: bytes | None = None
                with self._db.iterator(start=start, stop=_after(prefix), include_value=False) as it:
                    for key in it:
                        if len(out) >= limit or _U64.unpack_from(key, len(prefix))[0] > now:
                            last = key  # not taken: the first live key from here on
                            break
                        last = key
                        cid = key[len(prefix) + 16 :]
                        old = b.get(cid)
                        if old is None or old.queue_key != key:  # stale index entry (should not happen): drop it
                            b.wb.delete(key)
                            continue
                        new = replace(old, status=RUNNING[run], ts=now, attempts=old.attempts + 1, error="", queue_key=None)
                        b.write(old, new)
                        out.append(new)
                # every key below ``last`` was taken (deleted): it is a lower bound of the live ones
                self._low[prefix] = last if last is not None else start
        return out

    def demote(self, cid: bytes, now: int | None = None) -> Record | None:
        """A pin taken from the local lane whose content is not all here after all: queue it in
        the pin queue (the attempt is not counted). Ignored unless it is a running pin."""
        now = now or time.time_ns()
        with self._lock:
            old = self.get(cid)
            if old is None or old.op != PIN or old.status != RUNNING[PIN]:
                return old
            pin_ts = old.pin_obj().timestamp if old.pin is not None else 0  # type: ignore[union-attr]
            new = self._queued(cid, PIN, max(0, old.attempts - 1), old.pin, pin_ts, now, now)
            self._write(old, new)
            return new

    def finish(self, cid: bytes, op: str, error: str | None, now: int | None = None) -> Record | None:
        """Record the outcome of a running ``op`` (error None: success); the new record (None: gone).

        Ignored when the record is no longer that running op (it was replaced meanwhile).
        """
        return self.finish_many([(cid, op, error)], now)[0]

    def finish_many(self, items: Iterable[tuple[bytes, str, str | None]], now: int | None = None) -> list[Record | None]:
        """:meth:`finish` of each (cid, op, error) in one write batch; the new records in order."""
        now = now or time.time_ns()
        with self._batch() as b:
            return [self._finish(b, cid, op, error, now) for cid, op, error in items]

    def _finish(self, b: _Batch, cid: bytes, op: str, error: str | None, now: int) -> Record | None:
        old = b.get(cid)
        if old is None or old.op != op or old.status != RUNNING[op]:
            return old
        if error is None:
            new = None if op == UNPIN else replace(old, status=DONE_PIN, ts=now, error="", pin=None, priority=False)
        elif op == PIN and old.attempts >= self.config.max_retries:
            new = replace(old, status=FINAL, ts=now, error=error)
        else:
            due = now + self.config.backoff_ns(old.attempts)
            pin_ts = old.pin_obj().timestamp if old.pin is not None else 0  # type: ignore[union-attr]
            new = self._queued(cid, op, old.attempts, old.pin, pin_ts, due, now, status=FAILED[op], error=error)
        b.write(old, new)
        return new

    def recover(self, cid: bytes, now: int | None = None) -> Record | None:
        """Re-queue a failed operation of ``cid`` now (``pin_failed`` starts its attempts again)."""
        now = now or time.time_ns()
        with self._lock:
            old = self.get(cid)
            if old is None or old.status not in ERRORS:
                return old
            attempts = 0 if old.status == FINAL else old.attempts
            pin_ts = old.pin_obj().timestamp if old.pin is not None else 0  # type: ignore[union-attr]
            new = self._queued(cid, old.op, attempts, old.pin, pin_ts, now, now, error=old.error)
            self._write(old, new)
            return new

    def errored(self, include_final: bool = True) -> Iterator[bytes]:
        """CIDs of records in an error status (``pin_failed`` too unless told otherwise), from the index."""
        n = len(E)
        for key, _v in self._db.iterator(prefix=E):
            cid = key[n:]
            if not include_final:
                rec = self.get(cid)
                if rec is None or rec.status == FINAL:
                    continue
            yield cid

    def requeue_running(self, now: int | None = None) -> int:
        """After a restart: operations that were running are queued again; returns how many."""
        now = now or time.time_ns()
        n = 0
        with self._lock:
            for cid in self.in_progress():
                old = self.get(cid)
                if old is None:
                    self._db.delete(P + cid)
                    continue
                pin_ts = old.pin_obj().timestamp if old.pin is not None else 0  # type: ignore[union-attr]
                self._write(old, self._queued(cid, old.op, old.attempts, old.pin, pin_ts, now, now))
                n += 1
        return n

    def adopt_pinned(self, cid: bytes, now: int | None = None) -> None:
        """Track a CID that is already pinned locally as ``pinned`` (found while reconciling)."""
        with self._lock:
            old = self.get(cid)
            if old is None:
                self._write(None, Record(cid=cid, op=PIN, status=DONE_PIN, ts=now or time.time_ns()))

    def forget_pinned(self, cid: bytes) -> None:
        """Drop the record of a CID whose local pin is gone by other means (a user unpinned it)."""
        with self._lock:
            old = self.get(cid)
            if old is not None and old.status == DONE_PIN:
                self._write(old, None)

    def recount(self) -> dict[str, int]:
        """Records by status, counted from disk (tests check the counters against it)."""
        out: dict[str, int] = {}
        for rec in self.iter_records():
            out[rec.status] = out.get(rec.status, 0) + 1
        return out


class _Batch:
    """The changes of one tracker step on many CIDs: staged in one write batch, and read back
    (:meth:`get`) before it is written, so that a CID met twice sees its first change."""

    def __init__(self, store: TrackerStore, wb: Any) -> None:
        self.store = store
        self.wb = wb
        self._records: dict[bytes, Record | None] = {}

    def get(self, cid: bytes) -> Record | None:
        """The record of ``cid`` as this batch leaves it."""
        if cid in self._records:
            return self._records[cid]
        return self.store.get(cid)

    def write(self, old: Record | None, new: Record | None) -> None:
        """Stage the replacement of ``old`` by ``new``."""
        self.store._stage(self.wb, old, new)
        rec = new if new is not None else old
        if rec is not None:
            self._records[rec.cid] = new


def pin_roots(db: KVStore) -> Iterator[tuple[bytes, bool]]:
    """(CID, recursive) of every CID this peer pins or holds for the cluster, whatever the
    status (queued, pinning, failed, pinned): the tracker's garbage-collection roots.

    A pin not done yet is recursive unless it is a direct pin (``max_depth`` 0); a pinned
    CID keeps only its root here (its local pin and the pinset say how deep)."""
    n = len(R)
    with db.iterator(prefix=R) as it:
        for key, value in it:
            rec = Record.decode(key[n:], value)
            if rec.op != PIN:
                continue
            if rec.pin is None:
                yield rec.cid, False
                continue
            try:
                depth = Pin.from_cbor(rec.pin).max_depth
            except ValueError:
                depth = -1
            yield rec.cid, depth != 0


def _queue_prefix(key: bytes) -> bytes:
    """The queue prefix (one of :data:`QUEUES`) a queue key is under."""
    return key[: len(Q) + 1] if key.startswith(Q) else key[: len(U)]


def _after(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])
