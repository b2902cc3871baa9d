"""The aiohttp runner of every Pinion HTTP server: short, own answers to requests aiohttp refuses.

aiohttp parses the request line and headers before any handler or middleware
runs. When a line is too long or the message is malformed it answers 400 with
the parser's message, which quotes the first 100 bytes of the offending line:
the client's own input comes back, and a URL just over the limit gets 400
instead of 414. :class:`ServerRunner` answers those requests itself:

- request line (URL) longer than ``max_line_size``: **414** (RFC 9110 section 15.5.15);
- a header field longer than ``max_field_size``, or too many headers: **431**
  (RFC 6585 section 5);
- any other malformed request: **400**;

with a short message that quotes nothing of the request, in the body format of
the application (:data:`ERROR_RESPONSE`: a function an app sets to make its own
error bodies, e.g. the pinning service's ``{"error": {...}}``; plain text when
unset). The connection is closed after such an answer, as aiohttp does.

A handler whose client closes the connection is cancelled (aiohttp's
``handler_cancellation``, off by default since aiohttp 3.7), as Go's HTTP
server cancels the request context of kubo and IPFS Cluster: a request
waiting for the network (a missing block, a peer's status) stops waiting,
and its bitswap wants are dropped, when its client leaves. Otherwise a client
opening requests and hanging up at once would leave work behind that no
connection limit counts. The handlers are cancellation-safe: an upload is
aborted and rolled back (``node/uploads/drive.py``), work already handed to
a worker thread completes, and the libp2p bridge cancels the trio task of a
cancelled call.

The request line limit and the header field limit must differ (the parser's
``LineTooLong`` carries the limit it hit, which tells which one it was):
:func:`line_limits` picks them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

#: an application's error-body maker: (HTTP status, message) -> response
ErrorResponse = Callable[[int, str], web.Response]
#: where an application keeps its :data:`ErrorResponse` (``app[ERROR_RESPONSE] = fn``)
ERROR_RESPONSE: web.AppKey[ErrorResponse] = web.AppKey("pinion_error_response")
#: longest header field accepted (aiohttp's default)
MAX_FIELD_SIZE = 8190

log = logging.getLogger("pinion.http")


def plain_error(status: int, message: str) -> web.Response:
    """The default error body: one line of text."""
    return web.Response(status=status, text=message + "\n")


def line_limits(max_url: int) -> tuple[int, int]:
    """(max_line_size, max_field_size) for a server whose URLs may be ``max_url`` bytes long.

    The request line limit is above both ``max_url`` (so an application's own URL
    check, e.g. the gateway's ``Gateway.MaxURLLength``, is reached first) and the
    header field limit (so the two can be told apart)."""
    return max(max_url, MAX_FIELD_SIZE) + 1, MAX_FIELD_SIZE


def parser_error(exc: BaseException | None, max_line_size: int) -> tuple[int, str]:
    """The status and message for a request the HTTP parser refused."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else "?"
        if str(limit) == str(max_line_size):
            return 414, f"request URL longer than {limit} bytes"
        return 431, f"a request header field is longer than {limit} bytes"
    if isinstance(exc, BadHttpMessage) and "too many headers" in str(exc.message).lower():
        return 431, "too many request header fields"
    return 400, "malformed HTTP request"


class _Handler(RequestHandler):
    """aiohttp's connection handler with our answers to requests its parser refused."""

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        manager: Any = self._manager
        code, text = parser_error(exc, manager.max_line_size)
        log.debug("refused a malformed request from %s: %s", request.remote, exc)
        resp = manager.error_response(code, text)
        resp.force_close()
        return resp


class _Server(web.Server):
    """aiohttp's server, making :class:`_Handler` connections."""

    error_response: ErrorResponse = staticmethod(plain_error)  # type: ignore[assignment]
    max_line_size: int = 8190

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class ServerRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser-refused requests with 414/431/400, and
    whose handlers are cancelled when their client goes away (see module docstring)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same object, only its connection factory changes
        assert isinstance(server, _Server)
        server.error_response = self.app.get(ERROR_RESPONSE, plain_error)  # type: ignore[assignment]
        server.max_line_size = int(self._kwargs.get("max_line_size", 8190))
        return server
