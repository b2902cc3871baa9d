"""How the pin tracker fetches a pin's DAG: locally when complete here, else over bitswap after dialling its providers.

:class:`DagFetcher` is the tracker's :class:`~node.cluster.interfaces.ContentFetcher`.
A DAG already complete in the local block store (uploaded to this peer,
identity CIDs) is checked in a worker thread and never touches the network;
a peer with no free space (``Datastore.StorageMax``) refuses new content.

Many small pins start at about the same time (the tracker takes them in one
step), so the per-pin work is shared: the local checks of the pins that start
together run in one worker-thread job (free space read once), pins with the
same providers share one dial per second (:data:`DIAL_SHARED`), and their bitswap
fetches cross to the libp2p thread together (:meth:`NetworkContent.fetch_dag`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor

from blockstore.dagwalk import BlockNotFound, walk_dag
from blockstore.store import BlockStore
from cluster.pin import Pin

from ..content import NetworkContent
from .connect import Connector

#: seconds in which pins with the same providers share one dial (a provider that went away
#: meanwhile is dialled again by the next pins, and by each fetch's ``keep_connecting``)
DIAL_SHARED = 1.0


class DagFetcher:
    """Fetches pins' DAGs for the tracker (see module docstring)."""

    def __init__(
        self,
        content: NetworkContent,
        store: BlockStore,
        connector: Connector,
        *,
        freespace: Callable[[], int],
        reads: Executor | None = None,
    ) -> None:
        self._content = content
        self._store = store
        self._connector = connector
        self._freespace = freespace
        #: the daemon's reads pool for local DAG walks (None: the default executor)
        self._reads = reads
        #: local checks asked for in this turn of the event loop: (root, max_depth, its future)
        self._checks: list[tuple[bytes, int | None, asyncio.Future[tuple[bool, int]]]] = []
        #: providers key -> the dial running for it, or when the last one ended
        self._dialling: dict[tuple[object, ...], asyncio.Task[None]] = {}
        self._dialled: dict[tuple[object, ...], float] = {}

    async def fetch(self, pin: Pin, progress: Callable[[int], None]) -> None:
        """Fetch ``pin``'s DAG over bitswap: connect to its origins and to the other allocated peers first."""
        max_depth = None if pin.max_depth < 0 else pin.max_depth
        complete, free = await self._check(pin.cid, max_depth)
        if complete:
            progress(1)
            return
        if free <= 0:
            raise RuntimeError("Datastore.StorageMax reached: no room for new content on this peer")
        await self._connect(pin)
        connector = asyncio.create_task(self._connector.keep_connecting(pin), name="pin-connect")
        try:
            await self._content.fetch_dag(pin.cid, max_depth=max_depth, progress=lambda blocks, _bytes: progress(blocks))
        finally:
            connector.cancel()

    async def _check(self, root: bytes, max_depth: int | None) -> tuple[bool, int]:
        """(whether the DAG is complete here, free space), checked in one job with the other
        pins that start in this turn of the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, int]] = loop.create_future()
        self._checks.append((root, max_depth, future))
        if len(self._checks) == 1:
            loop.call_soon(self._run_checks, loop)
        return await future

    def _run_checks(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._checks = self._checks, []
        job = loop.run_in_executor(self._reads, self._check_many, [(root, depth) for root, depth, _f in batch])

        def settle(done: asyncio.Future[list[tuple[bool, int]]]) -> None:
            error = done.exception() if not done.cancelled() else asyncio.CancelledError()
            for i, (_root, _depth, future) in enumerate(batch):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result()[i])

        job.add_done_callback(settle)

    def _check_many(self, items: list[tuple[bytes, int | None]]) -> list[tuple[bool, int]]:
        """In a worker thread: per (root, max_depth), whether it is complete here, and the free space."""
        complete = [self.complete_here(root, depth) for root, depth in items]
        free = self._freespace() if not all(complete) else 1
        return [(c, free) for c in complete]

    async def _connect(self, pin: Pin) -> None:
        """Dial ``pin``'s providers, once per :data:`DIAL_SHARED` seconds for pins with the same
        ones (a dial already running for them is awaited, not repeated)."""
        key: tuple[object, ...] = (tuple(pin.origins), tuple(sorted(pin.allocations))) if pin.origins else ()
        running = self._dialling.get(key)
        if running is None:
            if time.monotonic() - self._dialled.get(key, -1e9) < DIAL_SHARED:
                return
            running = asyncio.create_task(self._connector.connect_providers(pin), name="pin-dial")
            self._dialling[key] = running

            def ended(_task: asyncio.Task[None]) -> None:
                self._dialling.pop(key, None)
                self._dialled[key] = time.monotonic()
                if len(self._dialled) > 1024:  # pins with origins of their own: keep the recent ones
                    now = time.monotonic()
                    self._dialled = {k: t for k, t in self._dialled.items() if now - t < DIAL_SHARED}

            running.add_done_callback(ended)
        await asyncio.shield(running)

    def complete_here(self, root: bytes, max_depth: int | None) -> bool:
        """Whether every block of the DAG under ``root`` is in the local block store (blocking)."""
        try:
            for _cid, _data in walk_dag(root, self._store.get, max_depth=max_depth):
                pass
        except BlockNotFound:
            return False
        return True
