"""HTTP retrieval from trustless gateways on loopback: a real Pinion gateway, and lying ones that get scored down."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bitswap.routing.http_retrieval import BlockUnavailable, HttpFetcher, HttpRetrievalError, UrlPolicy, gateway_urls
from bitswap.routing.provider_scores import ProviderScores
from bitswap.routing.records import TRANSPORT_BITSWAP, TRANSPORT_HTTP, PeerRecord
from blockstore.car import encode_header, encode_section, write_car
from blockstore.cid import RAW, cid_for, cid_from_str
from blockstore.dagwalk import walk_dag
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_bytes
from blockstore.store import BlockStore
from node.gateway import StoreBlockSource, make_gateway_app

from tests.node.gateway.helpers import LiveGateway
from .http_helpers import ed25519_peer, serve

LOCAL = UrlPolicy(allow_http=True, allow_private=True)
HITS = web.AppKey("hits", dict)


class Env:
    """A source store holding one multi-block UnixFS DAG, served by a real Pinion gateway, and an empty client store."""

    def __init__(self, tmp: Path, params: ImportParams) -> None:
        self.src = BlockStore(open_db(tmp / "src"))
        self.data = os.urandom(600 * 1024)
        self.root = import_bytes(self.data, self.src, params).cid
        self.blocks = list(walk_dag(self.root, self.src.get))
        self.store = BlockStore(open_db(tmp / "client"))
        self.gateway = LiveGateway(make_gateway_app(StoreBlockSource(self.src))).start()
        self.url = f"http://127.0.0.1:{self.gateway.port}"

    def close(self) -> None:
        self.gateway.stop()
        self.src.db.close()
        self.store.db.close()

    def complete(self) -> bool:
        """Whether the client store holds the whole DAG, byte for byte."""
        return all(self.store.get(cid) == data for cid, data in self.blocks)


@pytest.fixture(params=["cidv0", "raw-leaves"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    # 16 KiB chunks and 8 links per node: ~40 leaves under two levels of dag-pb nodes
    if request.param == "cidv0":
        params = ImportParams(chunk_size=16 * 1024, max_links=8)
    else:
        params = ImportParams(cid_version=1, raw_leaves=True, chunk_size=16 * 1024, max_links=8)
    e = Env(tmp_path, params)
    yield e
    e.close()


def test_fetch_dag_as_one_car_from_a_pinion_gateway(env: Env) -> None:
    async def main() -> None:
        fetcher = HttpFetcher(env.store, policy=LOCAL)
        assert fetcher.add_provider(env.url)
        try:
            seen: list[tuple[int, int]] = []
            result = await fetcher.fetch_dag(env.root, progress=lambda b, n: seen.append((b, n)))
        finally:
            await fetcher.close()
        assert env.complete()
        assert result.car_blocks == result.fetched == len(env.blocks)
        assert result.fetched_bytes == sum(len(d) for _, d in env.blocks)
        assert result.providers == {env.url: len(env.blocks)}
        assert seen and seen[-1][1] == result.fetched_bytes
        # a second fetch finds everything present and stores nothing new
        fetcher = HttpFetcher(env.store, policy=LOCAL)
        fetcher.add_provider(env.url)
        try:
            again = await fetcher.fetch_dag(env.root, use_car=False)
        finally:
            await fetcher.close()
        assert again.fetched == 0 and again.present == again.blocks == len(env.blocks)

    asyncio.run(main())


def test_repeated_blocks_in_a_car_while_batches_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DAG whose leaves are all the same block, sent with dups=y, with a store write after every block:
    a repeat that arrives while its first copy is being written is still recognised as held."""
    monkeypatch.setattr("bitswap.routing.http_retrieval._STORE_BATCH", 1)
    src = BlockStore(open_db(tmp_path / "src"))
    root = import_bytes(bytes(400 * 1024), src, ImportParams(chunk_size=8 * 1024, max_links=8)).cid
    distinct = {c for c, _ in walk_dag(root, src.get)}
    store = BlockStore(open_db(tmp_path / "client"))
    gw = LiveGateway(make_gateway_app(StoreBlockSource(src))).start()

    async def main() -> None:
        fetcher = HttpFetcher(store, policy=LOCAL)
        fetcher.add_provider(f"http://127.0.0.1:{gw.port}")
        try:
            result = await fetcher.fetch_dag(root)
        finally:
            await fetcher.close()
        assert result.car_blocks == result.fetched == len(distinct)
        assert fetcher.scores.state(f"http://127.0.0.1:{gw.port}").bad == 0
        assert all(store.get(c) == src.get(c) for c in distinct)

    try:
        asyncio.run(main())
    finally:
        gw.stop()
        src.db.close()
        store.db.close()


def test_fetch_entity_of_a_directory_and_of_a_file(tmp_path: Path) -> None:
    src = BlockStore(open_db(tmp_path / "src"))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.bin").write_bytes(os.urandom(100_000))
    (tmp_path / "site" / "b.txt").write_bytes(b"hello")
    from blockstore.importer import import_path

    params = ImportParams(cid_version=1, raw_leaves=True, chunk_size=16 * 1024)
    entries = {e.name: e.cid for e in import_path(tmp_path / "site", src, params)}
    dir_cid = entries["site"]
    file_cid = entries["site/a.bin"]
    store = BlockStore(open_db(tmp_path / "client"))
    gw = LiveGateway(make_gateway_app(StoreBlockSource(src))).start()

    async def main() -> None:
        fetcher = HttpFetcher(store, policy=LOCAL)
        fetcher.add_provider(f"http://127.0.0.1:{gw.port}")
        try:
            r = await fetcher.fetch_entity(dir_cid)
            assert r.car_blocks == 1 and store.has(dir_cid) and not store.has(file_cid)
            r = await fetcher.fetch_entity(file_cid)
            file_blocks = [c for c, _ in walk_dag(file_cid, src.get)]
            assert r.car_blocks == len(file_blocks) > 1 and all(store.has(c) for c in file_blocks)
            with pytest.raises(HttpRetrievalError, match="no HTTP provider delivered it"):
                await fetcher.fetch_entity(cid_for(b"absent", RAW))
        finally:
            await fetcher.close()

    try:
        asyncio.run(main())
    finally:
        gw.stop()
        src.db.close()
        store.db.close()


def test_fetch_dag_block_by_block_and_get_blocks(env: Env) -> None:
    async def main() -> None:
        fetcher = HttpFetcher(env.store, policy=LOCAL, max_in_flight=8)
        fetcher.add_provider(env.url)
        try:
            result = await fetcher.fetch_dag(env.root, use_car=False)
            assert env.complete() and result.fetched == result.blocks == len(env.blocks) and result.car_blocks == 0
            leaves = [cid for cid, _ in env.blocks[-5:]]
            missing = cid_for(b"nobody has this", RAW)
            got = {cid: data async for cid, data in fetcher.get_blocks(leaves + [missing])}
            assert set(got) == set(leaves)
            with pytest.raises(BlockUnavailable, match="does not have it"):
                await fetcher.get_block(missing)
            blake3 = b"\x01\x55\x1e\x20" + bytes(32)  # a hash Pinion cannot verify: refused before asking anyone
            with pytest.raises(BlockUnavailable, match="unsupported multihash"):
                await fetcher.get_block(blake3)
            assert fetcher.scores.state(env.url).bad == 0
        finally:
            await fetcher.close()

    asyncio.run(main())


def lying_gateway(env: Env, mode: str) -> web.Application:
    """A trustless gateway that answers from the same blocks but lies the way ``mode`` says."""
    blocks = dict(env.blocks)
    order = [cid for cid, _ in env.blocks]
    hits: dict[str, int] = {"car": 0, "raw": 0}

    async def handle(request: web.Request) -> web.StreamResponse:
        cid = cid_from_str(request.match_info["cid"])
        if request.query.get("format") == "raw":
            hits["raw"] += 1
            data = blocks.get(cid)
            if data is None:
                return web.Response(status=404)
            if mode == "raw-wrong":
                data = os.urandom(len(data))
            if mode == "raw-huge":
                return web.Response(body=b"\0" * (3 * 1024 * 1024), content_type="application/vnd.ipld.raw")
            if mode == "raw-huge-chunked":  # no Content-Length: the reader must stop at the limit itself
                resp = web.StreamResponse(headers={"Content-Type": "application/vnd.ipld.raw"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                for _ in range(48):
                    await resp.write(b"\0" * 65536)
                await resp.write_eof()
                return resp
            return web.Response(body=data, content_type="application/vnd.ipld.raw")
        hits["car"] += 1
        resp = web.StreamResponse(headers={"Content-Type": "application/vnd.ipld.car; version=1; order=dfs; dups=y"})
        await resp.prepare(request)
        if mode == "car-garbage":
            await resp.write(b"this is not a CAR at all" * 100)
        elif mode == "car-wrong-root":
            other = cid_for(b"another root", RAW)
            await resp.write(encode_header([other]) + encode_section(other, b"another root"))
        elif mode == "car-corrupt":
            half = len(order) // 2
            await resp.write(encode_header([cid]))
            for i, c in enumerate(order):
                data = blocks[c]
                if i == half:
                    data = bytes([data[0] ^ 1]) + data[1:]
                await resp.write(encode_section(c, data))
        elif mode == "car-unrequested":
            await resp.write(encode_header([cid]) + encode_section(order[0], blocks[order[0]]))
            stray = b"a block nobody asked for"
            await resp.write(encode_section(cid_for(stray, RAW), stray))
        elif mode == "car-trickle":
            await resp.write(encode_header([cid]))
            section = encode_section(order[0], blocks[order[0]])
            for i in range(len(section)):  # one byte every 50 ms: would take hours
                await resp.write(section[i : i + 1])
                await asyncio.sleep(0.05)
        elif mode == "car-cut":
            for chunk in write_car([cid], ((c, blocks[c]) for c in order[: len(order) // 3])):
                await resp.write(chunk)
            request.transport.close()  # the connection drops mid-stream
            return resp
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/ipfs/{cid}", handle)
    app[HITS] = hits
    return app


@pytest.mark.parametrize(
    "mode", ["car-corrupt", "car-unrequested", "car-garbage", "car-wrong-root", "car-cut", "car-trickle", "raw-wrong", "raw-huge", "raw-huge-chunked"]
)
def test_a_lying_gateway_is_scored_down_and_the_fetch_completes_from_the_honest_one(env: Env, mode: str) -> None:
    async def main() -> None:
        app = lying_gateway(env, mode)
        async with serve(app) as liar:
            fetcher = HttpFetcher(env.store, policy=LOCAL, read_timeout=1.0)
            fetcher.add_provider(liar)  # added first: asked first while scores are equal
            fetcher.add_provider(env.url)
            try:
                use_car = mode.startswith("car")
                result = await fetcher.fetch_dag(env.root, use_car=use_car)
            finally:
                await fetcher.close()
            assert env.complete()
            assert result.blocks == len(env.blocks)
            liar_state = fetcher.scores.state(liar)
            honest = fetcher.scores.state(env.url)
            assert app[HITS]["car" if use_car else "raw"] >= 1
            if mode in ("car-cut", "car-trickle"):
                assert liar_state.failures >= 1 and liar_state.bad == 0
            else:
                assert liar_state.bad >= 1, liar_state
                assert not fetcher.scores.usable(liar, fetcher._clock())  # banned for a while
            assert liar_state.score < honest.score
            assert result.providers.get(env.url, 0) >= 1
            # what the liar sent and we kept is only what verified: the store is byte-exact (checked above)

    asyncio.run(main())


def test_no_provider_and_unreachable_provider(env: Env) -> None:
    async def main() -> None:
        fetcher = HttpFetcher(env.store, policy=LOCAL, block_timeout=5)
        try:
            with pytest.raises(BlockUnavailable, match="no usable HTTP provider"):
                await fetcher.fetch_dag(env.root)
            fetcher.add_provider("http://127.0.0.1:9")  # discard port: connection refused
            with pytest.raises(BlockUnavailable):
                await fetcher.fetch_dag(env.root)
            assert fetcher.scores.state("http://127.0.0.1:9").failures >= 1
            assert not env.store.has(env.root)
        finally:
            await fetcher.close()

    asyncio.run(main())


def test_gateway_urls_and_policy() -> None:
    peer = ed25519_peer(b"gw")
    rec = PeerRecord(
        peer,
        (
            "/dns/gw.example.com/tcp/443/https",
            "/ip4/1.2.3.4/tcp/8443/tls/http",
            "/ip4/1.2.3.4/tcp/4001",
            "/ip4/127.0.0.1/tcp/8080/http",
            "/ip4/192.168.1.2/tcp/443/https",
            "/ip6/2001:db8::1/tcp/443/tls/sni/gw.example.com/http",
            "/dns4/gw.example.com/tcp/80/http/http-path/sub%2Fdir",
            "/ip4/1.2.3.4/udp/4001/quic-v1",
        ),
        (TRANSPORT_HTTP,),
    )
    assert gateway_urls(rec) == ["https://gw.example.com", "https://1.2.3.4:8443"]
    assert gateway_urls(rec, UrlPolicy(allow_http=True, allow_private=True)) == [
        "https://gw.example.com",
        "https://1.2.3.4:8443",
        "http://127.0.0.1:8080",
        "https://192.168.1.2",
        "https://[2001:db8::1]",
        "http://gw.example.com/sub/dir",
    ]
    assert gateway_urls(PeerRecord(peer, rec.addrs, (TRANSPORT_BITSWAP,))) == []
    fetcher = HttpFetcher.__new__(HttpFetcher)
    fetcher.policy = UrlPolicy()
    fetcher._providers = {}
    assert not fetcher.add_provider("http://1.2.3.4")  # plain http refused by default
    assert not fetcher.add_provider("https://localhost:8080")
    assert not fetcher.add_provider("https://[::1]:8080")
    assert not fetcher.add_provider("ftp://1.2.3.4")
    assert fetcher.add_provider("https://1.2.3.4/")
    assert fetcher.add_record(rec) == 2 and fetcher.providers == ["https://1.2.3.4", "https://gw.example.com", "https://1.2.3.4:8443"]


def test_provider_scores() -> None:
    s = ProviderScores(base_backoff=1, max_backoff=8, ban_seconds=100)
    s.success("a", 1000, 0.1, 0)
    s.not_found("b", 0)
    assert s.ranked(["b", "a", "c"], 0) == ["a", "c", "b"]
    waits = []
    for i in range(5):
        s.failure("c", 10.0, "timeout")
        waits.append(s.state("c").blocked_until - 10.0)
    assert waits == [1, 2, 4, 8, 8]
    assert not s.usable("c", 17.9) and s.usable("c", 18.1)
    s.bad_data("a", 20, "wrong block")
    assert not s.usable("a", 119) and s.usable("a", 121)
    assert s.ranked(["a", "b"], 121) == ["b", "a"]  # the liar now ranks below one that merely lacked a block
    s.success("c", 1, 1, 30)
    assert s.state("c").consecutive_failures == 0
    assert s.snapshot()["a"].bad == 1
