"""The delegated routing client against local /routing/v1 servers on loopback (JSON, NDJSON, hangs, floods, garbage)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import pytest
from aiohttp import web

from bitswap.routing.delegated import (
    CID_CONTACT,
    DELEGATED_IPFS_DEV,
    DelegatedRouting,
    default_routers,
    merge_records,
)
from bitswap.routing.records import NDJSON_TYPE, Limits, PeerRecord, encode_json_answer, encode_ndjson_line
from blockstore.cid import RAW, cid_for, cid_to_str, to_v1

from .http_helpers import record, serve

CID = cid_for(b"hello routing", RAW)
CIDV0 = bytes.fromhex("1220") + bytes(range(32))


def router_app(handler: Callable[..., object], seen: list[web.Request] | None = None) -> web.Application:
    """An app answering /routing/v1/providers/{cid} and /routing/v1/peers/{id} with ``handler``."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(request)
        return await handler(request)  # type: ignore[misc]

    app = web.Application()
    app.router.add_get("/routing/v1/providers/{cid}", wrapped)
    app.router.add_get("/routing/v1/peers/{peer}", wrapped)
    return app


def json_handler(records: list[PeerRecord], key: str = "Providers") -> Callable[..., object]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=encode_json_answer(key, records), content_type="application/json")

    return handle


def ndjson_handler(records: list[PeerRecord], *, delay: float = 0.0, forever: bool = False) -> Callable[..., object]:
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": NDJSON_TYPE})
        await resp.prepare(request)
        i = 0
        while True:
            for rec in records:
                if delay:
                    await asyncio.sleep(delay)
                await resp.write(encode_ndjson_line(rec if not forever else record(10_000 + i)))
                i += 1
            if not forever:
                break
        await resp.write_eof()
        return resp

    return handle


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def collect(routing: DelegatedRouting, cid: bytes, limit: int | None = None) -> list[PeerRecord]:
    async with contextlib.aclosing(routing.find_providers(cid, limit=limit)) as found:
        return [rec async for rec in found]


def test_default_routers_follow_kubo() -> None:
    assert default_routers("auto") == [CID_CONTACT]
    assert default_routers("delegated") == [CID_CONTACT, DELEGATED_IPFS_DEV]
    assert default_routers("dht") == []
    with pytest.raises(ValueError):
        DelegatedRouting(["ftp://example.com"])


def test_json_and_ndjson_routers_are_merged_and_deduplicated() -> None:
    shared = [record(i) for i in range(5)]
    only_a = [record(100 + i) for i in range(3)]
    only_b = [record(200 + i) for i in range(4)]
    seen_a: list[web.Request] = []
    seen_b: list[web.Request] = []

    async def main() -> None:
        async with serve(router_app(json_handler(shared + only_a), seen_a)) as a, serve(
            router_app(ndjson_handler(only_b + shared), seen_b)
        ) as b:
            routing = DelegatedRouting([a, b + "/"], timeout=10)
            try:
                got = await collect(routing, CIDV0)
                assert sorted(got, key=lambda r: r.peer_id) == sorted(shared + only_a + only_b, key=lambda r: r.peer_id)
                assert len(got) == len(set(got))
                limited = await collect(routing, CIDV0, limit=4)
                assert len(limited) == 4
                st = routing.stats()
                assert st[a].records >= 8 and st[b].records >= 9 and st[a].errors == st[b].errors == 0
            finally:
                await routing.close()
        req = seen_a[0]
        assert req.path == f"/routing/v1/providers/{cid_to_str(to_v1(CIDV0))}"  # CIDv1 in the path
        assert "application/x-ndjson" in req.headers["Accept"] and "application/json" in req.headers["Accept"]
        assert req.query["filter-protocols"] == "transport-bitswap,transport-ipfs-gateway-http,unknown"
        assert req.headers["User-Agent"].startswith("pinion/")

    asyncio.run(main())


def test_a_hanging_router_times_out_while_another_answers() -> None:
    good = [record(i) for i in range(3)]

    async def main() -> None:
        async with serve(router_app(hang)) as slow, serve(router_app(ndjson_handler(good))) as fast:
            routing = DelegatedRouting([slow, fast], timeout=4.0)
            try:
                t0 = time.monotonic()
                first: list[PeerRecord] = []
                async with contextlib.aclosing(routing.find_providers(CID)) as found:
                    async for rec in found:
                        # the fast router's answers come before the slow one has even timed out
                        assert routing.stats()[slow].timeouts == 0
                        first.append(rec)
                elapsed = time.monotonic() - t0
                assert first == good
                assert 4.0 <= elapsed < 30  # the iteration ended when the hanging router was cut at its timeout
                st = routing.stats()
                assert st[slow].timeouts == 1 and "within 4 s" in st[slow].last_error
                assert st[fast].records == 3
            finally:
                await routing.close()

    asyncio.run(main())


def test_oversized_answers_are_cut_and_other_routers_still_count() -> None:
    good = [record(i) for i in range(2)]

    async def huge_json(request: web.Request) -> web.Response:
        return web.Response(body=b'{"Providers": [' + b" " * (2 << 20) + b"]}", content_type="application/json")

    async def main() -> None:
        async with serve(router_app(ndjson_handler([record(0)], forever=True))) as endless, serve(
            router_app(huge_json)
        ) as big, serve(router_app(json_handler(good))) as fine:
            routing = DelegatedRouting([endless, big, fine], timeout=20, limits=Limits(max_records=50))
            try:
                got = await collect(routing, CID)
                from_endless = [r for r in got if r not in good]
                assert len(from_endless) == 50  # cut at max_records, the stream was closed
                assert set(good) <= set(got)
                st = routing.stats()
                assert st[endless].truncated == 1
                assert st[big].errors == 1 and "limit" in st[big].last_error
                # a byte limit on an endless stream: cut as well
                routing2 = DelegatedRouting([endless], timeout=20, limits=Limits(max_stream_bytes=64 << 10, max_records=10**6))
                try:
                    got2 = await collect(routing2, CID)
                    assert 0 < len(got2) < 1000 and routing2.stats()[endless].truncated == 1
                finally:
                    await routing2.close()
            finally:
                await routing.close()

    asyncio.run(main())


def test_malformed_records_are_skipped_and_bad_answers_do_not_stop_others() -> None:
    good = [record(i) for i in range(3)]

    async def mixed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": NDJSON_TYPE})
        await resp.prepare(request)
        await resp.write(encode_ndjson_line(good[0]))
        await resp.write(b"not json\n")
        await resp.write(b'{"Schema":"peer","ID":"bogus"}\n')
        await resp.write(b'{"Schema":"unknown-future","ID":"x"}\n')
        await resp.write(b"[1,2,3]\n\n")
        await resp.write(encode_ndjson_line(good[1]))
        await resp.write(encode_ndjson_line(good[2])[:-1])  # the last line without its newline
        await resp.write_eof()
        return resp

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="not found")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    async def garbage_json(request: web.Request) -> web.Response:
        return web.Response(body=b"{nope", content_type="application/json")

    async def main() -> None:
        async with serve(router_app(mixed)) as m, serve(router_app(not_found)) as nf, serve(
            router_app(broken)
        ) as br, serve(router_app(html)) as ht, serve(router_app(garbage_json)) as gj:
            routing = DelegatedRouting([m, nf, br, ht, gj], timeout=10)
            try:
                assert await collect(routing, CID) == good
                st = routing.stats()
                assert st[m].skipped == 4
                assert st[nf].errors == 0  # 404 = nothing (IPIP-513)
                assert st[br].errors == 1 and "HTTP 500" in st[br].last_error
                assert st[ht].errors == 1 and "content type" in st[ht].last_error
                assert st[gj].errors == 1 and "not JSON" in st[gj].last_error
            finally:
                await routing.close()

    asyncio.run(main())


def test_find_peer_first_useful_answer_wins() -> None:
    wanted = record(7)
    no_addrs = PeerRecord(wanted.peer_id, (), ("transport-bitswap",))

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=encode_json_answer("Peers", [wanted]), content_type="application/json")

    async def main() -> None:
        async with serve(router_app(slow)) as s, serve(router_app(json_handler([no_addrs, wanted], "Peers"))) as f:
            routing = DelegatedRouting([s, f], timeout=60)
            try:
                t0 = time.monotonic()
                rec = await routing.find_peer(wanted.peer_id)
                assert rec == wanted
                assert time.monotonic() - t0 < 10  # did not wait for the slow router
                assert await DelegatedRouting([], timeout=1).find_peer(wanted.peer_id) is None
            finally:
                await routing.close()

    asyncio.run(main())


def test_merge_records_survives_a_failing_source_and_stops_the_rest() -> None:
    async def main() -> None:
        cancelled = asyncio.Event()

        async def failing():  # type: ignore[no-untyped-def]
            yield record(1)
            raise RuntimeError("dht lookup failed")

        async def endless():  # type: ignore[no-untyped-def]
            try:
                i = 0
                while True:
                    yield record(100 + i)
                    i += 1
                    await asyncio.sleep(0)
            finally:
                cancelled.set()

        async with contextlib.aclosing(merge_records([failing(), endless()], limit=20)) as merged:
            got = [r async for r in merged]
        assert len(got) == 20 and record(1) in got
        await asyncio.wait_for(cancelled.wait(), 5)

    asyncio.run(main())


def test_json_answer_is_the_spec_shape() -> None:
    """What our client reads is what the spec's example shows (an ``application/json`` body)."""
    body = json.loads(encode_json_answer("Providers", [record(1)]))
    assert list(body) == ["Providers"]
    assert set(body["Providers"][0]) == {"Schema", "ID", "Addrs", "Protocols"}
