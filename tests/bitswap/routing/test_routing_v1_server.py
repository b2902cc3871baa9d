"""Our /routing/v1 server routes: the spec's JSON and NDJSON shapes, status codes, headers, limits; our client against it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from bitswap.routing.delegated import DelegatedRouting
from bitswap.routing.records import PeerRecord, parse_peer_id
from bitswap.routing.routing_v1_server import CACHE_WITH_RESULTS, CACHE_WITHOUT_RESULTS, providers_with_self, routing_v1_routes
from blockstore.cid import RAW, cid_for, cid_to_str
from blockstore.db import open_db
from blockstore.store import BlockStore

from .http_helpers import ed25519_peer, record, serve

HELD = cid_for(b"held block", RAW)
ABSENT = cid_for(b"absent block", RAW)
MANY = cid_for(b"popular block", RAW)
SELF = PeerRecord(ed25519_peer(b"self"), ("/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/8080/http"), ("transport-bitswap", "transport-ipfs-gateway-http"))
PEER = record(42)
LIBP2P_KEY_PREFIX = b"\x01\x72"  # CIDv1, libp2p-key


def make_app(store: BlockStore, *, slow: bool = False) -> web.Application:
    async def dht(cid: bytes, limit: int) -> AsyncIterator[PeerRecord]:
        if cid == MANY:
            for i in range(1000):
                yield record(i, protocols=("transport-bitswap",) if i % 2 else ("transport-ipfs-gateway-http",))
        if slow:
            await asyncio.sleep(3600)

    async def find_peer(peer: bytes, limit: int) -> AsyncIterator[PeerRecord]:
        if peer == PEER.peer_id:
            yield PEER

    app = web.Application()
    app.add_routes(
        routing_v1_routes(providers_with_self(store.has, lambda: SELF, dht), find_peer, stream_limit=500, timeout=1.0 if slow else 30.0)
    )
    return app


async def get(session: aiohttp.ClientSession, url: str, accept: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept} if accept else {}
    async with session.request(method, url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def test_providers_json_and_ndjson_shapes(tmp_path: Path) -> None:
    store = BlockStore(open_db(tmp_path / "db"))
    store.put(HELD, b"held block")

    async def main() -> None:
        async with serve(make_app(store)) as base, aiohttp.ClientSession() as s:
            status, headers, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(HELD)}")
            assert status == 200
            assert headers["Content-Type"].startswith("application/json")
            assert headers["Cache-Control"] == CACHE_WITH_RESULTS
            assert headers["Vary"] == "Accept" and "Last-Modified" in headers
            assert headers["Access-Control-Allow-Origin"] == "*"
            doc = json.loads(body)
            assert doc == {"Providers": [{"Schema": "peer", "ID": SELF.id_str, "Addrs": list(SELF.addrs), "Protocols": list(SELF.protocols)}]}
            assert parse_peer_id(doc["Providers"][0]["ID"]) == SELF.peer_id

            # absent: 200 with an empty list (IPIP-513), cached briefly
            status, headers, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(ABSENT)}")
            assert (status, json.loads(body)) == (200, {"Providers": []})
            assert headers["Cache-Control"] == CACHE_WITHOUT_RESULTS
            status, headers, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(ABSENT)}", "application/x-ndjson")
            assert (status, body) == (200, b"")
            assert headers["Content-Type"] == "application/x-ndjson" and headers["Cache-Control"] == CACHE_WITHOUT_RESULTS

            # many: JSON capped at 100 (the spec's SHOULD), NDJSON streams up to its own cap, one object per line
            status, _, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(MANY)}")
            assert len(json.loads(body)["Providers"]) == 100
            status, headers, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(MANY)}", "application/x-ndjson")
            lines = body.decode().splitlines()
            assert status == 200 and headers["Cache-Control"] == CACHE_WITH_RESULTS and len(lines) == 500
            assert all(set(json.loads(line)) == {"Schema", "ID", "Addrs", "Protocols"} for line in lines)
            # Accept with several types and parameters still picks NDJSON; none picks JSON
            _, headers, _ = await get(s, f"{base}/routing/v1/providers/{cid_to_str(HELD)}", "application/json;q=0.5, application/x-ndjson")
            assert headers["Content-Type"] == "application/x-ndjson"

            # IPIP-484 filters on the server
            _, _, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(MANY)}?filter-protocols=transport-ipfs-gateway-http")
            provs = json.loads(body)["Providers"]
            assert provs and all(p["Protocols"] == ["transport-ipfs-gateway-http"] for p in provs)
            _, _, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(HELD)}?filter-addrs=http")
            assert json.loads(body)["Providers"][0]["Addrs"] == ["/ip4/127.0.0.1/tcp/8080/http"]

    try:
        asyncio.run(main())
    finally:
        store.db.close()


def test_peers_and_errors(tmp_path: Path) -> None:
    store = BlockStore(open_db(tmp_path / "db"))

    async def main() -> None:
        async with serve(make_app(store)) as base, aiohttp.ClientSession() as s:
            status, headers, body = await get(s, f"{base}/routing/v1/peers/{PEER.id_str}")
            assert status == 200 and json.loads(body) == {"Peers": [PEER.to_json()]}
            # the CIDv1 (libp2p-key) form of the same peer
            as_cid = cid_to_str(LIBP2P_KEY_PREFIX + PEER.peer_id)
            status, _, body = await get(s, f"{base}/routing/v1/peers/{as_cid}", "application/x-ndjson")
            assert status == 200 and [json.loads(x) for x in body.splitlines()] == [PEER.to_json()]
            status, _, body = await get(s, f"{base}/routing/v1/peers/{record(43).id_str}")
            assert (status, json.loads(body)) == (200, {"Peers": []})
            for path, code in (
                ("/routing/v1/providers/not-a-cid", 400),
                ("/routing/v1/providers/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd", 400),
                ("/routing/v1/peers/12D3KooWnope", 400),
                ("/routing/v1/bogus", 400),
                ("/routing/v1/ipns/k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8", 501),
            ):
                status, headers, body = await get(s, base + path)
                assert status == code, (path, status, body)
                assert body.strip() and b"\n" not in body.strip()  # one line of explanation
            status, _, _ = await get(s, f"{base}/routing/v1/providers", method="PUT")
            assert status == 501
            status, headers, _ = await get(s, f"{base}/routing/v1/providers/{cid_to_str(HELD)}", method="OPTIONS")
            assert status == 204 and "GET" in headers["Access-Control-Allow-Methods"] and headers["Access-Control-Allow-Origin"] == "*"

    try:
        asyncio.run(main())
    finally:
        store.db.close()


def test_slow_lookup_answers_what_it_found_by_the_timeout_and_lookups_are_capped(tmp_path: Path) -> None:
    store = BlockStore(open_db(tmp_path / "db"))
    store.put(HELD, b"held block")

    async def main() -> None:
        app = web.Application()

        async def dht(cid: bytes, limit: int) -> AsyncIterator[PeerRecord]:
            yield PEER
            await asyncio.sleep(3600)

        entered: list[bytes] = []

        async def nothing(key: bytes, limit: int) -> AsyncIterator[PeerRecord]:
            entered.append(key)
            await asyncio.sleep(3600)
            yield PEER

        app.add_routes(routing_v1_routes(providers_with_self(store.has, lambda: SELF, dht), nothing, timeout=1.0, max_lookups=2))
        async with serve(app) as base, aiohttp.ClientSession() as s:
            status, _, body = await get(s, f"{base}/routing/v1/providers/{cid_to_str(HELD)}")
            assert status == 200 and [p["ID"] for p in json.loads(body)["Providers"]] == [SELF.id_str, PEER.id_str]
            # two lookups hang in progress: the third request is refused with 429 + Retry-After
            url = f"{base}/routing/v1/peers/{PEER.id_str}"
            hung = [asyncio.ensure_future(get(s, url)) for _ in range(2)]
            for _ in range(3000):  # until both lookups run (polled, generous under load)
                if len(entered) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(entered) == 2
            status, headers, _ = await get(s, url)
            assert status == 429 and headers["Retry-After"] == "1"
            results = await asyncio.gather(*hung)
            assert all(r[0] == 200 and json.loads(r[2]) == {"Peers": []} for r in results)

    try:
        asyncio.run(main())
    finally:
        store.db.close()


def test_our_client_reads_our_server(tmp_path: Path) -> None:
    store = BlockStore(open_db(tmp_path / "db"))
    store.put(HELD, b"held block")

    async def main() -> None:
        async with serve(make_app(store)) as base:
            routing = DelegatedRouting([base], timeout=10)
            try:
                async with contextlib.aclosing(routing.find_providers(HELD)) as found:
                    assert [r async for r in found] == [SELF]
                async with contextlib.aclosing(routing.find_providers(MANY)) as found:
                    got = [r async for r in found]
                assert len(got) == 500  # NDJSON (the client asks for it first), the server's stream cap
                assert await routing.find_peer(PEER.peer_id) == PEER
            finally:
                await routing.close()

    try:
        asyncio.run(main())
    finally:
        store.db.close()


def test_routes_mounted_on_the_real_gateway_app(tmp_path: Path) -> None:
    """How the gateway will expose them (Gateway.ExposeRoutingAPI): added to its app, beside /ipfs."""
    from node.gateway import StoreBlockSource, make_gateway_app
    from tests.node.gateway.helpers import LiveGateway

    store = BlockStore(open_db(tmp_path / "db"))
    store.put(HELD, b"held block")
    app = make_gateway_app(StoreBlockSource(store))
    app.add_routes(routing_v1_routes(providers_with_self(store.has, lambda: SELF), lambda key, limit: _none()))
    gw = LiveGateway(app).start()
    try:
        r = gw.request(f"/routing/v1/providers/{cid_to_str(HELD)}")
        assert r.status == 200 and json.loads(r.body)["Providers"][0]["ID"] == SELF.id_str
        assert r.h("Access-Control-Allow-Origin") == "*" and r.h("Cache-Control") == CACHE_WITH_RESULTS
        r = gw.request(f"/ipfs/{cid_to_str(HELD)}?format=raw")
        assert r.status == 200 and r.body == b"held block"
        r = gw.request("/routing/v1/providers/nope")
        assert r.status == 400
    finally:
        gw.stop()
        store.db.close()


async def _none() -> AsyncIterator[PeerRecord]:
    return
    yield  # an async generator that yields nothing
