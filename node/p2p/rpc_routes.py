"""kubo RPC commands of the swarm host: ``swarm/connect``, ``swarm/peers``, ``swarm/disconnect``.

``swarm_routes(service)`` gives the handlers to put in ``RpcContext.extra_routes``;
``id`` is answered by ``node.rpc.app`` from ``RpcContext.peer_info = service.peer_info``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.rpc.app import Handler, RpcContext, json_response
from node.rpc.options import CODE_NORMAL, Options, RpcError

from .hosts import P2PError
from .service import P2PService


def swarm_routes(service: P2PService) -> dict[str, Handler]:
    """The swarm commands answered from ``service`` (keys are paths under /api/v0/)."""

    async def h_connect(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
        """``swarm/connect``: dial each ``arg`` multiaddr (``/…/p2p/<id>``)."""
        args = o.args()
        if not args:
            raise RpcError("argument 'address' is required")
        out = []
        for addr in args:
            try:
                peer = await service.connect(addr)
            except P2PError as exc:
                raise RpcError(f"connect {addr} failure: {exc}", CODE_NORMAL) from None
            out.append(f"connect {peer} success")
        return json_response({"Strings": out})

    async def h_peers(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
        """``swarm/peers``: connected peers ``{"Peers": [{"Addr", "Peer"}]}``."""
        peers: list[dict[str, Any]] = await service.peers()
        return json_response({"Peers": peers or None})

    async def h_disconnect(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
        """``swarm/disconnect``: close connections to each ``arg`` (``/…/p2p/<id>`` or a peer ID)."""
        args = o.args()
        if not args:
            raise RpcError("argument 'address' is required")
        out = []
        for arg in args:
            peer = arg.rsplit("/p2p/", 1)[-1]
            try:
                await service.disconnect(peer)
            except P2PError as exc:
                raise RpcError(f"disconnect {arg} failure: {exc}", CODE_NORMAL) from None
            out.append(f"disconnect {peer} success")
        return json_response({"Strings": out})

    return {"swarm/connect": h_connect, "swarm/peers": h_peers, "swarm/disconnect": h_disconnect}
