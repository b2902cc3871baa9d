"""CoreAPI's operations for the daemon: disk and CPU steps in a worker pool, network waits on the loop.

:class:`node.core.CoreAPI` is synchronous and reads blocks from the store. In the daemon its
network hooks (node/content.py) never wait in the worker thread: a block that is not local
ends the operation with :class:`~node.core.FetchNeeded`. :class:`FetchingCore` then awaits
the block (or the DAG) over bitswap on the event loop, where a wait costs no thread, and runs
the operation again. Each CID is fetched at most once per call, so an operation ends:
a block that does not come within ``Gateway.FetchTimeout`` is a :class:`~node.core.NotFound`.

Streams (``cat``, ``dag/export``) go on where they stopped: ``cat`` restarts at the byte it
reached; an export fetches the whole DAG first (it needs all of it anyway). ``ls`` of a
directory that is not local fetches the directory's entries in one go before listing, so a
big remote directory costs one bitswap session, not one retry per entry.

Offline (no network) nothing is ever deferred and this is CoreAPI in a worker pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import Executor
from typing import Any, TypeVar

from blockstore.cid import cid_to_str

from .core import CoreAPI, FetchNeeded, NotFound

T = TypeVar("T")

_END = object()


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
                while True:
                    chunk = await self._in_pool(next, gen, _END)
                    if chunk is _END:
                        return
                    sent += len(chunk)  # type: ignore[arg-type]
                    yield chunk  # type: ignore[misc]
            except FetchNeeded as need:
                await self._fetch(need, fetched)
            finally:
                _close(gen)

    async def car_export(self, path: str) -> AsyncIterator[bytes]:
        """A CARv1 of the DAG under ``path`` (:meth:`CoreAPI.car_export`); a DAG that is not
        complete here is fetched first, so the stream never stops for the network."""
        cid = await self.resolve(path)
        if self.content is not None:
            try:
                await self.content.fetch_dag(cid)
            except LookupError as exc:
                raise NotFound(f"DAG incomplete, block not found locally or on the network: {exc}") from None
        gen = self.core.car_export(cid_to_str(cid))
        try:
            while True:
                chunk = await self._in_pool(next, gen, _END)
                if chunk is _END:
                    return
                yield chunk  # type: ignore[misc]
        except FetchNeeded as need:  # a block gone since the fetch (GC)
            raise NotFound(f"DAG incomplete, block not found locally: {cid_to_str(need.cid)}") from None
        finally:
            _close(gen)

    async def pin_add(self, path: str, *, recursive: bool = True, progress: Callable[[int], None] | None = None) -> bytes:
        """Pin what ``path`` points to (:meth:`CoreAPI.pin_add`): the DAG (or block) is fetched on
        the event loop first, ``progress(blocks)`` told as blocks arrive; the walk and the pin
        record run in the pool."""
        cid = await self.resolve(path)
        target = cid_to_str(cid)
        if self.content is not None:
            try:
                if recursive:
                    report = (lambda blocks, _bytes: progress(blocks)) if progress is not None else None
                    await self.content.fetch_dag(cid, progress=report)
                else:
                    await self.content.get_block(cid)
            except LookupError as exc:
                raise NotFound(f"cannot pin, DAG could not be fetched: {exc}") from None
        return await self.call(lambda: self.core.pin_add(target, recursive=recursive))


def _close(gen: Generator[Any, None, None]) -> None:
    """Close a generator; one still running in a worker (its reader was cancelled) is left to the GC."""
    try:
        gen.close()
    except ValueError:  # "generator already executing"
        pass
