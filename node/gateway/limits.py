"""The gateway's one middleware: request limits (URL length 414, concurrent requests per client 429) and metrics.

A public gateway must not let one client hold every worker: each client
address may have at most ``per_client`` requests in flight; the next gets
429 with ``Retry-After``. URLs longer than ``max_url`` bytes get 414 before
any parsing. (Other limits are elsewhere: request line and header size in the
daemon's server, missing blocks time out after ``Gateway.FetchTimeout`` with
504, and the gateway answers only GET/HEAD/OPTIONS: 405 otherwise.)

Every request, refused ones included, is then reported to the node's metrics
(status, body bytes, seconds). Limits and metrics are one middleware, so a
request passes one extra coroutine frame, not one per concern.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def gateway_middleware(*, max_url: int, per_client: int, metrics: Any = None) -> Any:
    """An aiohttp middleware enforcing the URL length and the per-client concurrency, and reporting
    each request to ``metrics`` (an object with ``observe_request(status, bytes_out, seconds)``; None: not reported)."""
    in_flight: dict[str, int] = {}
    clock = time.perf_counter

    @web.middleware
    async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = clock()
        client = request.remote or "?"
        held = in_flight.get(client, 0)
        if len(request.raw_path) > max_url:
            resp: web.StreamResponse = web.Response(status=414, text=f"URL longer than {max_url} bytes\n")
        elif held >= per_client:
            resp = web.Response(
                status=429, text=f"more than {per_client} concurrent requests from {client}\n", headers={"Retry-After": "1"}
            )
        else:
            in_flight[client] = held + 1
            try:
                resp = await handler(request)
            finally:
                left = in_flight[client] - 1
                if left:
                    in_flight[client] = left
                else:
                    del in_flight[client]
        if metrics is not None:
            # streamed responses are already sent; small ones are sent by aiohttp after this returns
            sent = resp.body_length if resp.prepared else (resp.content_length or 0)
            metrics.observe_request(resp.status, sent, clock() - start)
        return resp

    return gateway
