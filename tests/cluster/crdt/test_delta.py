"""Delta encoding: round trips, link placement, and malformed input rejected clearly."""

from __future__ import annotations

import dag_cbor
import libipld
import multiformats
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.cid import DAG_CBOR, cid_for, codec_of
from cluster.crdt.delta import MAX_DELTA_SIZE, Delta, DeltaError, decode_delta

from .helpers import key


def _sample() -> Delta:
    return Delta(
        priority=3,
        links=(cid_for(b"h1", DAG_CBOR), cid_for(b"h2", DAG_CBOR)),
        elements=((key(1), b"\xa1avb"), (key(2), b"")),
        tombstones=((key(3), cid_for(b"d", DAG_CBOR)),),
    )


def test_round_trip_and_cid() -> None:
    d = _sample()
    cid, data = d.block()
    assert codec_of(cid) == DAG_CBOR and cid == cid_for(data, DAG_CBOR)
    assert decode_delta(data) == d


def test_only_links_are_ipld_links() -> None:
    """Keys and ids are strings, so pinned content is never a child of a delta."""
    d = _sample()
    node = dag_cbor.decode(d.encode())
    assert all(isinstance(link, multiformats.CID) for link in node["l"])
    for k, v in node["e"]:
        assert isinstance(k, str) and isinstance(v, bytes)
    for k, i in node["t"]:
        assert isinstance(k, str) and isinstance(i, str)


def test_value_that_looks_like_a_cid_round_trips() -> None:
    value = cid_for(b"x")  # libipld encodes this as a tag-42 link
    d = Delta(1, (), ((key(1), value),), ())
    assert decode_delta(d.encode()).elements == ((key(1), value),)


def _enc(obj: object) -> bytes:
    return libipld.encode_dag_cbor(obj)


GOOD = {"v": 1, "p": 1, "l": [], "e": [["bafkqaaa", b"v"]], "t": []}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid DAG-CBOR"),
        (b"\xff\x00", "not valid DAG-CBOR"),
        (_enc([1, 2]), "must be a map"),
        (_enc({**GOOD, "v": 2}), "unsupported delta format version"),
        (_enc({**GOOD, "p": 0}), "priority must be an integer >= 1"),
        (_enc({**GOOD, "p": "1"}), "priority must be an integer >= 1"),
        (_enc({**GOOD, "l": "x"}), "field 'l' must be a list"),
        (_enc({**GOOD, "l": [b"\x05\x05"]}), "link is not a valid CID"),
        (_enc({**GOOD, "l": ["bafkqaaa"]}), "link is not a CID"),
        (_enc({**GOOD, "e": [["bafkqaaa"]]}), "element must be a [key, value bytes] pair"),
        (_enc({**GOOD, "e": [["nope", b"v"]]}), "element key is not a valid CID"),
        (_enc({**GOOD, "e": [[7, b"v"]]}), "element key must be a CID string"),
        (_enc({**GOOD, "t": [["bafkqaaa", "zz"]]}), "tombstone id is not a valid CID"),
        (_enc({**GOOD, "t": [["bafkqaaa"]]}), "tombstone must be a [key, id] pair"),
        (_enc({**GOOD, "e": []}), "neither elements nor tombstones"),
        (_enc({k: v for k, v in GOOD.items() if k != "t"}), "field 't' must be a list"),
        (b"\xa0" * (MAX_DELTA_SIZE + 1), "exceeds"),
    ],
)
def test_malformed_delta_gives_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(DeltaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_delta(data)


def test_duplicate_links_rejected() -> None:
    link = cid_for(b"h", DAG_CBOR)
    with pytest.raises(DeltaError, match="same head twice"):
        decode_delta(_enc({**GOOD, "l": [link, link]}))


def test_encode_rejects_zero_priority() -> None:
    with pytest.raises(DeltaError, match="priority"):
        Delta(0, (), ((key(1), b""),)).encode()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_delta_error(data: bytes) -> None:
    try:
        decode_delta(data)
    except DeltaError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_delta_only_raises_delta_error(data: st.DataObject) -> None:
    raw = bytearray(_sample().encode())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        decode_delta(bytes(raw))
    except DeltaError:
        pass


# ---------------------------------------------------------------- walking reads links only
def test_delta_links_checks_links_only() -> None:
    from cluster.crdt.delta import delta_links

    d = _sample()
    assert delta_links(d.encode()) == list(d.links)
    # a delta whose elements are bad still has its links read; decode_delta refuses it
    node = dag_cbor.decode(d.encode())
    node["e"] = [["not a cid", b"v"]]
    bad = dag_cbor.encode(node)
    assert delta_links(bad) == list(d.links)
    with pytest.raises(DeltaError, match="element key is not a valid CID"):
        decode_delta(bad)
    node["l"] = [b"\x01\x02"]
    with pytest.raises(DeltaError, match="link"):
        delta_links(dag_cbor.encode(node))
