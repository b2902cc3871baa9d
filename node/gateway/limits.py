"""Request limits of the gateway: URL length (414) and concurrent requests per client (429).

A public gateway must not let one client hold every worker: each client
address may have at most ``per_client`` requests in flight; the next gets
429 with ``Retry-After``. URLs longer than ``max_url`` bytes get 414 before
any parsing. (Other limits are elsewhere: request line and header size in the
daemon's server, missing blocks time out after ``Gateway.FetchTimeout`` with
504, and the gateway answers only GET/HEAD/OPTIONS: 405 otherwise.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def limits_middleware(*, max_url: int, per_client: int) -> Any:
    """An aiohttp middleware enforcing the URL length and the per-client concurrency."""
    in_flight: dict[str, int] = {}

    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        if len(request.raw_path) > max_url:
            return web.Response(status=414, text=f"URL longer than {max_url} bytes\n")
        client = request.remote or "?"
        if in_flight.get(client, 0) >= per_client:
            return web.Response(
                status=429, text=f"more than {per_client} concurrent requests from {client}\n", headers={"Retry-After": "1"}
            )
        in_flight[client] = in_flight.get(client, 0) + 1
        try:
            return await handler(request)
        finally:
            in_flight[client] -= 1
            if not in_flight[client]:
                del in_flight[client]

    return limits
