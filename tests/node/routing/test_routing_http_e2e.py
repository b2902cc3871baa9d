"""Delegated routing, ``/routing/v1`` serving and HTTP retrieval with real daemons (issue 16), on loopback.

- H (Routing.Type none, ``Gateway.ExposeRoutingAPI``) holds a file; its ``/routing/v1`` answers
  JSON and NDJSON in the spec's shapes from its own blocks.
- Two delegated routers run in this process: one hangs, the other answers that the CID is at
  a lying trustless gateway (every block it sends is wrong) and at H's gateway, both
  ``transport-ipfs-gateway-http``.
- F (Routing.Type delegated, both routers) pins the CID with no libp2p connection to anyone:
  the hanging router only costs its own timeout, the lying gateway's block is rejected, the
  DAG comes from H's gateway over HTTP, verified; the bytes match.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any


import pytest
from aiohttp import web

from bitswap.routing.records import PeerRecord, encode_json_answer
from blockstore.cid import cid_from_str

from tests.bitswap.routing.http_helpers import ed25519_peer


class _Servers:
    """aiohttp apps served from a thread with its own loop (the daemons are other processes)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def serve(self, app: web.Application) -> str:
        async def start() -> str:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            return f"http://127.0.0.1:{runner.addresses[0][1]}"

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)

    def close(self) -> None:
        async def stop() -> None:
            for r in self.runners:
                await r.cleanup()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:  # the hanging router's handlers
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def servers() -> Iterator[_Servers]:
    s = _Servers()
    yield s
    s.close()


def _http_addr(url: str) -> str:
    host, port = url.removeprefix("http://").split(":")
    return f"/ip4/{host}/tcp/{port}/http"


def _get(url: str, accept: str = "application/json") -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_delegated_routing_and_http_retrieval(make_node: Any, servers: _Servers, tmp_path: Any) -> None:
    holder = make_node("holder")
    holder.cli("config", "set", "Gateway.ExposeRoutingAPI", "true")
    holder.start()
    data = os.urandom(700_000)
    (tmp_path / "f.bin").write_bytes(data)
    cid = holder.cli("add", "-Q", str(tmp_path / "f.bin")).stdout.decode().strip()
    gw = holder.url("gateway")

    # our /routing/v1: JSON, NDJSON, an absent CID (200, empty), a bad CID (400)
    status, ctype, body = _get(f"{gw}/routing/v1/providers/{cid}")
    assert status == 200 and ctype.startswith("application/json")
    provs = json.loads(body)["Providers"]
    assert provs and provs[0]["Schema"] == "peer" and provs[0]["ID"] == holder.endpoints["peer_id"]
    assert provs[0]["Protocols"] == ["transport-bitswap"] and provs[0]["Addrs"]
    status, ctype, body = _get(f"{gw}/routing/v1/providers/{cid}", "application/x-ndjson")
    assert status == 200 and ctype.startswith("application/x-ndjson")
    lines = [json.loads(x) for x in body.splitlines() if x.strip()]
    assert [x["ID"] for x in lines] == [holder.endpoints["peer_id"]]
    absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    status, _ctype, body = _get(f"{gw}/routing/v1/providers/{absent}")
    assert status == 200 and json.loads(body)["Providers"] == []
    assert _get(f"{gw}/routing/v1/providers/not-a-cid")[0] == 400

    # a lying trustless gateway and two routers (one hangs)
    lies: list[str] = []

    async def liar(request: web.Request) -> web.Response:
        lies.append(request.path_qs)
        return web.Response(body=os.urandom(1024), content_type="application/vnd.ipld.raw")

    liar_app = web.Application()
    liar_app.router.add_get("/ipfs/{tail:.*}", liar)
    liar_url = servers.serve(liar_app)

    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    hang_app = web.Application()
    hang_app.router.add_get("/routing/v1/{tail:.*}", hang)
    hang_url = servers.serve(hang_app)

    http = ("transport-ipfs-gateway-http",)
    records = [
        PeerRecord(ed25519_peer(b"liar"), (_http_addr(liar_url),), http),
        PeerRecord(ed25519_peer(b"holder-gw"), (_http_addr(gw),), http),
    ]
    asked: list[str] = []

    async def providers(request: web.Request) -> web.Response:
        asked.append(request.match_info["cid"])
        cid_from_str(request.match_info["cid"])
        return web.Response(body=encode_json_answer("Providers", records), content_type="application/json")

    good_app = web.Application()
    good_app.router.add_get("/routing/v1/providers/{cid}", providers)
    good_url = servers.serve(good_app)

    fetcher = make_node("fetcher")
    fetcher.cli("config", "set", "Routing.Type", "delegated")
    fetcher.cli("config", "set", "--json", "Routing.DelegatedRouters", json.dumps([hang_url, good_url]))
    fetcher.start()
    t0 = time.monotonic()
    fetcher.cli("pin", "add", cid, timeout=180)
    took = time.monotonic() - t0
    assert fetcher.cli("cat", cid).stdout == data
    assert asked, "the answering router was never asked"
    assert lies, "the lying gateway was never tried"
    assert fetcher.cli("swarm", "peers").stdout.strip() == b""  # HTTP only: no libp2p connection
    # the hanging router costs only its own timeout (15 s), not the fetch
    assert took < 60, took
    found = fetcher.cli("routing", "findprovs", "-n", "2", cid, timeout=60).stdout.decode().split()
    assert sorted(found) == sorted(r.id_str for r in records)
    # kubo RPC routing/findprovs: NDJSON query events of type 4 (provider)
    req = urllib.request.Request(f"{fetcher.url('rpc')}/api/v0/routing/findprovs?arg={cid}&num-providers=1", method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        events = [json.loads(x) for x in resp.read().splitlines() if x.strip()]
    assert len(events) == 1
    assert set(events[0]) == {"Extra", "ID", "Responses", "Type"} and events[0]["Type"] == 4
    assert events[0]["Responses"][0]["ID"] in found and events[0]["Responses"][0]["Addrs"]
