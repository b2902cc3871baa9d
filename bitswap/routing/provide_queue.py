"""Providing: a durable provide queue in LevelDB and the reprovider that announces what the node holds.

What gets announced is a multihash (provider records are keyed by multihash, in the DHT as in
the network indexers). Three parts:

- the sans-I/O core: :class:`PassCursor` (where a reprovide pass may resume: only past batches
  that are all done, whatever order workers finish in), :class:`RateWindow` (announcements per
  second over a sliding window), :func:`backoff` and :func:`next_pass_due`;
- :class:`ProvideQueue`: the state in the repo's LevelDB under ``q/`` (layout below); every
  change is one write batch with its counters, so a restart resumes exactly and counts are O(1);
- :class:`Reprovider`: the asyncio service: ``workers`` tasks hand batches of ``batch_size``
  keys to ``announce(batch)`` (the DHT layer supplies it), new keys first, then retries that are
  due, then the reprovide pass (which still gets one batch in ``workers`` while new keys keep
  coming, so it cannot starve); failed keys are retried with back-off (``retry_backoff *
  2^(n-1)`` up to ``max_backoff``), dropped after ``max_attempts`` (the next pass has them again). The pass runs every ``interval`` (kubo's 22 h) and streams the
  keys of the strategy from a :data:`KeySource` without holding them in memory; its position is
  saved as batches complete, so after a restart it resumes from where it was.

| key | value |
|---|---|
| ``q/n/<seq 8><mh>`` | a new key to announce (FIFO) |
| ``q/r/<due ns 8><seq 8><mh>`` | a key to retry at ``due``; value: attempts so far (1 byte) |
| ``q/s`` | the pass state (JSON: current pass start and cursor, last pass start/end/keys, next due) |
| ``q/c/<name>`` | counters, 8-byte big-endian: queued_new, queued_retry, provided, errors, failed, excluded |
| ``q/seq`` | the last sequence number used |

Strategies (``Reprovider.Strategy``, kubo's): ``all`` (every block in the store; kubo's default),
``pinned`` (every block of every pinned DAG), ``roots`` (only the pinned CIDs themselves). The
strategy decides what enters: the pass reads :func:`strategy_source`; for new content the node
enqueues what the strategy covers (a new block for ``all``, the blocks of a new pin for
``pinned``, the pin's root for ``roots``). Choosing: every announced key costs a DHT provide
(kubo's sweep provider: ~20 peers per key region) once per interval. With ``all`` or ``pinned``,
a node holding N pins of on average B blocks announces N x B keys every 22 h: 1,000 announcements/s
sustained cover ~79 M keys per pass, so millions of pins of multi-block DAGs (tens of millions of
keys and more) should use ``roots``: one key per pin, and a retriever finds the rest of the DAG
from the peer that has the root (bitswap sessions ask the same peers for the children).

Cluster-internal blocks (the CRDT's deltas and snapshots) must never be announced: they would
leak the pinset. ``exclude(multihash) -> bool`` is checked when a key is enqueued and again just
before each announcement (so a block marked as internal after it was queued is still caught);
an excluded key is dropped and counted (``excluded``). The cluster layer supplies it
(``cluster/crdt/provide_exclusion.py``).

Use (on the node's asyncio loop)::

    queue = ProvideQueue(db, exclude=crdt_exclusion(db))   # db: the repo's plyvel DB
    rp = Reprovider(queue, announce, strategy_source("all", store),  # store: blockstore.store.BlockStore
                    ProvideConfig(strategy="all", interval=22 * 3600))
    task = asyncio.create_task(rp.run())
    rp.enqueue([multihash, ...])     # new content (what the strategy covers); wakes the feeder
    rp.stats()                       # ProvideStats, for Prometheus, `pinion top`, `pinion stats provide`
    await rp.stop()                  # in-flight batches are redone after the next start

``announce(batch)`` is awaited by up to ``workers`` tasks at once; it returns None (all
announced), or one bool per key, or raises (the whole batch failed).

Why one module of over 500 lines: the queue's LevelDB layout (the table above) is read and
written by all three parts; keeping them beside it keeps every key of ``q/`` in one file. The
sans-I/O rules are the first section and are tested alone (tests/bitswap/routing/test_provide_queue.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

from blockstore.cid import RAW, codec_of, multihash_of
from blockstore.kv import KVStore, KVWriteBatch
from blockstore.layout import NS_BLOCKS, NS_PINS, NS_PROVIDE
from blockstore.links import LinksError, iter_links
from blockstore.store import BlockStore

__all__ = [
    "STRATEGIES",
    "Announce",
    "KeySource",
    "PassCursor",
    "ProvideConfig",
    "ProvideQueue",
    "ProvideStats",
    "RateWindow",
    "Reprovider",
    "backoff",
    "next_pass_due",
    "strategy_source",
]

log = logging.getLogger(__name__)

NEW = NS_PROVIDE + b"n/"
RETRY = NS_PROVIDE + b"r/"
STATE = NS_PROVIDE + b"s"
COUNT = NS_PROVIDE + b"c/"
SEQ = NS_PROVIDE + b"seq"
STRATEGIES = ("all", "pinned", "roots")
_U64 = struct.Struct(">Q")
#: the Amino DHT keeps provider records 48 h: a longer interval would let them lapse
MAX_INTERVAL = 48 * 3600.0
_COUNTERS = ("queued_new", "queued_retry", "provided", "errors", "failed", "excluded")

#: ``announce(batch of multihashes)``: None or True when all were announced, else one bool per key;
#: raising means the whole batch failed
Announce = Callable[[list[bytes]], Awaitable["Sequence[bool] | bool | None"]]
#: ``source(resume_after)`` yields ``(boundary, multihash)`` in a stable order: ``boundary`` is
#: a position the pass may later resume after (None inside a group, e.g. within one pinned DAG),
#: ``multihash`` is a key to announce (None for a bare boundary)
KeySource = Callable[[bytes | None], Iterator[tuple[bytes | None, bytes | None]]]


# =========================================================================== sans-I/O core
def backoff(attempts: int, base: float, maximum: float) -> float:
    """Seconds to wait before retry number ``attempts`` (1 = after the first failure): base * 2^(n-1), capped."""
    return min(maximum, base * 2 ** max(0, attempts - 1))


def next_pass_due(last_start: float | None, interval: float, now: float, initial_delay: float) -> float:
    """When the next reprovide pass is due: ``interval`` after the last one started (now if overdue)."""
    if last_start is None:
        return now + initial_delay
    return max(now, last_start + interval)


class PassCursor:
    """Where a pass may resume: the boundary of the last batch such that it and every earlier batch are done.

    :meth:`issue` is called in feeding order with the newest boundary fed so far; :meth:`complete`
    in any order. Memory: one entry per batch in flight.
    """

    def __init__(self) -> None:
        self._next = 0
        self._low = 0  # the first ticket not yet completed
        self._boundary: dict[int, bytes | None] = {}
        self._done: set[int] = set()

    def issue(self, boundary: bytes | None) -> int:
        """A ticket for the next batch, whose end position is ``boundary`` (None: no boundary yet)."""
        ticket = self._next
        self._next += 1
        self._boundary[ticket] = boundary
        return ticket

    def complete(self, ticket: int) -> tuple[bool, bytes | None]:
        """Mark a batch done; (moved, boundary): whether the resumable position moved, and to what."""
        self._done.add(ticket)
        moved = False
        boundary = None
        while self._low in self._done:
            self._done.discard(self._low)
            b = self._boundary.pop(self._low)
            if b is not None:
                boundary = b
                moved = True
            self._low += 1
        return moved, boundary

    @property
    def in_flight(self) -> int:
        """Batches issued and not yet completed."""
        return self._next - self._low - len(self._done)


class RateWindow:
    """Events per second over the last ``window`` seconds (per-second buckets)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._buckets: deque[list[float]] = deque()

    def add(self, n: int, now: float) -> None:
        second = float(int(now))
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([second, float(n)])
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.window:
            self._buckets.popleft()

    def rate(self, now: float) -> float:
        self._trim(now)
        return sum(b[1] for b in self._buckets) / self.window


# =========================================================================== durable state
@dataclass(frozen=True)
class ProvideConfig:
    """Reprovider settings (``Reprovider.*`` config keys, in the units the code uses)."""

    strategy: str = "all"
    #: seconds between the starts of two reprovide passes (kubo: 22 h); 0 disables the pass
    interval: float = 22 * 3600.0
    #: first pass on a repo without history starts this long after the reprovider starts (kubo: 1 min)
    initial_delay: float = 60.0
    batch_size: int = 256
    workers: int = 4
    max_attempts: int = 5
    retry_backoff: float = 60.0
    max_backoff: float = 3600.0
    #: seconds of history behind ``provided_per_second``
    rate_window: float = 60.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown provide strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        if self.interval < 0 or self.batch_size < 1 or self.workers < 1 or self.max_attempts < 1:
            raise ValueError("interval >= 0, batch_size, workers and max_attempts >= 1 are required")
        if self.interval > MAX_INTERVAL:
            # as kubo: a record must be re-announced before the DHT forgets it
            raise ValueError(f"interval {self.interval:g} s exceeds the DHT provider record validity ({MAX_INTERVAL:g} s = 48 h)")


@dataclass(frozen=True)
class ProvideStats:
    """Progress of providing, for Prometheus, ``pinion top`` and ``pinion stats provide``. Times are unix seconds."""

    strategy: str
    interval: float
    queued_new: int
    queued_retry: int
    in_flight: int
    provided_total: int
    errors_total: int
    failed_total: int
    excluded_total: int
    provided_per_second: float
    pass_running: bool
    pass_started: float | None
    pass_provided: int
    last_pass_start: float | None
    last_pass_end: float | None
    last_pass_keys: int
    next_pass_due: float | None
    #: the running pass has taken longer than the interval: announcements do not keep up
    behind: bool

    @property
    def queued(self) -> int:
        """Keys waiting: new ones and retries."""
        return self.queued_new + self.queued_retry

    @property
    def last_pass_duration(self) -> float | None:
        """Seconds the last complete pass took."""
        if self.last_pass_start is None or self.last_pass_end is None:
            return None
        return self.last_pass_end - self.last_pass_start

    def to_json(self) -> dict[str, object]:
        """Every field plus ``queued`` and ``last_pass_duration``, for ``pinion stats provide --enc json``."""
        out: dict[str, object] = asdict(self)
        out["queued"] = self.queued
        out["last_pass_duration"] = self.last_pass_duration
        return out


@dataclass
class _PassState:
    start: float | None = None
    cursor: bytes | None = None
    done: int = 0
    last_start: float | None = None
    last_end: float | None = None
    last_keys: int = 0
    next_due: float | None = None
    #: the strategy of the pass under way (a cursor means something else under another strategy)
    strategy: str = ""

    def encode(self) -> bytes:
        return json.dumps(
            {
                "strategy": self.strategy,
                "start": self.start,
                "cursor": self.cursor.hex() if self.cursor is not None else None,
                "done": self.done,
                "last_start": self.last_start,
                "last_end": self.last_end,
                "last_keys": self.last_keys,
                "next_due": self.next_due,
            }
        ).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> _PassState:
        if raw is None:
            return cls()
        obj = json.loads(raw)
        cursor = obj.get("cursor")
        return cls(
            start=obj.get("start"),
            cursor=bytes.fromhex(cursor) if cursor is not None else None,
            done=obj.get("done", 0),
            last_start=obj.get("last_start"),
            last_end=obj.get("last_end"),
            last_keys=obj.get("last_keys", 0),
            next_due=obj.get("next_due"),
            strategy=obj.get("strategy", ""),
        )


@dataclass(frozen=True)
class Entry:
    """A queued key and the queue entry it came from (None for a key of the pass)."""

    mh: bytes
    key: bytes | None = None
    attempts: int = 0


def _after(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (prefixes here end below 0xff)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _next_key(key: bytes) -> bytes:
    """The smallest key greater than ``key``: where a scan resumes after it."""
    return key + b"\x00"


class ProvideQueue:
    """The durable part: new keys, retries, the pass state and the counters (see the module docstring). Thread-safe."""

    def __init__(self, db: KVStore, *, exclude: Callable[[bytes], bool] | None = None) -> None:
        self._db = db
        self.exclude = exclude
        self._lock = threading.Lock()
        raw = db.get(SEQ)
        self._seq = _U64.unpack(raw)[0] if raw else 0
        self._counts = {name: 0 for name in _COUNTERS}
        for key, value in db.iterator(prefix=COUNT):
            name = key[len(COUNT) :].decode()
            if name in self._counts:
                self._counts[name] = _U64.unpack(value)[0]
        self.state = _PassState.decode(db.get(STATE))
        # keys handed out but not completed are not handed out again (until a restart: at least once)
        self._new_fed: bytes | None = None
        self._retry_fed: bytes | None = None

    # ------------------------------------------------------------------ helpers
    def _count(self, wb: KVWriteBatch, name: str, delta: int) -> None:
        self._counts[name] = max(0, self._counts[name] + delta)
        wb.put(COUNT + name.encode(), _U64.pack(self._counts[name]))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def counts(self) -> dict[str, int]:
        """The counters (O(1))."""
        with self._lock:
            return dict(self._counts)

    def excluded(self, mh: bytes) -> bool:
        """Whether the exclusion hook forbids announcing ``mh``."""
        return self.exclude is not None and self.exclude(mh)

    # ------------------------------------------------------------------ new keys
    def enqueue(self, multihashes: Iterable[bytes]) -> int:
        """Queue keys to announce (excluded ones are dropped and counted); return how many were queued.

        Written in write batches of 10,000 keys, each with its counters.
        """
        total = 0
        chunk: list[bytes] = []
        for mh in multihashes:
            chunk.append(mh)
            if len(chunk) == 10_000:
                total += self._enqueue(chunk)
                chunk = []
        return total + self._enqueue(chunk)

    def _enqueue(self, multihashes: list[bytes]) -> int:
        if not multihashes:
            return 0
        with self._lock:
            added = excluded = 0
            with self._db.write_batch() as wb:
                for mh in multihashes:
                    if self.excluded(mh):
                        excluded += 1
                        continue
                    wb.put(NEW + _U64.pack(self._next_seq()) + mh, b"")
                    added += 1
                if added:
                    self._count(wb, "queued_new", added)
                    wb.put(SEQ, _U64.pack(self._seq))
                if excluded:
                    self._count(wb, "excluded", excluded)
            return added

    def take_new(self, n: int) -> list[Entry]:
        """Up to ``n`` new keys not handed out yet, oldest first (they stay queued until completed)."""
        with self._lock:
            start = _next_key(self._new_fed) if self._new_fed is not None else NEW
            out: list[Entry] = []
            with self._db.iterator(start=start, stop=_after(NEW), include_value=False) as it:
                for key in it:
                    out.append(Entry(key[len(NEW) + 8 :], key))
                    if len(out) >= n:
                        break
            if out:
                self._new_fed = out[-1].key
            return out

    def take_retries(self, n: int, now: float) -> list[Entry]:
        """Up to ``n`` retries due at ``now``, earliest first."""
        with self._lock:
            start = _next_key(self._retry_fed) if self._retry_fed is not None else RETRY
            stop = RETRY + _U64.pack(int(now * 1e9) + 1)
            out: list[Entry] = []
            with self._db.iterator(start=start, stop=stop) as it:
                for key, value in it:
                    out.append(Entry(key[len(RETRY) + 16 :], key, value[0] if value else 0))
                    if len(out) >= n:
                        break
            if out:
                self._retry_fed = out[-1].key
            return out

    def rewind(self) -> None:
        """Forget which keys were handed out: every queued key is handed out again (after a stop)."""
        with self._lock:
            self._new_fed = None
            self._retry_fed = None

    def next_retry_due(self) -> float | None:
        """Unix seconds when the next retry not handed out yet is due (None: none waiting)."""
        with self._lock:
            start = _next_key(self._retry_fed) if self._retry_fed is not None else RETRY
            with self._db.iterator(start=start, stop=_after(RETRY), include_value=False) as it:
                key = next(it, None)
        return None if key is None else _U64.unpack_from(key, len(RETRY))[0] / 1e9

    def has_new(self) -> bool:
        """Whether new keys wait that were not handed out yet."""
        with self._lock:
            start = _next_key(self._new_fed) if self._new_fed is not None else NEW
            with self._db.iterator(start=start, stop=_after(NEW), include_value=False) as it:
                return next(it, None) is not None

    # ------------------------------------------------------------------ completion
    def complete(
        self,
        done: Sequence[Entry],
        failed: Sequence[Entry],
        now: float,
        config: ProvideConfig,
        *,
        excluded: Sequence[Entry] = (),
        pass_done: int = 0,
        pass_cursor: bytes | None = None,
    ) -> int:
        """Record a batch's outcome in one write batch; return how many keys were dropped after ``max_attempts``.

        Every entry leaves its queue. ``failed`` ones are re-queued with a back-off until
        ``max_attempts``, then dropped (counted ``failed``; the next pass announces them again);
        ``excluded`` ones are counted as such. ``pass_done``/``pass_cursor``: keys of the pass
        this batch announced and the pass's new resumable position (None: unchanged).
        """
        dropped = 0
        with self._lock:
            with self._db.write_batch() as wb:
                for entry in (*done, *failed, *excluded):
                    if entry.key is not None:
                        wb.delete(entry.key)
                        self._count(wb, "queued_new" if entry.key.startswith(NEW) else "queued_retry", -1)
                for entry in failed:
                    attempts = entry.attempts + 1
                    if attempts >= config.max_attempts:
                        dropped += 1
                        continue
                    due = now + backoff(attempts, config.retry_backoff, config.max_backoff)
                    wb.put(RETRY + _U64.pack(int(due * 1e9)) + _U64.pack(self._next_seq()) + entry.mh, bytes([attempts]))
                    self._count(wb, "queued_retry", 1)
                if done:
                    self._count(wb, "provided", len(done))
                if failed:
                    self._count(wb, "errors", len(failed))
                if dropped:
                    self._count(wb, "failed", dropped)
                if excluded:
                    self._count(wb, "excluded", len(excluded))
                wb.put(SEQ, _U64.pack(self._seq))
                if pass_done or pass_cursor is not None:
                    self.state.done += pass_done
                    if pass_cursor is not None:
                        self.state.cursor = pass_cursor
                    wb.put(STATE, self.state.encode())
        return dropped

    # ------------------------------------------------------------------ the pass
    def save_state(self) -> None:
        """Persist the pass state (start, end of a pass)."""
        with self._lock:
            self._db.put(STATE, self.state.encode())


# =========================================================================== key sources
def _all_blocks(store: BlockStore) -> KeySource:
    db = store.db
    n = len(NS_BLOCKS)

    def source(after: bytes | None) -> Iterator[tuple[bytes | None, bytes | None]]:
        start = NS_BLOCKS + after + b"\x00" if after is not None else NS_BLOCKS
        with db.iterator(start=start, stop=_after(NS_BLOCKS), include_value=False) as it:
            for key in it:
                mh = key[n:]
                yield mh, mh

    return source


def _pins(db: KVStore, after: bytes | None) -> Iterator[tuple[bytes, bytes]]:
    n = len(NS_PINS)
    start = NS_PINS + after + b"\x00" if after is not None else NS_PINS
    with db.iterator(start=start, stop=_after(NS_PINS)) as it:
        for key, value in it:
            yield key[n:], value


def _roots(store: BlockStore) -> KeySource:
    def source(after: bytes | None) -> Iterator[tuple[bytes | None, bytes | None]]:
        for cid, _kind in _pins(store.db, after):
            yield cid, multihash_of(cid)

    return source


def _pinned(store: BlockStore) -> KeySource:
    def source(after: bytes | None) -> Iterator[tuple[bytes | None, bytes | None]]:
        for cid, kind in _pins(store.db, after):
            if kind != b"r":  # a direct pin: its block only
                yield None, multihash_of(cid)
                yield cid, None
                continue
            seen = {multihash_of(cid)}
            stack = [cid]
            while stack:
                c = stack.pop()
                yield None, multihash_of(c)
                if codec_of(c) == RAW:
                    continue
                data = store.get(c)
                if data is None:
                    continue  # an incomplete pinned DAG: announce what is here
                try:
                    links = iter_links(c, data)
                except LinksError:
                    continue
                for child in reversed(links):
                    mh = multihash_of(child)
                    if mh not in seen and store.has_multihash(mh):
                        seen.add(mh)
                        stack.append(child)
            yield cid, None

    return source


def strategy_source(strategy: str, store: BlockStore) -> KeySource:
    """The keys a reprovide pass announces for ``strategy`` (``all``, ``pinned``, ``roots``), streamed from disk.

    ``all``: every stored block by multihash; ``roots``: every local pin's CID; ``pinned``:
    every stored block of every pinned DAG (a direct pin: its block). Positions are block
    multihashes (``all``) or pin CIDs (``roots``, ``pinned``), so a pass resumes after the last
    complete key or pin.
    """
    if strategy == "all":
        return _all_blocks(store)
    if strategy == "roots":
        return _roots(store)
    if strategy == "pinned":
        return _pinned(store)
    raise ValueError(f"unknown provide strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")


# =========================================================================== the service
@dataclass
class _Batch:
    entries: list[Entry]
    ticket: int | None = None  # a batch of the pass
    boundary: bytes | None = None


@dataclass
class _Feed:
    """The pass's open key iterator (kept across batches; reopened at a boundary now and then)."""

    iterator: Iterator[tuple[bytes | None, bytes | None]] | None = None
    fed_since_open: int = 0
    boundary: bytes | None = None  # the last boundary fed
    exhausted: bool = False


class Reprovider:
    """Announces queued keys and runs the reprovide pass (see the module docstring)."""

    #: the pass's iterator is reopened at the next boundary after this many keys (bounds how long
    #: one LevelDB iterator, and the snapshot it pins, stays open)
    REOPEN_EVERY = 50_000

    def __init__(
        self,
        queue: ProvideQueue,
        announce: Announce,
        source: KeySource,
        config: ProvideConfig = ProvideConfig(),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.announce = announce
        self.source = source
        self.config = config
        self._clock = clock
        self._rate = RateWindow(config.rate_window)
        self._cursor = PassCursor()
        self._feed = _Feed()
        self._wake = asyncio.Event()
        self._batches: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=config.workers * 2)
        self._in_flight = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._run_task: asyncio.Task[None] | None = None
        self._stopping = False
        st = queue.state
        if st.start is not None and st.strategy != config.strategy:
            # the strategy changed under a pass: its cursor is meaningless now, start over
            log.info("provide strategy changed from %s to %s: the reprovide pass starts over", st.strategy, config.strategy)
            st.start = None
            st.cursor = None
            st.done = 0
            st.next_due = clock()
        elif st.start is None:
            # from the last pass and the interval configured now (it may have changed)
            st.next_due = next_pass_due(st.last_start, config.interval, clock(), config.initial_delay)
        queue.save_state()

    # ------------------------------------------------------------------ public
    def wake(self) -> None:
        """Tell the feeder new keys were queued (``ProvideQueue.enqueue`` callers should call this)."""
        self._wake.set()

    def enqueue(self, multihashes: Iterable[bytes]) -> int:
        """Queue new keys and wake the feeder; return how many were queued."""
        n = self.queue.enqueue(multihashes)
        if n:
            self._wake.set()
        return n

    def stats(self) -> ProvideStats:
        """The current figures."""
        c = self.queue.counts()
        st = self.queue.state
        now = self._clock()
        return ProvideStats(
            strategy=self.config.strategy,
            interval=self.config.interval,
            queued_new=c["queued_new"],
            queued_retry=c["queued_retry"],
            in_flight=self._in_flight,
            provided_total=c["provided"],
            errors_total=c["errors"],
            failed_total=c["failed"],
            excluded_total=c["excluded"],
            provided_per_second=self._rate.rate(now),
            pass_running=st.start is not None,
            pass_started=st.start,
            pass_provided=st.done,
            last_pass_start=st.last_start,
            last_pass_end=st.last_end,
            last_pass_keys=st.last_keys,
            next_pass_due=st.next_due if self.config.interval > 0 else None,
            behind=st.start is not None and self.config.interval > 0 and now - st.start > self.config.interval,
        )

    async def run(self) -> None:
        """Run the feeder and the workers until :meth:`stop` (or cancellation); may be run again after."""
        # what a previous run left in flight is handed out again (at least once)
        self.queue.rewind()
        self._batches = asyncio.Queue(maxsize=self.config.workers * 2)
        self._cursor = PassCursor()
        self._feed = _Feed()
        self._in_flight = 0
        self._stopping = False
        self._run_task = asyncio.current_task()
        self._tasks = [asyncio.ensure_future(self._worker()) for _ in range(self.config.workers)]
        try:
            await self._feeder()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._close_feed()

    async def stop(self) -> None:
        """Stop: batches in flight are abandoned (their keys stay queued, the pass resumes from its cursor)."""
        self._stopping = True
        task = self._run_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ------------------------------------------------------------------ feeding
    def _close_feed(self) -> None:
        it = self._feed.iterator
        self._feed.iterator = None
        if it is not None and hasattr(it, "close"):
            try:
                it.close()  # type: ignore[union-attr]
            except ValueError:
                pass  # still running in the chunk thread (a stop): it is collected when that returns

    def _pass_chunk(self, n: int) -> tuple[list[bytes], bytes | None, bool]:
        """Up to ``n`` keys of the pass (run in a thread): (keys, newest boundary fed, exhausted)."""
        feed = self._feed
        if feed.iterator is None:
            feed.iterator = iter(self.source(feed.boundary))
            feed.fed_since_open = 0
        keys: list[bytes] = []
        boundary = None
        while len(keys) < n:
            item = next(feed.iterator, None)
            if item is None:
                self._close_feed()
                return keys, boundary, True
            b, mh = item
            if mh is not None:
                keys.append(mh)
                feed.fed_since_open += 1
            if b is not None:
                boundary = feed.boundary = b
                if feed.fed_since_open >= self.REOPEN_EVERY:
                    self._close_feed()  # reopened after this boundary by the next chunk
                    break
        return keys, boundary, False

    def _start_pass(self, now: float) -> None:
        st = self.queue.state
        st.start = now
        st.strategy = self.config.strategy
        st.cursor = None
        st.done = 0
        self.queue.save_state()
        self._feed = _Feed()
        self._cursor = PassCursor()
        log.info("reprovide pass started (strategy %s)", self.config.strategy)

    def _end_pass(self, now: float) -> None:
        st = self.queue.state
        st.last_start, st.last_end, st.last_keys = st.start, now, st.done
        st.next_due = next_pass_due(st.start, self.config.interval, now, self.config.initial_delay)
        st.start = None
        st.cursor = None
        st.done = 0
        self.queue.save_state()
        self._feed = _Feed()
        self._wake.set()
        log.info("reprovide pass done: %d keys in %.1f s", st.last_keys, now - (st.last_start or now))

    async def _feed_pass(self) -> None:
        """Hand the next batch of the pass to the workers."""
        keys, boundary, exhausted = await asyncio.to_thread(self._pass_chunk, self.config.batch_size)
        self._feed.exhausted = exhausted
        if exhausted:
            boundary = None
        if keys or boundary is not None or exhausted:
            ticket = self._cursor.issue(boundary)
            await self._batches.put(_Batch([Entry(mh) for mh in keys], ticket, boundary))

    async def _feeder(self) -> None:
        """New keys first, then due retries, then the pass; but while a pass runs, at least one batch in
        ``workers`` is the pass's, so steady new content cannot starve the reprovide (as kubo's sweep
        provider reserves workers for it)."""
        cfg = self.config
        st = self.queue.state
        if st.start is not None:  # a pass was under way before a restart: resume it after its cursor
            self._feed = _Feed(boundary=st.cursor)
        pass_share = max(1, cfg.workers - 1)
        since_pass = 0  # batches of new keys or retries fed since the last batch of the pass
        while not self._stopping:
            now = self._clock()
            if cfg.interval > 0 and st.start is None and st.next_due is not None and now >= st.next_due:
                self._start_pass(now)
            pass_open = st.start is not None and not self._feed.exhausted
            if pass_open and since_pass >= pass_share:
                await self._feed_pass()
                since_pass = 0
                continue
            entries = self.queue.take_new(cfg.batch_size) or self.queue.take_retries(cfg.batch_size, now)
            if entries:
                await self._batches.put(_Batch(entries))
                since_pass += 1
                continue
            if pass_open:
                await self._feed_pass()
                since_pass = 0
                continue
            # nothing to hand out now: sleep until something is due or new keys arrive
            waits = [60.0]
            if st.start is None and st.next_due is not None and cfg.interval > 0:
                waits.append(st.next_due - now)
            due = self.queue.next_retry_due()
            if due is not None:
                waits.append(due - now)
            self._wake.clear()
            if self.queue.has_new():
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.01, min(waits)))
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ workers
    async def _worker(self) -> None:
        while True:
            batch = await self._batches.get()
            if batch is None:
                return
            self._in_flight += len(batch.entries)
            try:
                await self._run_batch(batch)
            finally:
                self._in_flight -= len(batch.entries)

    async def _run_batch(self, batch: _Batch) -> None:
        send: list[Entry] = []
        excluded: list[Entry] = []
        for e in batch.entries:
            (excluded if self.queue.excluded(e.mh) else send).append(e)
        ok: list[bool] = []
        if send:
            try:
                result = await self.announce([e.mh for e in send])
                if result is None or result is True:
                    ok = [True] * len(send)
                elif result is False:
                    ok = [False] * len(send)
                else:
                    ok = [bool(x) for x in result]
                    if len(ok) != len(send):
                        raise ValueError(f"announce returned {len(ok)} results for {len(send)} keys")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("announcing %d keys failed: %s", len(send), exc)
                ok = [False] * len(send)
        now = self._clock()
        done = [e for e, good in zip(send, ok) if good]
        failed = [e for e, good in zip(send, ok) if not good]
        pass_cursor = None
        if batch.ticket is not None:
            moved, boundary = self._cursor.complete(batch.ticket)
            pass_cursor = boundary if moved else None
        self.queue.complete(
            done,
            failed,
            now,
            self.config,
            excluded=excluded,
            pass_done=len(done) if batch.ticket is not None else 0,
            pass_cursor=pass_cursor,
        )
        self._rate.add(len(done), now)
        if failed:
            self._wake.set()  # the feeder may be asleep with no retry known: one is now
        if batch.ticket is not None and self._feed.exhausted and self._cursor.in_flight == 0:
            self._end_pass(now)
