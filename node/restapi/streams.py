"""Streamed responses as IPFS Cluster sends them: NDJSON, flushed per item, ``X-Stream-Error`` trailer.

aiohttp writes chunked bodies but no trailers, so :class:`TrailerResponse`
ends the chunked body itself: the last chunk (``0``), the trailer field, and
the blank line. A stream with no item and no error answers 204 with no body;
an error before the first item answers with the error object and its status.
:func:`stream_ndjson` encodes items as it sends them; :func:`stream_ndjson_text`
sends items already written as NDJSON text (``GET /pins``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

TRAILER = "X-Stream-Error"
#: items are written in pieces of about this many bytes (one chunk per item costs more than the item)
FLUSH_BYTES = 64 * 1024


class TrailerResponse(web.StreamResponse):
    """A chunked response whose end carries the ``X-Stream-Error`` trailer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream_error = ""
        self._trailer_sent = False
        self.enable_chunked_encoding()

    async def write_eof(self, data: bytes = b"") -> None:
        """End the body with the trailer (aiohttp's own end would be a bare last chunk)."""
        if not self._trailer_sent and self.prepared:
            self._trailer_sent = True
            if data:
                await self.write(data)
            writer = self._payload_writer
            if writer is not None and writer.chunked:
                error = self.stream_error.replace("\r", " ").replace("\n", " ")
                writer.chunked = False  # the framing below is ours
                await writer.write(f"0\r\n{TRAILER}: {error}\r\n\r\n".encode())
            data = b""
        await super().write_eof(data)


async def stream_ndjson_text(
    request: web.Request,
    chunks: AsyncIterator[bytes],
    *,
    headers: dict[str, str] | None = None,
    to_error: Callable[[BaseException], tuple[int, str] | None],
) -> web.StreamResponse:
    """:func:`stream_ndjson` of items already written as NDJSON text: each chunk is one or
    more whole lines (empty chunks are skipped), sent as they come in pieces of about
    ``FLUSH_BYTES``. Same answers: 204 when there is no line, the error object when the
    stream fails before its first line, the trailer after it."""
    it = chunks.__aiter__()
    try:
        first = b""
        while not first:
            first = await it.__anext__()
    except StopAsyncIteration:
        return web.Response(status=204, headers=headers)
    except Exception as exc:
        mapped = to_error(exc)
        if mapped is None:
            raise
        status, message = mapped
        return web.json_response({"code": status, "message": message}, status=status, headers=headers)
    resp = TrailerResponse(headers={**(headers or {}), "Content-Type": "application/json", "Trailer": TRAILER})
    await resp.prepare(request)
    await resp.write(first)
    buf: list[bytes] = []
    size = 0
    try:
        async for chunk in it:
            buf.append(chunk)
            size += len(chunk)
            if size >= FLUSH_BYTES:
                await resp.write(b"".join(buf))
                buf, size = [], 0
    except Exception as exc:
        mapped = to_error(exc)
        if mapped is None:
            raise
        resp.stream_error = mapped[1]
    if buf:
        await resp.write(b"".join(buf))
    await resp.write_eof()
    return resp


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


async def stream_ndjson(
    request: web.Request,
    items: AsyncIterator[Any],
    *,
    headers: dict[str, str] | None = None,
    to_error: Callable[[BaseException], tuple[int, str] | None],
) -> web.StreamResponse:
    """Send ``items`` as NDJSON; ``to_error(exc)`` maps an exception to (HTTP status, message)
    (None: not ours, re-raised). Errors after the first item go to the trailer. The first
    item is sent at once, so clients see the stream start (see :func:`stream_ndjson_text`)."""

    async def lines() -> AsyncIterator[bytes]:
        async for item in items:
            yield _line(item)

    return await stream_ndjson_text(request, lines(), headers=headers, to_error=to_error)
