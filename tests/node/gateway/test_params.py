"""Unit tests of the gateway's sans-I/O parts: request parsing, header decisions, MIME, the CAR header."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

import libipld
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.cid import cid_from_str
from blockstore.cborvalue import Link
from node.gateway import mime, params
from node.gateway.app import _query_of
from node.gateway.car_http import car_header
from node.gateway.errors import GatewayError

from .helpers import read_car


def _status(fn, *args) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(GatewayError) as info:
        fn(*args)
    return info.value.status


# ------------------------------------------------------------------ content paths


def test_content_path_split_and_decode_once() -> None:
    cp = params.parse_content_path("/ipfs/bafkqaaa/a%252Cb+c%20d/%C4%85/?x=1")
    assert cp == params.ContentPath("ipfs", "bafkqaaa", ["a%2Cb+c d", "ą"], True)
    assert params.parse_content_path("/ipfs/bafkqaaa").trailing_slash is False
    assert params.parse_content_path("/ipfs/bafkqaaa/./x").segments == ["x"]


@pytest.mark.parametrize("path", ["/ipfs/", "/foo/bar", "/ipfs/cid/../x", "/ipfs/cid/%FF", "/ipfs/%FF"])
def test_content_path_rejects(path: str) -> None:
    assert _status(params.parse_content_path, path) == 400


# ------------------------------------------------------------------ format / Accept


def test_format_wins_over_accept() -> None:
    assert params.choose_response({"format": "raw"}, "application/vnd.ipld.car").kind == "raw"
    assert params.choose_response({"format": "car"}, "application/vnd.ipld.raw").kind == "car"


def test_accept_picks_by_q() -> None:
    w = params.choose_response({}, "application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car;q=0.9")
    assert w.kind == "car" and w.via_accept
    assert params.choose_response({}, "text/html,*/*;q=0.8").kind == "unixfs"
    assert params.choose_response({}, None).kind == "unixfs"


def test_car_params_from_accept_and_query() -> None:
    w = params.choose_response({}, "application/vnd.ipld.car; version=1; order=unk; dups=y")
    assert w.car == params.CarParams("unk", True, "all", None)
    w = params.choose_response({"car-order": "dfs", "car-dups": "n"}, "application/vnd.ipld.car; order=unk; dups=y")
    assert w.car == params.CarParams("dfs", False, "all", None)
    w = params.choose_response({"format": "car", "entity-bytes": "1:2"}, None)
    assert w.car is not None and w.car.scope == "entity" and w.car.entity_bytes == (1, 2)


@pytest.mark.parametrize(
    ("query", "accept", "status"),
    [
        ({"format": "car", "car-version": "2"}, None, 400),
        ({}, "application/vnd.ipld.car; version=2", 400),
        ({"format": "car", "car-order": "bfs"}, None, 400),
        ({"format": "car", "car-dups": "maybe"}, None, 400),
        ({"format": "car", "dag-scope": "everything"}, None, 400),
        ({"format": "car", "entity-bytes": "a:b"}, None, 400),
        ({"format": "bogus"}, None, 400),
        ({"format": "tar"}, None, 406),
        ({}, "application/x-tar", 406),
        ({}, "application/vnd.ipld.raw; q=x", 400),
    ],
)
def test_bad_format_choices(query: dict[str, str], accept: str | None, status: int) -> None:
    assert _status(params.choose_response, query, accept) == status


# ------------------------------------------------------------------ entity-bytes


@pytest.mark.parametrize("text", ["5", "1:x", ":", "9:3", "-3:-9", ""])
def test_entity_bytes_rejects(text: str) -> None:
    assert _status(params.parse_entity_bytes, text) == 400


def test_entity_bytes_examples() -> None:
    assert params.parse_entity_bytes("-5:*") == (-5, None)
    assert params.entity_span((512, -256), 1026) == (512, 770)
    assert params.entity_span((-9999, None), 1026) == (0, 1025)
    assert params.entity_span((2000, None), 1026) is None
    assert params.entity_span((0, 0), 0) is None


@given(st.integers(0, 5000), st.integers(-6000, 6000), st.one_of(st.none(), st.integers(-6000, 6000)))
def test_entity_span_matches_brute_force(size: int, start: int, end: int | None) -> None:
    idx = list(range(size))
    lo = max(size + start, 0) if start < 0 else start
    hi = size - 1 if end is None else (size + end if end < 0 else end)
    expected = [i for i in idx if lo <= i <= hi]
    got = params.entity_span((start, end), size)
    if not expected:
        assert got is None
    else:
        assert got == (expected[0], expected[-1])


# ------------------------------------------------------------------ Range


def test_range_forms() -> None:
    assert params.parse_range("bytes=6-16", 31) == [(6, 16)]
    assert params.parse_range("bytes=-3", 31) == [(28, 30)]
    assert params.parse_range("bytes=28-", 31) == [(28, 30)]
    assert params.parse_range("bytes=6-16,0-4", 31) == [(6, 16), (0, 4)]
    assert params.parse_range("bytes=20-100", 31) == [(20, 30)]
    assert params.parse_range("items=1-2", 31) is None
    assert params.parse_range("bytes=5-2", 31) is None
    assert _status(params.parse_range, "bytes=40-50", 31) == 416
    assert _status(params.parse_range, "bytes=0-1", 0) == 416


@given(st.integers(1, 10_000), st.integers(0, 12_000), st.integers(0, 12_000))
def test_range_spans_stay_inside(size: int, a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    try:
        spans = params.parse_range(f"bytes={first}-{last}", size)
    except GatewayError as exc:
        assert exc.status == 416 and first >= size
        return
    assert spans == [(first, min(last, size - 1))]


# ------------------------------------------------------------------ Etags, dispositions, cache control


def test_etag_matching() -> None:
    assert params.etag_matches('"a"', '"a"')
    assert params.etag_matches('W/"a"', '"a"')
    assert params.etag_matches('"x", "a"', '"a"')
    assert params.etag_matches("*", '"a"')
    assert params.etag_matches('"a"', 'W/"a"')
    assert not params.etag_matches('"b"', '"a"')
    assert not params.etag_matches("", '"a"')


def test_content_disposition() -> None:
    got = params.content_disposition("attachment", "testтест.tar")
    assert got == "attachment; filename=\"test____.tar\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.tar"
    assert params.content_disposition("inline", 'a"b.txt').startswith('inline; filename="a_b.txt"')


def test_car_etag_varies() -> None:
    base = params.CarParams("dfs", False, "all", None)
    tags = {
        params.car_etag("r", "/ipfs/r", base),
        params.car_etag("r", "/ipfs/r", base._replace(scope="entity")),
        params.car_etag("r", "/ipfs/r", base._replace(dups=True)),
        params.car_etag("r", "/ipfs/r", base._replace(scope="entity", entity_bytes=(0, 10))),
        params.car_etag("r", "/ipfs/r/x", base),
    }
    assert len(tags) == 5 and all(t.startswith('W/"r.car.') for t in tags)


def test_only_if_cached() -> None:
    assert params.only_if_cached("max-age=0, only-if-cached")
    assert not params.only_if_cached("no-cache")
    assert not params.only_if_cached(None)


# ------------------------------------------------------------------ MIME


def test_mime_by_name_then_sniff() -> None:
    assert mime.content_type("a.txt", b"\x00\x01") == "text/plain; charset=utf-8"
    assert mime.content_type("a.json", b"") == "application/json"
    assert mime.content_type(None, b"<!DOCTYPE html><p>") == "text/html"
    assert mime.content_type(None, b'<svg xmlns="http://www.w3.org/2000/svg">') == "image/svg+xml"
    assert mime.content_type(None, b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert mime.content_type(None, "zażółć".encode()[:-1]) == "text/plain; charset=utf-8"
    assert mime.content_type("noext", b"\x00\xff\x10") == "application/octet-stream"


# ------------------------------------------------------------------ CAR header


def test_car_header_round_trip() -> None:
    for text in ("bafkqaaa", "QmYhmPjhFjYFyaoiuNzYv8WGavpSRDwdHWe5B4M5du5Rtk"):
        root = cid_from_str(text)
        header, sections = read_car(car_header(root))
        assert header == {"roots": [Link(root)], "version": 1} and sections == []
        n = car_header(root)
        assert libipld.decode_dag_cbor(n[1:])["version"] == 1


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("abXZ09-._~ \"\\é%/+=&;")), max_size=16))
def test_content_disposition_fast_path_matches_the_general_rule(name: str) -> None:
    if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name:
        ascii_name = name
    else:
        ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)
    expected = f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    assert params.content_disposition("inline", name) == expected


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("ab=&%+2F; é")), max_size=12))
def test_query_parsing_fast_path_matches_parse_qsl(query: str) -> None:
    first: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        first.setdefault(key, value)
    assert _query_of(query) == first
