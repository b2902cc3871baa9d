"""The daemon's worker threads, one bounded pool per kind of work.

Everything the event loop must not do itself (LevelDB reads and writes, hashing, DAG walks,
imports) runs in a thread; nothing in a thread waits for the network. Missing blocks are
fetched on the event loop by awaiting the libp2p bridge (:mod:`node.fetching`), so a request
that waits 60 s for a block that never comes holds no thread at all. The threads left are
split by kind, so a flood of one kind fills only its own pool and the others keep answering:

=========  ====  ==========================================================================
pool       size  what runs there
=========  ====  ==========================================================================
imports       8  uploads (``add``, ``dag/import``, ``block/put``, the REST ``/add``): an
                 upload holds one thread for its whole body, because the importer reads
                 the body as a stream. Uploads are admitted before their body is read
                 (:meth:`WorkerPool.admit`): at most ``size`` at once, at most half of
                 them from one client address, the others wait up to
                 :data:`ADMISSION_WAIT` seconds and then get 503 with ``Retry-After``.
reads         8  block reads, path resolution, ``cat``/``ls``/``dag/export`` chunks, the
                 local walks of DAGs (pins, completeness checks)
pinset        4  the CRDT pinset's replica (pin writes and reads, syncing received heads,
                 snapshots): its calls take one lock, so more threads would only wait on
                 it; kept apart so that a long sync never delays the jobs below
state         8  the default executor: the pin tracker's queue, local pin records, the
                 cluster peer's status pages, the informer's pings and metrics
metrics       2  rendering ``/metrics`` (the collectors read LevelDB and take the pinset's
                 lock): a scrape never waits behind requests
health        1  the datastore probe of :mod:`node.health`
=========  ====  ==========================================================================

Why these sizes: Python threads share one interpreter lock, so CPU-bound work gains
nothing from more threads than cores; the threads are there to overlap LevelDB I/O (which
releases the lock) and to keep the event loop free. Eight per kind overlaps enough disk
waits on a busy node, and the whole process has 31 threads (the single pool before had 32,
shared by everything).

Each pool knows how long its oldest queued job has waited (:meth:`WorkerPool.stats`), which
``/health`` and ``/metrics`` report: a pool whose queue does not move is a node that cannot
serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from .errors import NodeError

T = TypeVar("T")

#: seconds an upload waits for an import thread before it is refused with 503
ADMISSION_WAIT = 30.0


class PoolBusy(NodeError):
    """No worker could be had in time (answered 503 with ``Retry-After``)."""

    status = 503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class PoolStats:
    """A pool at one instant: threads, jobs running, jobs queued, and how long the oldest has waited."""

    name: str
    size: int
    busy: int
    queued: int
    oldest_wait: float


class WorkerPool(ThreadPoolExecutor):
    """A bounded thread pool that tracks its queue (see module docstring).

    A drop-in ``Executor``: ``loop.run_in_executor(pool, fn, *args)`` works, and so does
    ``loop.set_default_executor(pool)``.
    """

    def __init__(self, name: str, size: int) -> None:
        super().__init__(max_workers=size, thread_name_prefix=f"pinion-{name}")
        self.name = name
        self.size = size
        self._lock = threading.Lock()
        self._queued: dict[int, float] = {}  # job number -> submit time, oldest first
        self._busy = 0
        self._numbers = itertools.count()
        # admission (uploads): created on first use, on the event loop
        self._slots: asyncio.Semaphore | None = None
        self._client_slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:  # type: ignore[override]
        number = next(self._numbers)
        with self._lock:
            self._queued[number] = time.monotonic()

        def job() -> T:
            with self._lock:
                self._queued.pop(number, None)
                self._busy += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._busy -= 1

        future = super().submit(job)
        # a job cancelled before it started never runs: it leaves the queue here
        future.add_done_callback(lambda _f: self._forget(number))
        return future

    def _forget(self, number: int) -> None:
        with self._lock:
            self._queued.pop(number, None)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in this pool from the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self, fn, *args)

    def stats(self) -> PoolStats:
        """The pool now (cheap: no job is waited for)."""
        now = time.monotonic()
        with self._lock:
            oldest = next(iter(self._queued.values()), None)
            return PoolStats(self.name, self.size, self._busy, len(self._queued), now - oldest if oldest is not None else 0.0)

    @contextlib.asynccontextmanager
    async def admit(self, client: str, wait: float = ADMISSION_WAIT) -> AsyncIterator[None]:
        """Hold one of the pool's ``size`` slots (at most ``size // 2`` per client address) while
        a long job runs; raises :class:`PoolBusy` when none frees up within ``wait`` seconds.

        Taken before an upload reads its body, so a queued upload buffers nothing.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        per_client = max(1, self.size // 2)
        sem, users = self._client_slots.get(client, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(per_client)
        self._client_slots[client] = (sem, users + 1)
        try:
            try:
                async with asyncio.timeout(wait):
                    await sem.acquire()
                    try:
                        await self._slots.acquire()
                    except BaseException:
                        sem.release()
                        raise
            except TimeoutError:
                raise PoolBusy(
                    f"too many uploads in progress ({self.size} at once, {per_client} per client): "
                    f"none finished within {wait:g} s, try again later"
                ) from None
            try:
                yield
            finally:
                self._slots.release()
                sem.release()
        finally:
            sem_now, users_now = self._client_slots[client]
            if users_now <= 1:
                del self._client_slots[client]
            else:
                self._client_slots[client] = (sem_now, users_now - 1)


class Pools:
    """The daemon's pools by kind (see module docstring)."""

    def __init__(self) -> None:
        self.imports = WorkerPool("imports", 8)
        self.reads = WorkerPool("reads", 8)
        self.pinset = WorkerPool("pinset", 4)
        self.state = WorkerPool("state", 8)
        self.metrics = WorkerPool("metrics", 2)
        self.health = WorkerPool("health", 1)

    def all(self) -> list[WorkerPool]:
        """Every pool, in the order of the module docstring."""
        return [self.imports, self.reads, self.pinset, self.state, self.metrics, self.health]

    def stats(self) -> list[PoolStats]:
        """Every pool now."""
        return [p.stats() for p in self.all()]

    def shutdown(self, wait: bool = True) -> None:
        """Stop every pool (running jobs finish; with ``wait``, joined)."""
        for pool in self.all():
            pool.shutdown(wait=wait, cancel_futures=True)
