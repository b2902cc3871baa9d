"""The ``/routing/v1`` HTTP server routes (aiohttp), for the gateway port (``Gateway.ExposeRoutingAPI``).

Spec: https://specs.ipfs.tech/routing/http-routing-v1/ . The gateway mounts the routes::

    app.add_routes(routing_v1_routes(find_providers, find_peer))

``find_providers(cid: bytes, limit: int)`` and ``find_peer(peer_id: bytes, limit: int)`` are
async iterators of :class:`records.PeerRecord` supplied by the node (our own blocks, then the
DHT: :func:`providers_with_self` builds the first one from a ``has_block`` check and the DHT's
lookup). What the routes do:

- ``GET /routing/v1/providers/{cid}`` and ``GET /routing/v1/peers/{peer-id}``: JSON
  (``{"Providers": [...]}`` / ``{"Peers": [...]}``, at most ``json_limit`` = 100 records, the
  spec's SHOULD), or NDJSON streamed record by record when the request's Accept names
  ``application/x-ndjson`` (at most ``stream_limit`` records);
- nothing found: 200 with an empty list (IPIP-513; never 404); a malformed CID or peer ID: 400
  with a one-line message;
- ``Cache-Control: public, max-age=300`` with results, ``max-age=15`` without, both with
  ``stale-while-revalidate``/``stale-if-error`` of 48 h (the DHT's provider record lifetime),
  as boxo; ``Last-Modified``, ``Vary: Accept``, CORS for any origin (the spec asks for it:
  everything served is public and read-only) and OPTIONS preflights;
- IPIP-484 ``filter-addrs`` / ``filter-protocols`` query parameters;
- each lookup is bounded by ``timeout`` (30 s, boxo's routing timeout): what was found by then
  is answered; at most ``max_lookups`` lookups run at once, further requests get 429 with
  ``Retry-After`` (a DHT walk per request would otherwise let a flood of clients amplify);
- ``PUT`` and the IPNS routes: 501; any other path under ``/routing/v1``: 400 (the spec's codes).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from blockstore.cid import CidError, cid_from_str

from .records import (
    JSON_TYPE,
    NDJSON_TYPE,
    PeerIdError,
    PeerRecord,
    encode_json_answer,
    encode_ndjson_line,
    filter_record,
    parse_filter,
    parse_peer_id,
)

__all__ = ["FindRecords", "routing_v1_routes", "providers_with_self", "CACHE_WITH_RESULTS", "CACHE_WITHOUT_RESULTS"]

log = logging.getLogger(__name__)

#: ``(key, limit) -> async iterator of records``: key is a binary CID (providers) or a peer ID multihash (peers)
FindRecords = Callable[[bytes, int], AsyncIterator[PeerRecord]]

#: boxo's rule of thumb: results cached 5 min, no results 15 s, stale up to the DHT's 48 h record lifetime
_STALE = 48 * 3600
CACHE_WITH_RESULTS = f"public, max-age=300, stale-while-revalidate={_STALE}, stale-if-error={_STALE}"
CACHE_WITHOUT_RESULTS = f"public, max-age=15, stale-while-revalidate={_STALE}, stale-if-error={_STALE}"
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Content-Type, User-Agent",
}
_KNOWN = re.compile(r"^/routing/v1/(providers|peers|ipns)(/[^/]*)?$")


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers={**_CORS, **(headers or {})})


def _wants_ndjson(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip().lower() == NDJSON_TYPE for part in accept.split(","))


def _common_headers(content_type: str, found: bool) -> dict[str, str]:
    return {
        **_CORS,
        "Content-Type": content_type,
        "Cache-Control": CACHE_WITH_RESULTS if found else CACHE_WITHOUT_RESULTS,
        "Last-Modified": email.utils.formatdate(usegmt=True),
        "Vary": "Accept",
    }


class _Lookups:
    """Runs record lookups for the routes: filters, limits, the timeout and the concurrency cap."""

    def __init__(self, json_limit: int, stream_limit: int, timeout: float, max_lookups: int) -> None:
        self.json_limit = json_limit
        self.stream_limit = stream_limit
        self.timeout = timeout
        self.max_lookups = max_lookups
        self.running = 0

    async def answer(self, request: web.Request, find: FindRecords, key: bytes, array: str) -> web.StreamResponse:
        if self.running >= self.max_lookups:
            return _text(429, f"more than {self.max_lookups} routing lookups in progress", {"Retry-After": "1"})
        filter_addrs = parse_filter(request.query.get("filter-addrs"))
        filter_protocols = parse_filter(request.query.get("filter-protocols"))
        stream = _wants_ndjson(request)
        limit = self.stream_limit if stream else self.json_limit
        self.running += 1
        try:
            records = self._records(find, key, limit, filter_addrs, filter_protocols)
            async with contextlib.aclosing(records):
                if stream:
                    return await self._ndjson(request, records)
                return await self._json(records, array)
        finally:
            self.running -= 1

    async def _records(
        self, find: FindRecords, key: bytes, limit: int, filter_addrs: list[str], filter_protocols: list[str]
    ) -> AsyncIterator[PeerRecord]:
        """The lookup's records after the filters, at most ``limit``, until ``timeout``; a failing lookup just ends."""
        sent = 0
        seen: set[tuple[bytes, tuple[str, ...], tuple[str, ...]]] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        source = find(key, limit)
        try:
            while sent < limit:
                left = deadline - loop.time()
                if left <= 0:
                    return
                try:
                    rec = await asyncio.wait_for(anext(source), left)
                except (StopAsyncIteration, asyncio.TimeoutError):
                    return
                except Exception as exc:  # the lookup failed: answer what was found
                    log.info("routing lookup failed: %s", exc)
                    return
                kept = filter_record(rec, filter_addrs, filter_protocols)
                if kept is None:
                    continue
                ident = (kept.peer_id, kept.addrs, kept.protocols)
                if ident in seen:
                    continue
                seen.add(ident)
                sent += 1
                yield kept
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _json(self, records: AsyncIterator[PeerRecord], array: str) -> web.Response:
        found = [rec async for rec in records]
        return web.Response(body=encode_json_answer(array, found), headers=_common_headers(JSON_TYPE, bool(found)))

    async def _ndjson(self, request: web.Request, records: AsyncIterator[PeerRecord]) -> web.StreamResponse:
        # the first record decides Cache-Control, so the headers wait for it (as boxo)
        first = await anext(records, None)
        resp = web.StreamResponse(status=200, headers=_common_headers(NDJSON_TYPE, first is not None))
        await resp.prepare(request)
        if first is not None:
            await resp.write(encode_ndjson_line(first))
            async for rec in records:
                await resp.write(encode_ndjson_line(rec))
        await resp.write_eof()
        return resp


def routing_v1_routes(
    find_providers: FindRecords,
    find_peer: FindRecords,
    *,
    json_limit: int = 100,
    stream_limit: int = 1000,
    timeout: float = 30.0,
    max_lookups: int = 64,
) -> list[web.AbstractRouteDef]:
    """The route table of ``/routing/v1`` (see the module docstring); add it to the gateway app."""
    lookups = _Lookups(json_limit, stream_limit, timeout, max_lookups)

    async def providers(request: web.Request) -> web.StreamResponse:
        text = request.match_info["cid"]
        try:
            cid = cid_from_str(text)
        except CidError as exc:
            return _text(400, f"invalid CID: {exc}")
        return await lookups.answer(request, find_providers, cid, "Providers")

    async def peers(request: web.Request) -> web.StreamResponse:
        text = request.match_info["peer_id"]
        try:
            peer = parse_peer_id(text)
        except PeerIdError as exc:
            return _text(400, f"invalid peer ID: {exc}")
        return await lookups.answer(request, find_peer, peer, "Peers")

    async def preflight(request: web.Request) -> web.Response:
        return web.Response(status=204, headers={**_CORS, "Access-Control-Max-Age": "86400"})

    async def other(request: web.Request) -> web.Response:
        if _KNOWN.match(request.path):
            return _text(501, f"{request.method} {request.path} is not implemented by this server")
        return _text(400, f"unknown path {request.path[:200]}")

    return [
        web.get("/routing/v1/providers/{cid}", providers, allow_head=False),
        web.get("/routing/v1/peers/{peer_id}", peers, allow_head=False),
        web.options("/routing/v1/providers/{cid}", preflight),
        web.options("/routing/v1/peers/{peer_id}", preflight),
        web.route("*", "/routing/v1/{tail:.*}", other),
    ]


def providers_with_self(
    has_block: Callable[[bytes], bool | Awaitable[bool]],
    self_record: Callable[[], PeerRecord],
    others: FindRecords | None = None,
) -> FindRecords:
    """A ``find_providers`` that answers this node first when it holds the block, then ``others`` (the DHT).

    ``has_block(cid)`` may be sync (a block store's ``has``) or async; ``self_record()`` gives
    this node's current record (peer ID, announced addresses, protocols).
    """

    async def find(cid: bytes, limit: int) -> AsyncIterator[PeerRecord]:
        held: Any = has_block(cid)
        if asyncio.iscoroutine(held):
            held = await held
        if held:
            yield self_record()
        if others is not None:
            async with contextlib.aclosing(others(cid, limit)) as more:
                async for rec in more:
                    yield rec

    return find
