"""Content from the network: the node's bitswap, seen from asyncio and from worker threads.

The bitswap service runs in the libp2p (trio) thread on the swarm host. This
module is how the rest of the node uses it without knowing there are two
event loops: through :class:`node.p2p.service.P2PService`'s bridge only.

- :class:`NetworkContent` starts bitswap and offers ``get_block`` and
  ``fetch_dag`` (async: the wait is on the event loop, in no thread), the
  ``CoreAPI`` network hooks ``get_block_blocking`` / ``fetch_dag_blocking``
  (called in worker threads: they never wait, they raise
  :class:`node.core.FetchNeeded` for :mod:`node.fetching` to fetch on the loop
  and call again), ``notify`` and ``stats``.
- :class:`NetworkBlockSource` is the gateway's block source when online:
  the local store first, then bitswap with a timeout (504 when it runs out).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import trio

from bitswap import Bitswap, BitswapConfig, fetch_dag
from bitswap import BlockNotDelivered
from bitswap import FetchError
from blockstore.store import BlockStore

from .core import FetchNeeded
from .gateway.source import BlockNotFound, BlockTimeout
from .p2p.service import P2PService

#: seconds a completed ``fetch_dag`` lets ``fetch_dag_blocking`` return at once, and how many are kept
FETCHED_TTL = 60.0
FETCHED_MAX = 1024


class NetworkContent:
    """The node's bitswap on the swarm host, usable from asyncio and worker threads."""

    def __init__(
        self, p2p: P2PService, store: BlockStore, *, fetch_timeout: float = 60.0, assist: Assist | None = None
    ) -> None:
        self._p2p = p2p
        self._store = store
        self.fetch_timeout = fetch_timeout
        self._bs: Bitswap | None = None
        #: content routing's provider search for fetches connected peers do not serve (node/routing)
        self._assist = assist
        #: (root, max_depth) -> when fetch_dag last completed it (see fetch_dag_blocking)
        self._fetched: dict[tuple[bytes, int | None], float] = {}
        #: DAG fetches asked for in this turn of the event loop (see _dag_session), and the batches running
        self._dag_queue: list[_DagRequest] = []
        self._dag_batches: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start bitswap in the libp2p thread (it stops with the p2p service)."""
        await self._p2p.start_libp2p_service(self._serve)

    async def _serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        host = self._p2p.swarm.host
        if host is None:
            raise RuntimeError("the swarm host is not running")
        self._bs = Bitswap(host, self._store, BitswapConfig())
        await self._bs.run(task_status=task_status)

    def _bitswap(self) -> Bitswap:
        if self._bs is None:
            raise RuntimeError("bitswap is not running")
        return self._bs

    # -- asyncio callers --------------------------------------------------------
    async def get_block(self, cid: bytes, timeout: float | None = None) -> bytes:
        """The block, from the store or the network; raises BlockTimeout when none arrives in time."""
        data = self._store.get(cid)
        if data is not None:
            return data
        bs = self._bitswap()
        async with self._searching(cid) as search:
            try:
                return await self._p2p.run_in_libp2p(bs.get_block, cid, timeout or self.fetch_timeout)
            except BlockNotDelivered:
                timeout_error = BlockTimeout(cid)
                timeout_error.args = (search.explain(timeout_error.args[0]),)
                raise timeout_error from None

    async def fetch_dag(
        self, root: bytes, *, max_depth: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Fetch every missing block of the DAG under ``root`` (cancellable); LookupError names a block that never came.

        ``progress(blocks, bytes)`` is called from the libp2p thread as blocks arrive.
        The DAGs asked for in one turn of the event loop (many small pins at once) start
        together in the libp2p thread: one crossing of the bridge for all of them, and their
        wants leave in the same bitswap messages.
        """
        self._bitswap()
        async with self._searching(root, dag=True, max_depth=max_depth) as search:
            error = await self._dag_session(root, max_depth, progress)
            if error is not None:
                raise LookupError(search.explain(error))
        now = time.monotonic()
        self._fetched[(root, max_depth)] = now
        if len(self._fetched) > FETCHED_MAX:
            self._fetched = {k: t for k, t in self._fetched.items() if now - t < FETCHED_TTL}
            while len(self._fetched) > FETCHED_MAX:
                del self._fetched[next(iter(self._fetched))]

    async def _dag_session(
        self, root: bytes, max_depth: int | None, progress: Callable[[int, int], None] | None
    ) -> str | None:
        """Fetch one DAG in the next batch that crosses to the libp2p thread; the FetchError's
        message (None: complete). Cancelling the caller cancels that DAG's fetch only."""
        loop = asyncio.get_running_loop()
        req = _DagRequest(root, max_depth, progress, loop.create_future())
        self._dag_queue.append(req)
        if len(self._dag_queue) == 1:
            loop.call_soon(self._start_dag_batch, loop)
        try:
            return await req.future
        except asyncio.CancelledError:
            req.cancel(self._p2p.bridge)
            raise

    def _start_dag_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: start the queued DAG fetches in the libp2p thread, all in one crossing."""
        batch, self._dag_queue = self._dag_queue, []
        task = loop.create_task(self._run_dag_batch(batch, loop), name="bitswap-dag-batch")
        self._dag_batches.add(task)
        task.add_done_callback(self._dag_batches.discard)

    async def _run_dag_batch(self, batch: list[_DagRequest], loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._p2p.run_in_libp2p(self._fetch_dags, batch, loop)
        except BaseException as exc:  # the libp2p thread stopped: the unsettled requests fail with it
            for req in batch:
                if not req.future.done():
                    req.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("bitswap stopped"))
            if not isinstance(exc, Exception):
                raise

    async def _fetch_dags(self, batch: list[_DagRequest], loop: asyncio.AbstractEventLoop) -> None:
        """In the libp2p thread: fetch each DAG of ``batch`` in its own cancel scope, and settle
        its future on the event loop as soon as it is done."""
        bs = self._bs

        async def one(req: _DagRequest) -> None:
            error: str | None = None
            failure: BaseException | None = None
            with trio.CancelScope() as scope:
                req.scope = scope
                if req.cancelled:
                    scope.cancel()
                try:
                    if bs is None:
                        raise RuntimeError("bitswap is not running")
                    await fetch_dag(bs, req.root, max_depth=req.max_depth, block_timeout=self.fetch_timeout, progress=req.progress)
                except FetchError as exc:
                    error = str(exc)
                except Exception as exc:  # noqa: BLE001 - raised to the caller on the loop
                    failure = exc
            if scope.cancelled_caught:
                return  # the caller was cancelled (or the service stops): nobody waits for it
            try:
                loop.call_soon_threadsafe(_settle, req.future, error, failure)
            except RuntimeError:  # the event loop is closed
                pass

        async with trio.open_nursery() as nursery:
            for req in batch:
                nursery.start_soon(one, req)

    def _searching(self, cid: bytes, *, dag: bool = False, max_depth: int | None = None) -> Any:
        """The routing provider search beside a fetch (a no-op search without routing)."""
        if self._assist is None:
            return contextlib.nullcontext(_NO_SEARCH)
        return self._assist.searching(cid, dag=dag, max_depth=max_depth)

    # -- worker-thread callers (CoreAPI) ----------------------------------------
    def get_block_blocking(self, cid: bytes) -> bytes | None:
        """From a worker thread: never waits. The block is not local (CoreAPI asked the store
        first), so raise FetchNeeded: the caller fetches it on the event loop and calls again."""
        self._bitswap()
        raise FetchNeeded(cid)

    def fetch_dag_blocking(
        self, root: bytes, *, max_depth: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """From a worker thread: return when ``fetch_dag`` fetched this DAG in the last
        :data:`FETCHED_TTL` seconds; otherwise raise FetchNeeded(dag=True) without waiting.

        Only a shortcut: the caller still walks the DAG in the store and fails on a missing block.
        """
        self._bitswap()
        at = self._fetched.get((root, max_depth))
        if at is not None and time.monotonic() - at < FETCHED_TTL:
            return
        raise FetchNeeded(root, dag=True, max_depth=max_depth)

    def notify(self, cids: Iterable[bytes]) -> None:
        """New blocks were stored locally: serve the peers that wanted them (and tell content routing)."""
        cids = list(cids)
        if self._assist is not None:
            self._assist.new_blocks(cids)
        if self._bs is None:
            return
        if not cids:
            return
        bs = self._bs

        async def notify() -> None:
            bs.notify_new_blocks(cids)

        self._p2p.bridge.start_soon(notify, name="bitswap-notify")

    def stats(self) -> dict[str, int]:
        """Bitswap counters (blocks/bytes sent and received, wantlist size, peers)."""
        return self._bs.stats() if self._bs is not None else {}


class _DagRequest:
    """One DAG to fetch in a batch: asked on the event loop, fetched in the libp2p thread."""

    __slots__ = ("root", "max_depth", "progress", "future", "scope", "cancelled")

    def __init__(
        self,
        root: bytes,
        max_depth: int | None,
        progress: Callable[[int, int], None] | None,
        future: asyncio.Future[str | None],
    ) -> None:
        self.root = root
        self.max_depth = max_depth
        self.progress = progress
        self.future = future
        #: its cancel scope in the libp2p thread, once the fetch started there
        self.scope: trio.CancelScope | None = None
        self.cancelled = False

    def cancel(self, bridge: Any) -> None:
        """From the event loop: stop this fetch (before it starts, or in the libp2p thread)."""
        self.cancelled = True  # read by the fetch when it starts: set before reading ``scope``
        scope = self.scope
        if scope is None:
            return

        async def cancel() -> None:
            scope.cancel()

        try:
            bridge.start_soon(cancel, name="bitswap-dag-cancel")
        except Exception:  # the libp2p thread is gone, and the fetch with it
            pass


def _settle(future: asyncio.Future[str | None], error: str | None, failure: BaseException | None) -> None:
    """On the event loop: end a DAG request's wait (unless its caller gave up)."""
    if future.done():
        return
    if failure is not None:
        future.set_exception(failure)
    else:
        future.set_result(error)


class _NoSearch:
    """The search of a node without content routing: explains nothing."""

    def explain(self, error: str) -> str:
        return error


_NO_SEARCH = _NoSearch()


class Assist(Protocol):
    """What NetworkContent needs of content routing (``node.routing.fetch_assist.FetchAssist``)."""

    def searching(self, cid: bytes, *, dag: bool = False, max_depth: int | None = None) -> Any: ...

    def new_blocks(self, cids: list[bytes]) -> None: ...


class NetworkBlockSource:
    """Gateway block source: the local store, then bitswap (504 after the fetch timeout)."""

    #: blocks worth requesting at once while streaming (missing ones travel over bitswap)
    concurrency = 16

    def __init__(self, content: NetworkContent) -> None:
        self._content = content
        self._store = content._store

    async def get(self, cid: bytes) -> bytes:
        """The block's bytes; raises BlockTimeout when the network does not deliver it."""
        return await self._content.get_block(cid)

    async def has_local(self, cid: bytes) -> bool:
        """Whether the block is in the local store (for ``only-if-cached``)."""
        return self._store.has(cid)


__all__ = ["NetworkContent", "NetworkBlockSource", "BlockNotFound", "BlockTimeout"]
