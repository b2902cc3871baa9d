"""Responses of the kubo RPC as go-ipfs-cmds writes them: one JSON value, NDJSON, byte streams, errors.

go-ipfs-cmds (``http/responseemitter.go``) marks a response by what the
command emits: one value (``cmds.EmitOnce``) gets no marker header, a
channel of values gets ``X-Chunked-Output: 1`` (NDJSON), a byte stream gets
``X-Stream-Output: 1``. Errors are ``{"Message","Code","Type":"error"}`` with
HTTP 500 (400 for code 1).

Streams are produced by blocking generators over LevelDB, pulled in a worker
pool a batch at a time, or by :class:`node.fetching.FetchingCore`'s streams,
which fetch what the store lacks over bitswap on the event loop (no thread
waits for the network). :func:`stream_generator` writes the response as fast
as the client reads it: a slow client makes the stream wait, it neither
buffers the stream in memory nor holds a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from ..errors import CoreError
from ..fetching import pull
from .options import KuboRpcError

_JSON_HEADERS = {"Content-Type": "application/json", "Vary": "Origin", "Trailer": "X-Stream-Error"}


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


def error_response(err: KuboRpcError) -> web.Response:
    """kubo's error JSON with the error's HTTP status."""
    return web.Response(body=err.body(), status=err.status, headers={"Content-Type": "application/json"})


def text_error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """A plain-text error as Go's ``http.Error`` writes it (go-ipfs-cmds: 403, 404, 405)."""
    return web.Response(
        body=text.encode() + b"\n",
        status=status,
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff", **(headers or {})},
    )


async def stream_generator(
    request: web.Request,
    executor: Any,
    chunks: Iterator[bytes] | AsyncIterator[bytes],
    *,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Stream byte chunks: an async iterator (node/fetching.py's streams, which fetch what the
    store lacks on the event loop), or a blocking generator over the store, pulled in
    ``executor`` a batch at a time (:func:`node.fetching.pull`).

    A chunk is asked for only once the one before it is written, so a slow client slows the
    stream instead of filling memory, and between batches no worker thread is held.

    An error raised before the first chunk propagates (the caller answers it as error JSON
    with its status). An error after the response started cannot change the status: the
    connection is closed before the end of the chunked body, so the client sees a truncated
    response, not a complete one.
    """
    stream = chunks if isinstance(chunks, AsyncIterator) else pull(executor, chunks)
    async with _closing(stream):
        it = aiter(stream)
        chunk = await anext(it, _END)
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        while chunk is not _END:
            await resp.write(chunk)  # type: ignore[arg-type]
            try:
                chunk = await anext(it, _END)
            except (CoreError, KuboRpcError, OSError, ValueError, LookupError) as exc:
                if request.transport is not None:
                    request.transport.close()
                raise ConnectionResetError(f"stream failed after it started: {exc}") from None
    await resp.write_eof()
    return resp


_END: Any = object()


@asynccontextmanager
async def _closing(stream: AsyncIterator[bytes]) -> AsyncGenerator[None, None]:
    """Close ``stream`` (an async generator) when the response ends, early or not."""
    try:
        yield
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


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
