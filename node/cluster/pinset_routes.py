"""Low-level ``/api/v0/pinset/*`` routes on the kubo RPC port: the CRDT pinset without allocation.

``pinset/add?arg=CID[&name=N]`` writes a pin with no allocations (every peer
pins it), ``pinset/rm?arg=CID`` removes one, ``pinset/ls`` lists the pinset
(NDJSON of IPFS Cluster pin objects, one per line) and ``pinset/peers`` the
cluster peers subscribed to the pinset topic. They reach the replicated
state directly, below the cluster peer's allocation and queue admission (the
IPFS Cluster REST API, ``node/restapi``, is the user-facing way to pin): the
multi-daemon pinset tests drive convergence through them. The kubo RPC port
is the node's admin API, so these routes have its access rules.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from blockstore.cid import cid_to_str
from cluster.pin import Pin

from ..kuborpc.options import Options, KuboRpcError, parse_cid_arg
from .pinset import PAGE, PinsetService


def rpc_routes(service: PinsetService) -> dict[str, Any]:
    """The ``pinset/{add,rm,ls,peers}`` handlers (see module docstring), for the kubo RPC app's extra routes."""

    async def h_add(_request: web.Request, _ctx: Any, opts: Options) -> web.StreamResponse:
        cid = parse_cid_arg(opts.one_arg("cid"))
        pin = Pin(cid=cid, name=opts.string("name", "") or "", timestamp=time.time_ns())
        await service.add(pin)
        return web.json_response(pin.to_json())

    async def h_rm(_request: web.Request, _ctx: Any, opts: Options) -> web.StreamResponse:
        cid = parse_cid_arg(opts.one_arg("cid"))
        if not await service.remove(cid):
            raise KuboRpcError(f"{cid_to_str(cid)} is not in the cluster pinset")
        return web.json_response({"cid": cid_to_str(cid)})

    async def h_ls(request: web.Request, _ctx: Any, _opts: Options) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        start: bytes | None = None
        while True:
            page = await service.in_thread(service.page, start)
            for _key, value in page[:PAGE]:
                line = json.dumps(Pin.from_cbor(value).to_json(), separators=(",", ":")) + "\n"
                await resp.write(line.encode())
            if len(page) <= PAGE:
                break
            start = page[PAGE][0]
        await resp.write_eof()
        return resp

    async def h_peers(_request: web.Request, _ctx: Any, _opts: Options) -> web.StreamResponse:
        return web.json_response({"Peers": await service.topic_peers()})

    return {"pinset/add": h_add, "pinset/rm": h_rm, "pinset/ls": h_ls, "pinset/peers": h_peers}
