"""CoreAPI's operations for the daemon: disk and CPU steps in a worker pool, network waits on the loop.

:class:`node.core.CoreAPI` is synchronous and reads blocks from the store. In the daemon its
network hooks (node/content.py) never wait in the worker thread: a block that is not local
ends the operation with :class:`~node.core.FetchNeeded`. :class:`FetchingCore` then awaits
the block (or the DAG) over bitswap on the event loop, where a wait costs no thread, and runs
the operation again. Each CID is fetched at most once per call, so an operation ends:
a block that does not come within ``Gateway.FetchTimeout`` is a :class:`~node.errors.NotFound`.

Streams are blocking generators pulled by :func:`pull` a batch at a time: each batch is one
job in the pool (up to :data:`BATCH_BYTES` or :data:`BATCH_SECONDS`), and between batches no
thread is held, so a client that reads slowly costs no thread either. Where a stream stops for
the network it goes on as follows:

- ``cat`` restarts at the byte it reached;
- ``dag/export`` and ``get`` fetch the whole DAG first (they need all of it anyway), so their
  stream never stops for the network;
- walks that list what they find (``refs``, ``dag/stat``: :meth:`FetchingCore.walk`) fetch the
  DAG below the block they lack and walk again, skipping the bytes already sent (the walk
  gives the same bytes each time); after a fetch that failed they walk the store only and
  report what is missing themselves (``refs``' error lines);
- ``ls`` of a directory that is not local fetches the directory's entries in one go before
  listing, so a big remote directory costs one bitswap session, not one retry per entry.

Offline (no network) nothing is ever deferred and this is CoreAPI in a worker pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import aclosing
from concurrent.futures import Executor
from typing import Any, TypeVar

from blockstore.cid import cid_to_str

from .core import CoreAPI, FetchNeeded
from .errors import NotFound

T = TypeVar("T")

#: bytes of a stream one pool job gathers, and seconds it may spend on them
BATCH_BYTES = 256 * 1024
BATCH_SECONDS = 0.05


def _next_batch(gen: Iterator[bytes]) -> tuple[list[bytes], BaseException | None, bool]:
    """In a worker: items of ``gen`` up to :data:`BATCH_BYTES` or :data:`BATCH_SECONDS`;
    (items, the error that ended ``gen`` or None, whether ``gen`` ended)."""
    items: list[bytes] = []
    size = 0
    deadline = time.monotonic() + BATCH_SECONDS
    while size < BATCH_BYTES and time.monotonic() < deadline:
        try:
            item = next(gen)
        except StopIteration:
            return items, None, True
        except Exception as exc:  # noqa: BLE001 - raised on the loop after the items before it
            return items, exc, True
        items.append(item)
        size += len(item)
    return items, None, False


async def pull(executor: Executor | None, gen: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The bytes of the blocking generator ``gen``, pulled in ``executor`` a batch at a time
    (see module docstring); the error that ends ``gen`` is raised after the bytes before it.

    Closed early (the client went away), ``gen`` is closed in the pool once no batch of it
    runs any more (its ``finally`` may clean up on disk)."""
    loop = asyncio.get_running_loop()
    job: asyncio.Future[tuple[list[bytes], BaseException | None, bool]] | None = None
    ended = False
    try:
        while not ended:
            job = loop.run_in_executor(executor, _next_batch, gen)
            # shielded: a cancelled reader leaves the batch to finish, then gen is closed after it
            items, error, ended = await asyncio.shield(job)
            job = None
            if items:
                yield b"".join(items)
            if error is not None:
                raise error
    finally:
        if not ended:
            _close_later(loop, executor, gen, job)


def _close_later(
    loop: asyncio.AbstractEventLoop, executor: Executor | None, gen: Iterator[bytes], job: asyncio.Future[Any] | None
) -> None:
    """Close ``gen`` in ``executor`` after ``job`` (a batch of it still running, or None)."""

    def close(_done: Any = None) -> None:
        try:
            loop.run_in_executor(executor, _close, gen)
        except RuntimeError:  # the pool (or the loop) is shut down: close here
            _close(gen)

    if job is not None and not job.done():
        job.add_done_callback(close)
    else:
        close()


class FetchingCore:
    """CoreAPI driven from the event loop (see module docstring).

    ``content`` is the daemon's :class:`node.content.NetworkContent` (None offline);
    ``executor`` runs the disk/CPU steps (the reads pool; None: the loop's default executor).
    """

    def __init__(self, core: CoreAPI, content: Any | None, executor: Executor | None = None) -> None:
        self.core = core
        self.content = content
        self.executor = executor

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _fetch(self, need: FetchNeeded, fetched: set[bytes]) -> None:
        """Fetch what ``need`` names, on the event loop; NotFound when it does not come (or came
        before in this call and is still not there)."""
        name = cid_to_str(need.cid)
        if self.content is None or need.cid in fetched:
            raise NotFound(f"block not found locally: {name}")
        fetched.add(need.cid)
        try:
            if need.dag:
                await self.content.fetch_dag(need.cid, max_depth=need.max_depth)
            else:
                await self.content.get_block(need.cid)
        except LookupError as exc:
            raise NotFound(f"block not found locally or on the network: {exc}") from None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool, fetching whatever it defers and running it again."""
        fetched: set[bytes] = set()
        while True:
            try:
                return await self._in_pool(fn, *args)
            except FetchNeeded as need:
                await self._fetch(need, fetched)

    async def resolve(self, path: str) -> bytes:
        """The CID a path points to (:meth:`CoreAPI.resolve`)."""
        return await self.call(self.core.resolve, path)

    async def ls(self, path: str) -> list[Any]:
        """A directory's entries (:meth:`CoreAPI.ls`); a remote directory's entries are fetched first."""
        cid = await self.resolve(path)
        target = cid_to_str(cid)
        try:
            return await self._in_pool(self.core.ls, target)
        except FetchNeeded:
            assert self.content is not None  # only the network defers
        try:
            # the directory block, its shards and its entries' first blocks, in one session
            await self.content.fetch_dag(cid, max_depth=1)
        except LookupError:
            pass  # what did not come is fetched (or reported) one by one below
        return await self.call(self.core.ls, target)

    async def cat(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """A file's bytes (:meth:`CoreAPI.cat`), fetching missing blocks as the read reaches them."""
        fetched: set[bytes] = set()
        sent = 0
        while True:
            gen = self.core.cat(path, offset + sent, None if length is None else length - sent)
            try:
                async with aclosing(pull(self.executor, gen)) as chunks:
                    async for chunk in chunks:
                        sent += len(chunk)
                        yield chunk
                return
            except FetchNeeded as need:
                await self._fetch(need, fetched)

    async def walk(self, make: Callable[[bool], Iterator[bytes]], *, depth: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of ``make(local)``, a blocking walk of DAGs in the store that gives the same
        bytes each time it is made (``refs``, ``dag/stat``).

        A block the walk lacks is fetched on the loop with the DAG below it (``depth`` levels
        below it, None: all), then the walk is made again and the bytes already yielded are
        skipped. Once a fetch failed (or a fetched block is gone again), the walk is made with
        ``local=True``: it reads the store only and reports what is missing itself."""
        fetched: set[bytes] = set()
        local = self.content is None
        sent = 0
        while True:
            skip = sent
            try:
                async with aclosing(pull(self.executor, make(local))) as chunks:
                    async for chunk in chunks:
                        if skip >= len(chunk):
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                        sent += len(chunk)
                        yield chunk
                return
            except FetchNeeded as need:
                if local or self.content is None or need.cid in fetched:
                    local = True
                    continue
                fetched.add(need.cid)
                try:
                    await self.content.fetch_dag(need.cid, max_depth=need.max_depth if need.dag else depth)
                except LookupError:
                    local = True  # what did not come is reported by the walk, not waited for again

    async def _fetch_dag_first(self, cid: bytes) -> None:
        """The whole DAG under ``cid`` fetched on the loop (nothing offline)."""
        if self.content is not None:
            try:
                await self.content.fetch_dag(cid)
            except LookupError as exc:
                raise NotFound(f"DAG incomplete, block not found locally or on the network: {exc}") from None

    async def _complete(self, gen: Iterator[bytes]) -> AsyncIterator[bytes]:
        """The bytes of ``gen``, a stream over a DAG fetched before: a block it lacks now was
        removed since (GC), and ends it."""
        try:
            async with aclosing(pull(self.executor, gen)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except FetchNeeded as need:
            raise NotFound(f"DAG incomplete, block not found locally: {cid_to_str(need.cid)}") from None

    async def car_export(self, path: str, *, local_only: bool = False) -> AsyncIterator[bytes]:
        """A CARv1 of the DAG under ``path`` (:meth:`CoreAPI.car_export`); a DAG that is not
        complete here is fetched first, so the stream never stops for the network.
        ``local_only``: the blocks stored here, nothing fetched (kubo's ``--local-only``)."""
        cid = await self.resolve(path)
        if not local_only:
            await self._fetch_dag_first(cid)
        gen = self.core.car_export(cid_to_str(cid), local_only=local_only)
        async with aclosing(self._complete(gen)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def get_tar(self, path: str, *, archive: bool = False, level: int = 0) -> tuple[int, AsyncIterator[bytes]]:
        """``ipfs get`` (:meth:`CoreAPI.get_tar`): (size, tar stream); the DAG is fetched first."""
        await self._fetch_dag_first(await self.resolve(path))
        size, gen = await self.call(lambda: self.core.get_tar(path, archive=archive, level=level))
        return size, self._complete(gen)

    async def pin_add(
        self, path: str, *, recursive: bool = True, progress: Callable[[int], None] | None = None, name: str = ""
    ) -> bytes:
        """Pin what ``path`` points to (:meth:`CoreAPI.pin_add`, ``name`` its pin name): the DAG
        (or block) is fetched on the event loop first, ``progress(blocks)`` told as blocks
        arrive; the walk and the pin record run in the pool."""
        cid = await self.resolve(path)
        target = cid_to_str(cid)
        # refused pins (full queue, bad name, kubo's pin-state rules) fetch nothing
        await self.call(lambda: self.core.check_pin_add(cid, recursive=recursive, name=name))
        if self.content is not None:
            try:
                if recursive:
                    report = (lambda blocks, _bytes: progress(blocks)) if progress is not None else None
                    await self.content.fetch_dag(cid, progress=report)
                else:
                    await self.content.get_block(cid)
            except LookupError as exc:
                raise NotFound(f"cannot pin, DAG could not be fetched: {exc}") from None
        return await self.call(lambda: self.core.pin_add(target, recursive=recursive, name=name))


def _close(gen: Generator[Any, None, None]) -> None:
    """Close a generator; one still running in a worker (its reader was cancelled) is left to the GC."""
    try:
        gen.close()
    except ValueError:  # "generator already executing"
        pass
