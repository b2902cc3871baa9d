"""kubo RPC ``routing/findprovs``, ``routing/findpeer``, ``routing/provide`` and Pinion's ``stats/provide``.

Shapes as kubo: NDJSON of query events (:mod:`node.routing.kubo_shapes`). With
``Routing.Type none`` (or offline) they fail with kubo's 500 error object and a message
saying routing is off.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bitswap.routing.records import PeerIdError, parse_peer_id
from blockstore.cid import multihash_of

from ..kuborpc.options import Options, KuboRpcError, parse_cid_arg
from ..kuborpc.respond import json_response
from .kubo_shapes import FINAL_PEER, PEER_RESPONSE, PROVIDER, query_event
from .errors import RoutingUnavailable

if TYPE_CHECKING:
    from .service import RoutingService

__all__ = ["routing_rpc_routes"]


def _ndjson_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Chunked-Output": "1", "Cache-Control": "no-cache"}


def routing_rpc_routes(routing: RoutingService | None, repo: Any) -> dict[str, Any]:
    """The route handlers, keyed by kubo command path (mounted through ``RpcContext.extra_routes``)."""

    def need() -> RoutingService:
        if routing is None:
            raise KuboRpcError("routing is not available: the daemon runs offline")
        if not routing.active:
            raise KuboRpcError("routing is not available: Routing.Type is none")
        return routing

    async def h_findprovs(request: web.Request, _ctx: Any, o: Options) -> web.StreamResponse:
        cid = parse_cid_arg(o.one_arg("key"))
        n = o.integer("num-providers", 20, minimum=1) or 20
        r = need()
        resp = web.StreamResponse(headers=_ndjson_headers())
        await resp.prepare(request)


        try:
            async with contextlib.aclosing(r.find_providers(cid, min(n, 1000))) as found:
                async for rec in found:
                    await resp.write(json.dumps(query_event(PROVIDER, [rec])).encode() + b"\n")
        except RoutingUnavailable as exc:  # pragma: no cover - need() catches it first
            raise KuboRpcError(str(exc)) from None
        await resp.write_eof()
        return resp

    async def h_findpeer(_request: web.Request, _ctx: Any, o: Options) -> web.StreamResponse:
        text = o.one_arg("peerID")
        try:
            peer = parse_peer_id(text)
        except PeerIdError as exc:
            raise KuboRpcError(f"invalid peer ID {text!r}: {exc}") from None
        rec = await need().find_peer(peer)
        if rec is None:
            raise KuboRpcError("routing: not found")


        body = json.dumps(query_event(FINAL_PEER, [rec])) + "\n"
        return web.Response(body=body.encode(), headers=_ndjson_headers())

    async def h_provide(_request: web.Request, _ctx: Any, o: Options) -> web.StreamResponse:
        cids = [parse_cid_arg(a) for a in o.some_args("key")]
        o.boolean("recursive", False)
        r = need()
        missing = [c for c in cids if not repo.store.has(c)]
        if missing:
            from blockstore.cid import cid_to_str

            raise KuboRpcError(f"block was not found locally (offline): {cid_to_str(missing[0])}")
        try:
            result = await r.provide_now([multihash_of(c) for c in cids])
        except RoutingUnavailable as exc:
            raise KuboRpcError(str(exc)) from None
        if result.keys < len(cids):
            raise KuboRpcError(f"failed to provide: {len(cids) - result.keys} of {len(cids)} keys reached no DHT server")


        extra = f"provided {result.keys} keys to {result.peers} peers"
        body = json.dumps(query_event(PEER_RESPONSE, extra=extra)) + "\n"
        return web.Response(body=body.encode(), headers=_ndjson_headers())

    async def h_stats_provide(_request: web.Request, _ctx: Any, _o: Options) -> web.StreamResponse:
        r = need()
        stats = r.provide_stats()
        if stats is None:
            raise KuboRpcError(f"nothing is provided: Routing.Type {r.settings.routing_type} has no DHT")
        return json_response(stats.to_json())

    return {
        "routing/findprovs": h_findprovs,
        "routing/findpeer": h_findpeer,
        "routing/provide": h_provide,
        "stats/provide": h_stats_provide,
    }
