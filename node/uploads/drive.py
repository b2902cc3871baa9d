"""Streaming a multipart request body into a worker thread with bounded memory.

:func:`drive_upload` reads the body from aiohttp in pieces, parses it with
the sans-I/O :class:`~node.uploads.multipart.MultipartParser` and hands the
events to ``worker(pipe)`` running in a thread, through a bounded
:class:`~node.uploads.pipe.ItemPipe`. When the body is malformed, truncated or
the client goes away, the pipe is aborted: the worker's next read raises,
its import rolls back (the store's import journals), and the caller gets the
error. The worker's result is returned once the whole body was consumed.

When ``executor`` is a :class:`node.workers.WorkerPool` (the daemon's imports
pool) the upload is admitted first (:meth:`~node.workers.WorkerPool.admit`:
PoolBusy, answered 503, when no slot frees up in time), before any of its body
is read. A client that sends nothing for ``idle_timeout`` seconds in
the middle of its body is cut off with 408 and its upload rolled back, so a
stalled client cannot keep an import thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from aiohttp import web

from ..workers import WorkerPool
from .multipart import MultipartError, MultipartParser, PartData, boundary_of
from .errors import UploadError
from .pipe import DEFAULT_LIMIT, ItemPipe, ReaderGone, UploadAborted
from ..errors import NodeError

T = TypeVar("T")

#: bytes asked from the socket per read
READ_SIZE = 256 * 1024
#: weight of a non-data event in the pipe's byte budget
_EVENT_WEIGHT = 256
#: seconds an upload's client may send nothing before the upload is aborted (408); the
#: daemon passes ``HTTP.BodyTimeout``
BODY_IDLE_TIMEOUT = 60.0


class UploadTooLarge(NodeError):
    """The body passed ``Datastore.MaxUploadSize``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"upload exceeds the {max_bytes}-byte limit (Datastore.MaxUploadSize)")


class UploadStalled(NodeError):
    """The client sent no body data for the idle timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the client sent no upload data for {seconds:g} s: upload aborted")


def _run(worker: Callable[[ItemPipe], T], pipe: ItemPipe) -> T:
    try:
        return worker(pipe)
    finally:
        pipe.reader_done()


async def drive_upload(
    request: web.Request,
    worker: Callable[[ItemPipe], T],
    *,
    executor: Executor | None = None,
    limit: int = DEFAULT_LIMIT,
    on_bytes: Callable[[int], None] | None = None,
    max_bytes: int = 0,
    idle_timeout: float = BODY_IDLE_TIMEOUT,
) -> T:
    """Feed the request's multipart body to ``worker`` (in a thread); return its result.

    A body larger than ``max_bytes`` (0: no limit; ``Datastore.MaxUploadSize``) is
    refused with 413 as soon as it passes the limit; what it wrote is rolled back.
    """
    try:
        boundary = boundary_of(request.headers.get("Content-Type", ""))
        parser = MultipartParser(boundary)
    except MultipartError as exc:
        raise UploadError(str(exc), status=400, client=True) from None
    admission = executor.admit(request.remote or "?") if isinstance(executor, WorkerPool) else contextlib.nullcontext()
    async with admission:
        return await _drive(request, worker, parser, executor, limit, on_bytes, max_bytes, idle_timeout)


async def _drive(
    request: web.Request,
    worker: Callable[[ItemPipe], T],
    parser: MultipartParser,
    executor: Executor | None,
    limit: int,
    on_bytes: Callable[[int], None] | None,
    max_bytes: int,
    idle_timeout: float,
) -> T:
    loop = asyncio.get_running_loop()
    pipe = ItemPipe(loop, limit)
    fut = loop.run_in_executor(executor, _run, worker, pipe)
    content = request.content
    received = 0
    try:
        if max_bytes and request.content_length is not None and request.content_length > max_bytes:
            raise UploadTooLarge(max_bytes)
        while not parser.done:
            try:
                async with asyncio.timeout(idle_timeout):
                    chunk = await content.read(READ_SIZE)
            except TimeoutError:
                raise UploadStalled(idle_timeout) from None
            if not chunk:
                parser.close()
                break
            received += len(chunk)
            if max_bytes and received > max_bytes:
                raise UploadTooLarge(max_bytes)
            if on_bytes is not None:
                on_bytes(len(chunk))
            for ev in parser.feed(chunk):
                await pipe.put(ev, len(ev.data) if isinstance(ev, PartData) else _EVENT_WEIGHT)
        pipe.close()
    except ReaderGone:
        pass  # the worker is done early (finished or failed); its outcome decides
    except UploadTooLarge as exc:
        pipe.abort(UploadAborted(str(exc)))
        await _settle(fut)
        raise UploadError(str(exc), status=413, client=True) from None
    except UploadStalled as exc:
        pipe.abort(UploadAborted(str(exc)))
        await _settle(fut)
        raise UploadError(str(exc), status=408, client=True) from None
    except MultipartError as exc:
        pipe.abort(UploadAborted(str(exc)))
        await _settle(fut)
        status = 413 if getattr(exc, "too_large", False) else 400
        raise UploadError(str(exc), status=status, client=True) from None
    except BaseException:
        pipe.abort(UploadAborted("the client closed the connection before the upload ended"))
        await _settle(fut)
        raise
    try:
        return await fut
    except UploadAborted as exc:
        raise UploadError(f"upload aborted: {exc}") from None


async def _settle(fut: asyncio.Future[object]) -> None:
    """Wait for the worker to finish its rollback, whatever it raised."""
    try:
        await asyncio.shield(fut)
    except BaseException:  # noqa: BLE001 - the worker's failure is expected here
        pass
