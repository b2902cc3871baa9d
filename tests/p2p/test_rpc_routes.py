"""swarm/connect, swarm/peers, swarm/disconnect and id over a real RPC server and two P2PServices."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from node.p2p.identity import generate_identity
from node.p2p.rpc_routes import swarm_routes
from node.p2p.service import P2PService, P2PSettings
from node.rpc.app import RpcContext, make_rpc_app

from .conftest import LOOPBACK


def _service() -> P2PService:
    return P2PService(P2PSettings(swarm_privkey=generate_identity()[1], swarm_addrs=(LOOPBACK,)))


def test_swarm_rpc_commands() -> None:
    async def main() -> None:
        async with _service() as a, _service() as b:
            cfg = {"Identity": {"PeerID": b.swarm.peer_id, "PrivKey": b.settings.swarm_privkey}}
            ctx = RpcContext(core=None, config=cfg, peer_info=b.peer_info, extra_routes=swarm_routes(b))  # type: ignore[arg-type]
            runner = web.AppRunner(make_rpc_app(ctx))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            base = f"http://127.0.0.1:{port}/api/v0/"
            target = (await a.id())["Addresses"][0]
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(base + "swarm/peers") as r:
                        assert r.status == 200 and (await r.json()) == {"Peers": None}
                    async with http.post(base + "swarm/connect", params={"arg": target}) as r:
                        assert r.status == 200
                        assert await r.json() == {"Strings": [f"connect {a.swarm.peer_id} success"]}
                    async with http.post(base + "swarm/peers") as r:
                        peers = (await r.json())["Peers"]
                        assert [p["Peer"] for p in peers] == [a.swarm.peer_id]
                        assert peers[0]["Addr"] == target.split("/p2p/")[0]
                    async with http.post(base + "id") as r:
                        ident = await r.json()
                        assert ident["ID"] == b.swarm.peer_id
                        assert "/ipfs/ping/1.0.0" in ident["Protocols"]
                        assert ident["Addresses"] and ident["Addresses"][0].endswith(b.swarm.peer_id)
                    async with http.post(base + "swarm/connect", params={"arg": "/ip4/127.0.0.1/tcp/1"}) as r:
                        assert r.status == 500
                        assert "no /p2p/" in (await r.json())["Message"]
                    async with http.post(base + "swarm/connect") as r:
                        assert r.status == 400
                    async with http.post(base + "swarm/disconnect", params={"arg": target}) as r:
                        assert (await r.json()) == {"Strings": [f"disconnect {a.swarm.peer_id} success"]}
                    async with http.post(base + "swarm/peers") as r:
                        assert (await r.json()) == {"Peers": None}
            finally:
                await runner.cleanup()

    asyncio.run(main())
