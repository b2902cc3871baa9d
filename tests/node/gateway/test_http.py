"""The gateway over loopback on content built by the importer: multi-level files, HAMT directories,
missing blocks, HEAD, errors and metrics."""

from __future__ import annotations

import asyncio
import http.client
import random
from collections.abc import Iterator

import pytest

from blockstore.cid import cid_from_str, cid_to_str, multihash_of
from blockstore.dagpb import decode_pbnode
from blockstore.importer import DirectoryBuilder, ImportParams, import_bytes
from blockstore.store import BlockStore
from node.gateway import StoreBlockSource, make_gateway_app
from node.metrics import NodeMetrics

from .helpers import LiveGateway, read_car

#: small chunks and fan-out so a 40 KiB file is a three-level tree
DEEP = ImportParams(chunk_size=1024, max_links=4, cid_version=1, raw_leaves=True)


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _all_cids(store: BlockStore, root: bytes) -> list[bytes]:
    """Every CID of a dag-pb/raw DAG in DFS pre-order (links followed as stored)."""
    out = [root]
    if root[1:2] == b"\x70" or len(root) == 34:
        for link in decode_pbnode(store.get(root) or b"").links:
            out += _all_cids(store, link.hash)
    return out


@pytest.fixture
def deep_file(store: BlockStore) -> tuple[str, bytes]:
    data = _data(40_000)
    res = import_bytes(data, store, DEEP)
    return cid_to_str(res.cid), data


@pytest.mark.parametrize("rng", [(0, 0), (0, 39_999), (1023, 1024), (5000, 17_000), (39_990, 39_999), (4095, 4096)])
def test_range_on_deep_file(empty_gateway: LiveGateway, deep_file: tuple[str, bytes], rng: tuple[int, int]) -> None:
    root, data = deep_file
    a, b = rng
    r = empty_gateway.request(f"/ipfs/{root}", {"Range": f"bytes={a}-{b}"})
    assert r.status == 206
    assert r.h("Content-Range") == f"bytes {a}-{b}/{len(data)}"
    assert r.body == data[a : b + 1]


def test_whole_deep_file_and_head(empty_gateway: LiveGateway, deep_file: tuple[str, bytes]) -> None:
    root, data = deep_file
    r = empty_gateway.request(f"/ipfs/{root}")
    assert r.status == 200 and r.body == data
    assert r.h("Content-Length") == str(len(data)) and r.h("Etag") == f'"{root}"'
    assert r.h("Content-Type") == "application/octet-stream"
    h = empty_gateway.request(f"/ipfs/{root}", method="HEAD")
    assert h.status == 200 and h.body == b"" and h.h("Content-Length") == str(len(data))
    h = empty_gateway.request(f"/ipfs/{root}?format=raw", method="HEAD")
    assert h.status == 200 and h.body == b"" and h.h("Content-Type") == "application/vnd.ipld.raw"


def test_unsatisfiable_range(empty_gateway: LiveGateway, deep_file: tuple[str, bytes]) -> None:
    root, data = deep_file
    r = empty_gateway.request(f"/ipfs/{root}", {"Range": "bytes=50000-60000"})
    assert r.status == 416 and r.h("Content-Range") == f"bytes */{len(data)}"


def test_car_all_and_entity_bytes(empty_gateway: LiveGateway, store: BlockStore, deep_file: tuple[str, bytes]) -> None:
    root, data = deep_file
    expected = _all_cids(store, cid_from_str(root))
    r = empty_gateway.request(f"/ipfs/{root}?format=car")
    header, sections = read_car(r.body)
    assert [c for c, _ in sections] == expected
    assert all(store.get(c) == b for c, b in sections)
    r = empty_gateway.request(f"/ipfs/{root}?format=car&entity-bytes=5000:5999")
    _, part = read_car(r.body)
    leaves = [b for c, b in part if c[1] == 0x55]
    assert b"".join(leaves).find(data[5000:6000]) >= 0
    assert len(leaves) <= 3 and len(part) < len(expected)


def test_missing_block_cuts_the_stream(empty_gateway: LiveGateway, store: BlockStore, deep_file: tuple[str, bytes]) -> None:
    root, data = deep_file
    leaves = [c for c in _all_cids(store, cid_from_str(root)) if c[1] == 0x55]
    store.delete(leaves[len(leaves) // 2])
    with pytest.raises(http.client.IncompleteRead):
        empty_gateway.request(f"/ipfs/{root}")
    with pytest.raises((http.client.IncompleteRead, ValueError)):
        r = empty_gateway.request(f"/ipfs/{root}?format=car")
        read_car(r.body)  # a cut chunked body may also end on a section boundary: it must then be short
        raise ValueError("short CAR")
    r = empty_gateway.request(f"/ipfs/{root}", {"Range": "bytes=0-99"})
    assert r.status == 206 and r.body == data[:100]


@pytest.fixture
def hamt_dir(store: BlockStore) -> Iterator[tuple[str, dict[str, bytes]]]:
    params = ImportParams(cid_version=1, raw_leaves=True, hamt_threshold=10)
    builder = DirectoryBuilder(params)
    files = {f"file-{i}.txt": f"content {i}\n".encode() for i in range(300)}
    files["index.htm"] = b"<p>not an index</p>"
    for name, body in files.items():
        res = import_bytes(body, store, params)
        builder.add_entry(name, res.cid, res.size)
    assert builder.is_sharded()
    res = builder.finish(store)
    yield cid_to_str(res.cid), files


def test_hamt_directory(empty_gateway: LiveGateway, hamt_dir: tuple[str, dict[str, bytes]]) -> None:
    root, files = hamt_dir
    r = empty_gateway.request(f"/ipfs/{root}/")
    assert r.status == 200 and r.h("Content-Type") == "text/html"
    body = r.body.decode()
    assert all(f">{name}</a>" in body for name in files)
    for name in ("file-0.txt", "file-299.txt", "index.htm"):
        got = empty_gateway.request(f"/ipfs/{root}/{name}")
        assert got.status == 200 and got.body == files[name]
    assert empty_gateway.request(f"/ipfs/{root}/absent.txt").status == 404
    assert empty_gateway.request(f"/ipfs/{root}").status == 301


def test_filename_download_and_type(empty_gateway: LiveGateway, store: BlockStore) -> None:
    res = import_bytes(b"<!DOCTYPE html><title>x</title>", store, DEEP)
    cid = cid_to_str(res.cid)
    r = empty_gateway.request(f"/ipfs/{cid}")
    assert r.h("Content-Type") == "text/html" and r.h("Content-Disposition") is None
    r = empty_gateway.request(f"/ipfs/{cid}?filename=page.json&download=true")
    assert r.h("Content-Type") == "application/json"
    assert r.h("Content-Disposition").startswith('attachment; filename="page.json"')
    r = empty_gateway.request(f"/ipfs/{cid}?filename=page.txt")
    assert r.h("Content-Disposition").startswith("inline;")


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/ipfs/bafkqaaa", {}, 405),
        ("DELETE", "/ipfs/bafkqaaa", {}, 405),
        ("GET", "/ipfs/not-a-cid", {}, 400),
        ("GET", "/ipfs/bafkqaaa?format=car&dag-scope=x", {}, 400),
        ("GET", "/ipfs/bafkqaaa?format=tar", {}, 406),
        ("GET", "/ipfs/bafkqaaa", {"Service-Worker": "script"}, 400),
        ("GET", "/ipfs/bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4", {}, 404),
        ("HEAD", "/ipfs/bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4", {}, 404),
        ("GET", "/ipns/example.com", {}, 501),
    ],
)
def test_error_statuses(empty_gateway: LiveGateway, method: str, path: str, headers: dict[str, str], status: int) -> None:
    r = empty_gateway.request(path, headers, method=method)
    assert r.status == status
    if status == 405:
        assert r.h("Allow") == "GET, HEAD, OPTIONS"
    if method == "GET":
        assert r.body.strip()


def test_path_into_a_file_is_404(empty_gateway: LiveGateway, deep_file: tuple[str, bytes]) -> None:
    root, _ = deep_file
    assert empty_gateway.request(f"/ipfs/{root}/child").status == 404


def test_metrics_count_requests(store: BlockStore) -> None:
    metrics = NodeMetrics()
    gw = LiveGateway(make_gateway_app(StoreBlockSource(store), metrics=metrics)).start()
    try:
        assert gw.request("/ipfs/bafkqaaa?format=raw").status == 200
        assert gw.request("/ipfs/not-a-cid").status == 400
    finally:
        gw.stop()
    text = metrics.render().decode()
    assert 'pinion_gateway_requests_total{status="200"} 1.0' in text
    assert 'pinion_gateway_requests_total{status="400"} 1.0' in text


def test_cidv0_section_cids_kept(empty_gateway: LiveGateway, store: BlockStore) -> None:
    res = import_bytes(_data(3000, 2), store, ImportParams(chunk_size=1024))
    assert len(res.cid) == 34
    r = empty_gateway.request(f"/ipfs/{cid_to_str(res.cid)}?format=car")
    _, sections = read_car(r.body)
    assert all(len(c) == 34 and multihash_of(c) == c for c, _ in sections)


class _SlowSource(StoreBlockSource):
    """The store, except that one block times out (as a network fetch would)."""

    def __init__(self, store: BlockStore, slow: bytes) -> None:
        super().__init__(store)
        self.slow = slow

    async def get(self, cid: bytes) -> bytes:
        if cid == self.slow:
            raise TimeoutError
        return await super().get(cid)


def test_source_timeout_is_504(store: BlockStore, deep_file: tuple[str, bytes]) -> None:
    root, _ = deep_file
    gw = LiveGateway(make_gateway_app(_SlowSource(store, cid_from_str(root)))).start()
    try:
        r = gw.request(f"/ipfs/{root}")
    finally:
        gw.stop()
    assert r.status == 504 and b"timed out" in r.body


def test_content_location_when_accept_chose(empty_gateway: LiveGateway) -> None:
    r = empty_gateway.request("/ipfs/bafkqaaa?x=1", {"Accept": "application/vnd.ipld.raw"})
    assert r.status == 200 and r.h("Content-Location") == "/ipfs/bafkqaaa?x=1&format=raw"
    assert r.h("Vary") == "Accept"
    r = empty_gateway.request("/ipfs/bafkqaaa?format=raw")
    assert r.h("Content-Location") is None


def test_head_of_car_and_listing(empty_gateway: LiveGateway, hamt_dir: tuple[str, dict[str, bytes]]) -> None:
    root, _ = hamt_dir
    r = empty_gateway.request(f"/ipfs/{root}?format=car", method="HEAD")
    assert r.status == 200 and r.body == b"" and "application/vnd.ipld.car" in r.h("Content-Type")
    r = empty_gateway.request(f"/ipfs/{root}/", method="HEAD")
    assert r.status == 200 and r.body == b"" and r.h("Content-Type") == "text/html"
    assert r.h("Etag").startswith('"DirIndex-')


def test_metrics_count_bytes_of_small_bodies(store: BlockStore) -> None:
    metrics = NodeMetrics()
    gw = LiveGateway(make_gateway_app(StoreBlockSource(store), metrics=metrics)).start()
    try:
        assert gw.request("/ipfs/bafkqabtimvwgy3yk?format=raw").body == b"hello\n"
    finally:
        gw.stop()
    assert "pinion_gateway_bytes_out_total 6.0" in metrics.render().decode()


class _RemoteLikeSource(StoreBlockSource):
    """The store answered after a short await, with fetches allowed to overlap (like a network source)."""

    concurrency = 4

    def __init__(self, store: BlockStore) -> None:
        super().__init__(store)
        self.in_flight = 0
        self.most_in_flight = 0

    async def get(self, cid: bytes) -> bytes:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            return await super().get(cid)
        finally:
            self.in_flight -= 1


def test_overlapping_fetches_keep_order(store: BlockStore, deep_file: tuple[str, bytes]) -> None:
    root, data = deep_file
    source = _RemoteLikeSource(store)
    gw = LiveGateway(make_gateway_app(source)).start()
    try:
        assert gw.request(f"/ipfs/{root}").body == data
        r = gw.request(f"/ipfs/{root}", {"Range": "bytes=3000-30000"})
        assert r.body == data[3000:30001]
        _, sections = read_car(gw.request(f"/ipfs/{root}?format=car").body)
        assert [c for c, _ in sections] == _all_cids(store, cid_from_str(root))
    finally:
        gw.stop()
    assert 1 < source.most_in_flight <= 4
