"""Small files answered whole in one response: the same answers as the streamed path, bounded node and answer caches.

Each content is imported twice: as one block (kubo's default chunker: the bytes inside one dag-pb
node; and as a CIDv1 raw leaf) and as a tree of 100-byte chunks (streamed block by block). Every
answer of the gateway but the CID-derived headers must be the same for the three.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blockstore.cid import cid_to_str
from multidict import CIMultiDict

from blockstore.importer import DirectoryBuilder, ImportParams, import_bytes
from blockstore.store import BlockStore
from node.gateway import StoreBlockSource, make_gateway_app
from node.gateway.answers import AnswerCache, answer_key
from node.gateway.app import CORS_HEADERS
from node.gateway.nodecache import NodeCache
from node.metrics import NodeMetrics

from .helpers import LiveGateway, Reply

ONE_NODE = ImportParams()  # kubo's ipfs add: CIDv0, 256 KiB chunks in dag-pb leaves
RAW_LEAF = ImportParams(cid_version=1, raw_leaves=True)
CHUNKED = ImportParams(chunk_size=100, max_links=4, cid_version=1, raw_leaves=True)

CONTENTS = {
    "html": b"<!DOCTYPE html><html><body>" + b"hi " * 200 + b"</body></html>\n",
    "text": "caf\u00e9 au lait\n".encode() * 60,
    "binary": bytes(range(256)) * 4,
    "png": b"\x89PNG\r\n\x1a\n" + bytes(700),
}
#: the headers that do not depend on which CID holds the content
SAME = ("Content-Type", "Content-Length", "Content-Range", "Cache-Control", "Accept-Ranges", "Vary", *CORS_HEADERS)


@pytest.fixture
def imported(store: BlockStore) -> dict[str, dict[str, str]]:
    """{content name: {layout: CID text}} for every content in every layout."""
    return {
        name: {
            layout: cid_to_str(import_bytes(data, store, params).cid)
            for layout, params in (("node", ONE_NODE), ("raw", RAW_LEAF), ("chunked", CHUNKED))
        }
        for name, data in CONTENTS.items()
    }


@pytest.fixture
def nodes() -> NodeCache:
    return NodeCache(max_entries=8, max_bytes=64 * 1024)


@pytest.fixture
def gateway(store: BlockStore, nodes: NodeCache) -> Iterator[LiveGateway]:
    gw = LiveGateway(make_gateway_app(StoreBlockSource(store), nodes=nodes)).start()
    yield gw
    gw.stop()


def _same(replies: dict[str, Reply]) -> None:
    node = replies["node"]
    for layout, r in replies.items():
        assert r.status == node.status, layout
        assert r.body == node.body, layout
        for name in SAME:
            assert r.h(name) == node.h(name), (layout, name)


REQUESTS = [
    ({}, "GET"),
    ({}, "HEAD"),
    ({"Range": "bytes=10-99"}, "GET"),
    ({"Range": "bytes=-5"}, "GET"),
    ({"Range": "bytes=100000-"}, "GET"),
    ({"Range": "items=1-2"}, "GET"),
]


@pytest.mark.parametrize("name", sorted(CONTENTS))
@pytest.mark.parametrize("headers,method", REQUESTS)
def test_one_block_files_answer_as_streamed_ones(
    gateway: LiveGateway, imported: dict[str, dict[str, str]], name: str, headers: dict[str, str], method: str
) -> None:
    replies = {layout: gateway.request(f"/ipfs/{cid}", headers, method) for layout, cid in imported[name].items()}
    _same(replies)
    r = replies["node"]
    data = CONTENTS[name]
    if not headers and method == "GET":
        assert r.status == 200 and r.body == data and r.h("Content-Length") == str(len(data))
    if method == "HEAD":
        assert r.status == 200 and r.body == b"" and r.h("Content-Length") == str(len(data))
    if headers.get("Range") == "bytes=10-99":
        assert r.status == 206 and r.body == data[10:100] and r.h("Content-Range") == f"bytes 10-99/{len(data)}"
    if headers.get("Range") == "bytes=100000-":
        assert r.status == 416 and r.h("Content-Range") == f"bytes */{len(data)}"


def test_sniffed_types_and_names(gateway: LiveGateway, imported: dict[str, dict[str, str]]) -> None:
    want = {"html": "text/html", "text": "text/plain; charset=utf-8", "binary": "application/octet-stream", "png": "image/png"}
    for name, layouts in imported.items():
        for _ in range(2):  # the second answer comes from the cached node
            assert gateway.request(f"/ipfs/{layouts['node']}").h("Content-Type") == want[name]
    r = gateway.request(f"/ipfs/{imported['binary']['node']}?filename=a.json&download=true")
    assert r.h("Content-Type") == "application/json"
    assert r.h("Content-Disposition") == "attachment; filename=\"a.json\"; filename*=UTF-8''a.json"


def test_content_headers_etag_and_304(gateway: LiveGateway, imported: dict[str, dict[str, str]]) -> None:
    cid = imported["text"]["node"]
    r = gateway.request(f"/ipfs/{cid}")
    assert r.h("Etag") == f'"{cid}"' and r.h("X-Ipfs-Path") == f"/ipfs/{cid}" and r.h("X-Ipfs-Roots") == cid
    assert r.h("Cache-Control") == "public, max-age=29030400, immutable" and r.h("Access-Control-Allow-Origin") == "*"
    for inm in (f'"{cid}"', f'W/"{cid}"', f'"other", "{cid}"', "*"):
        n = gateway.request(f"/ipfs/{cid}", {"If-None-Match": inm})
        assert n.status == 304 and n.body == b"" and n.h("Etag") == f'"{cid}"'
    assert gateway.request(f"/ipfs/{cid}", {"If-None-Match": '"other"'}).status == 200
    raw = gateway.request(f"/ipfs/{cid}?format=raw")
    assert raw.h("Content-Type") == "application/vnd.ipld.raw" and raw.h("Etag") == f'"{cid}.raw"'


def test_many_distinct_files_keep_the_node_cache_bounded(
    gateway: LiveGateway, store: BlockStore, nodes: NodeCache
) -> None:
    cids = [cid_to_str(import_bytes(b"file %d\n" % i * 40, store, ONE_NODE).cid) for i in range(40)]
    for i, cid in enumerate(cids):
        r = gateway.request(f"/ipfs/{cid}")
        assert r.status == 200 and r.body == b"file %d\n" % i * 40
        assert len(nodes) <= 8 and nodes.bytes <= 64 * 1024
    assert len(nodes) == 8


def test_a_removed_block_is_not_answered_from_the_cache(gateway: LiveGateway, store: BlockStore) -> None:
    res = import_bytes(b"soon gone\n", store, ONE_NODE)
    cid = cid_to_str(res.cid)
    assert gateway.request(f"/ipfs/{cid}").body == b"soon gone\n"
    store.delete(res.cid)
    r = gateway.request(f"/ipfs/{cid}")
    assert r.status == 404 and cid in r.body.decode()


def test_metrics_count_refused_and_small_answers(store: BlockStore) -> None:
    metrics = NodeMetrics()
    res = import_bytes(b"counted\n", store, ONE_NODE)
    gw = LiveGateway(make_gateway_app(StoreBlockSource(store), metrics=metrics, max_url=300)).start()
    try:
        assert gw.request(f"/ipfs/{cid_to_str(res.cid)}").body == b"counted\n"
        assert gw.request("/ipfs/" + "a" * 400).status == 414
    finally:
        gw.stop()
    text = metrics.render().decode()
    assert 'pinion_gateway_requests_total{status="200"} 1.0' in text
    assert 'pinion_gateway_requests_total{status="414"} 1.0' in text
    refusal = len(b"URL longer than 300 bytes\n")
    assert f"pinion_gateway_bytes_out_total {8 + refusal}.0" in text


# ----------------------------------------------------------------------------- prebuilt answers


@pytest.fixture
def answers() -> AnswerCache:
    return AnswerCache(max_entries=16, max_bytes=256 * 1024)


@pytest.fixture
def answering(store: BlockStore, answers: AnswerCache) -> Iterator[LiveGateway]:
    gw = LiveGateway(make_gateway_app(StoreBlockSource(store), answers=answers)).start()
    yield gw
    gw.stop()


def _without_date(r: Reply) -> tuple[int, dict[str, str], bytes]:
    return r.status, {k: v for k, v in r.headers.items() if k != "date"}, r.body


@pytest.mark.parametrize("query", ["", "?format=raw", "?filename=x.html", "?format=raw&filename=b.bin"])
@pytest.mark.parametrize("accept", [None, "application/vnd.ipld.raw", "text/html,*/*;q=0.8"])
def test_a_prebuilt_answer_is_the_pipeline_answer(
    answering: LiveGateway, answers: AnswerCache, imported: dict[str, dict[str, str]], query: str, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    for name in ("html", "png"):
        for layout in ("node", "raw"):
            path = f"/ipfs/{imported[name][layout]}{query}"
            cold = answering.request(path, headers)
            assert cold.status == 200 and (path, accept or "") in answers.keys()
            warm = answering.request(path, headers)
            assert _without_date(warm) == _without_date(cold)
            head = answering.request(path, headers, "HEAD")
            assert _without_date(head)[:2] == _without_date(cold)[:2] and head.body == b""
            # requests whose other headers change the answer take the pipeline, as before
            r = answering.request(path, {**headers, "Range": "bytes=1-3"})
            assert r.status == 206 and r.body == cold.body[1:4]
            assert answering.request(path, {**headers, "If-None-Match": cold.h("Etag")}).status == 304


def test_answers_made_of_other_blocks_are_not_prebuilt(answering: LiveGateway, store: BlockStore, answers: AnswerCache) -> None:
    params = ImportParams(cid_version=1, raw_leaves=True)
    builder = DirectoryBuilder(params)
    index = import_bytes(b"<p>the index</p>\n", store, params)
    builder.add_entry("index.html", index.cid, index.size)
    root = cid_to_str(builder.finish(store).cid)
    r = answering.request(f"/ipfs/{root}?go-get=1")  # the directory's index.html, through the directory
    assert r.status == 200 and r.body == b"<p>the index</p>\n"
    assert answering.request(f"/ipfs/{root}/index.html").status == 200
    assert answering.request(f"/ipfs/{root}/").status == 200
    assert len(answers) == 0
    store.delete(index.cid)
    assert answering.request(f"/ipfs/{root}?go-get=1").status == 404


def test_a_removed_block_is_not_answered_from_a_prebuilt_answer(answering: LiveGateway, store: BlockStore) -> None:
    res = import_bytes(b"gone soon\n", store, ONE_NODE)
    path = f"/ipfs/{cid_to_str(res.cid)}"
    assert answering.request(path).body == answering.request(path).body == b"gone soon\n"
    store.delete(res.cid)
    assert answering.request(path).status == 404
    assert answering.request(path, method="HEAD").status == 404


def test_prebuilt_answers_stay_bounded(answering: LiveGateway, store: BlockStore, answers: AnswerCache) -> None:
    cid = cid_to_str(import_bytes(b"x" * 900, store, ONE_NODE).cid)
    for i in range(60):  # a flood of distinct queries on one CID
        assert answering.request(f"/ipfs/{cid}?n={i}").status == 200
        assert len(answers) <= 16 and answers.bytes <= 256 * 1024
    big = cid_to_str(import_bytes(b"y" * 70_000, store, RAW_LEAF).cid)  # one raw block over 64 KiB
    assert answering.request(f"/ipfs/{big}?format=raw").status == 200
    assert (f"/ipfs/{big}?format=raw", "") not in answers.keys()


@pytest.mark.parametrize(
    "method,path,headers,eligible",
    [
        ("GET", "/ipfs/bafkqaaa", {}, True),
        ("HEAD", "/ipfs/bafkqaaa?format=raw", {"Accept": "*/*"}, True),
        ("GET", "/ipfs/bafkqaaa?x=a/b", {}, True),
        ("POST", "/ipfs/bafkqaaa", {}, False),
        ("GET", "/ipfs/bafkqaaa/", {}, False),
        ("GET", "/ipfs/bafkqaaa/name", {}, False),
        ("GET", "/ipns/example.com", {}, False),
        ("GET", "/ipfs/bafkqaaa", {"Range": "bytes=0-1"}, False),
        ("GET", "/ipfs/bafkqaaa", {"if-none-match": "*"}, False),
        ("GET", "/ipfs/bafkqaaa", {"Cache-Control": "only-if-cached"}, False),
        ("GET", "/ipfs/bafkqaaa", {"Service-Worker": "script"}, False),
    ],
)
def test_answer_key(method: str, path: str, headers: dict[str, str], eligible: bool) -> None:
    key = answer_key(method, path, CIMultiDict(headers))
    assert (key is not None) == eligible
    if key is not None:
        assert key == (path, headers.get("Accept", ""))
