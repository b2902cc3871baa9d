"""Responses of the kubo RPC as go-ipfs-cmds writes them: one JSON value, NDJSON, byte streams, errors.

go-ipfs-cmds (``http/responseemitter.go``) marks a response by what the
command emits: one value (``cmds.EmitOnce``) gets no marker header, a
channel of values gets ``X-Chunked-Output: 1`` (NDJSON), a byte stream gets
``X-Stream-Output: 1``. Errors are ``{"Message","Code","Type":"error"}`` with
HTTP 500 (400 for code 1).

Streams are produced by blocking generators (they read LevelDB and may wait
for bitswap). :func:`stream_generator` runs one in a worker thread that hands
its items to the event loop through a small bounded buffer: the response is
written as fast as the client reads it, items produced while a write is in
progress go out together in the next write, and a slow client makes the
generator wait instead of buffering the stream in memory.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from ..core import CoreError
from .options import RpcError

_JSON_HEADERS = {"Content-Type": "application/json", "Vary": "Origin", "Trailer": "X-Stream-Error"}
#: bytes a streaming generator may get ahead of the client
STREAM_BUFFER = 1024 * 1024


def encode_json(obj: Any) -> bytes:
    """One JSON value and a newline, compact as Go's encoding/json writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def json_response(obj: Any, status: int = 200) -> web.Response:
    """One JSON value (``cmds.EmitOnce``), newline-terminated as go-ipfs-cmds writes it."""
    return web.Response(body=encode_json(obj), status=status, headers=_JSON_HEADERS)


def ndjson_response(objs: list[dict[str, Any]]) -> web.Response:
    """Several JSON values, one per line (``X-Chunked-Output``)."""
    body = b"".join(encode_json(o) for o in objs)
    return web.Response(body=body, headers={**_JSON_HEADERS, "X-Chunked-Output": "1"})


def error_response(err: RpcError) -> web.Response:
    """kubo's error JSON with the error's HTTP status."""
    return web.Response(body=err.body(), status=err.status, headers={"Content-Type": "application/json"})


def text_error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """A plain-text error as Go's ``http.Error`` writes it (go-ipfs-cmds: 403, 404, 405)."""
    return web.Response(
        body=text.encode() + b"\n",
        status=status,
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff", **(headers or {})},
    )


class _ThreadFeed:
    """Items from a generator running in a worker thread to the event loop, at most ``limit`` bytes ahead."""

    _END = object()

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._cond = threading.Condition()
        self._items: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._cancelled = False
        self._ready = asyncio.Event()

    def run(self, gen: Iterator[bytes]) -> None:
        """Thread side: pull every item of ``gen`` into the buffer (blocks while it is full)."""
        try:
            for item in gen:
                with self._cond:
                    while self._size >= self._limit and not self._cancelled:
                        self._cond.wait()
                    if self._cancelled:
                        return
                    self._items.append(item)
                    self._size += len(item)
                self._loop.call_soon_threadsafe(self._ready.set)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop side
            with self._cond:
                self._error = exc
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()
            with self._cond:
                self._done = True
            self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self) -> list[bytes] | None:
        """Loop side: every buffered item (waiting for at least one); None at the end; raises the generator's error."""
        while True:
            with self._cond:
                if self._items:
                    out = list(self._items)
                    self._items.clear()
                    self._size = 0
                    self._cond.notify_all()
                    return out
                if self._done:
                    if self._error is not None:
                        raise self._error
                    return None
                self._ready.clear()
            await self._ready.wait()

    def cancel(self) -> None:
        """The client went away: the generator stops at its next item."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()


async def stream_generator(
    request: web.Request,
    executor: Any,
    gen: Iterator[bytes],
    *,
    headers: dict[str, str],
    limit: int = STREAM_BUFFER,
) -> web.StreamResponse:
    """Stream the byte items of a blocking generator (run in ``executor``).

    An error raised before the first item propagates (the caller answers it
    as error JSON with its status). An error after the response started
    cannot change the status: the connection is closed before the end of the
    chunked body, so the client sees a truncated response, not a complete one.
    """
    loop = asyncio.get_running_loop()
    feed = _ThreadFeed(loop, limit)
    job = loop.run_in_executor(executor, feed.run, gen)
    resp: web.StreamResponse | None = None
    try:
        first = await feed.take()
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        batch = first
        while batch is not None:
            await resp.write(b"".join(batch))
            try:
                batch = await feed.take()
            except (CoreError, RpcError, OSError, ValueError, LookupError) as exc:
                if request.transport is not None:
                    request.transport.close()
                raise ConnectionResetError(f"stream failed after it started: {exc}") from None
        await resp.write_eof()
        return resp
    finally:
        feed.cancel()
        await asyncio.shield(job)


def chunked_headers(**extra: str) -> dict[str, str]:
    """Headers of an NDJSON stream (``X-Chunked-Output``)."""
    return {**_JSON_HEADERS, "X-Chunked-Output": "1", **extra}


def stream_headers(content_type: str, **extra: str) -> dict[str, str]:
    """Headers of a byte stream (``X-Stream-Output``)."""
    return {
        "Content-Type": content_type,
        "X-Stream-Output": "1",
        "Vary": "Origin",
        "Trailer": "X-Stream-Error",
        **extra,
    }
