"""dag-pb codec: known bytes, hypothesis round-trips, strict rejection of malformed blocks."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.dagpb import DagPBError, PBLink, PBNode, decode_pbnode, encode_pbnode, encode_varint, node_size

CID_V0 = b"\x12\x20" + hashlib.sha256(b"a").digest()
CID_V1 = b"\x01\x55\x12\x20" + hashlib.sha256(b"b").digest()

cids = st.binary(min_size=32, max_size=32).flatmap(
    lambda d: st.sampled_from([b"\x12\x20" + d, b"\x01\x70\x12\x20" + d, b"\x01\x55\x12\x20" + d])
)
links = st.builds(
    PBLink,
    cids,
    st.one_of(st.none(), st.binary(max_size=40)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=(1 << 64) - 1)),
)
nodes = st.builds(PBNode, st.lists(links, max_size=8), st.one_of(st.none(), st.binary(max_size=300)))


def test_empty_node_is_empty_bytes() -> None:
    assert encode_pbnode(PBNode([], None)) == b""
    assert decode_pbnode(b"") == PBNode([], None)


def test_links_come_before_data_and_fields_in_order() -> None:
    block = encode_pbnode(PBNode([PBLink(CID_V0, b"", 5)], b"\x08\x01"))
    assert block == b"\x12\x28\x0a\x22" + CID_V0 + b"\x12\x00\x18\x05" + b"\x0a\x02\x08\x01"


def test_encoder_keeps_link_order() -> None:
    node = PBNode([PBLink(CID_V0, b"b", 1), PBLink(CID_V1, b"a", 2)], None)
    assert decode_pbnode(encode_pbnode(node)).links == node.links


@settings(max_examples=300, deadline=None)
@given(nodes)
def test_round_trip(node: PBNode) -> None:
    block = encode_pbnode(node)
    assert decode_pbnode(block) == node
    assert encode_pbnode(decode_pbnode(block)) == block
    assert node_size(node) == len(block)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_dagpb_error(data: bytes) -> None:
    try:
        node = decode_pbnode(data)
    except DagPBError:
        return
    assert decode_pbnode(encode_pbnode(node)) == node
    if node.data is None or data.endswith(b"\x0a" + encode_varint(len(node.data)) + node.data):
        assert encode_pbnode(node) == data


def _link_body(*fields: bytes) -> bytes:
    body = b"".join(fields)
    return b"\x12" + encode_varint(len(body)) + body


HASH_FIELD = b"\x0a\x22" + CID_V0


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x1a\x00", "unknown PBNode field 3"),
        (b"\x08\x01", "wire type 0"),
        (b"\x0a\x00\x0a\x00", "duplicate PBNode Data"),
        (_link_body(HASH_FIELD) + b"\x0a\x00" + _link_body(HASH_FIELD), "interleaved with Data"),
        (_link_body(b"\x12\x00"), "without Hash"),
        (_link_body(b"\x12\x00", HASH_FIELD), "out-of-order PBLink field 1"),
        (_link_body(HASH_FIELD, b"\x18\x01\x12\x00"), "out-of-order PBLink field 2"),
        (_link_body(HASH_FIELD, HASH_FIELD), "duplicate PBLink field 1"),
        (_link_body(HASH_FIELD, b"\x22\x00"), "unknown PBLink field 4"),
        (_link_body(HASH_FIELD, b"\x1a\x00"), "PBLink Tsize has wire type 2"),
        (_link_body(b"\x0a\x03abc"), "not a CID"),
        (_link_body(b"\x0a\x23" + CID_V0 + b"\x00"), "trailing bytes"),
        (b"\x0a\x05ab", "runs past the end"),
        (b"\x0a", "truncated varint"),
        (b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "longer than 10 bytes"),
    ],
)
def test_strict_decoder_rejects(block: bytes, message: str) -> None:
    with pytest.raises(DagPBError, match=message):
        decode_pbnode(block)


def test_link_without_name_or_tsize_round_trips() -> None:
    node = PBNode([PBLink(CID_V1, None, None)], b"")
    block = encode_pbnode(node)
    assert block == b"\x12\x26\x0a\x24" + CID_V1 + b"\x0a\x00"
    assert decode_pbnode(block) == node


def test_encoder_rejects_bad_values() -> None:
    with pytest.raises(DagPBError):
        encode_pbnode(PBNode([PBLink(b"", b"", 0)], None))
    with pytest.raises(DagPBError):
        encode_pbnode(PBNode([PBLink(CID_V0, b"", -1)], None))
    with pytest.raises(DagPBError):
        encode_pbnode(PBNode([PBLink(CID_V0, b"", 1 << 64)], None))


def test_decodes_memoryview_and_bytearray() -> None:
    block = encode_pbnode(PBNode([PBLink(CID_V0, b"x", 1)], b"d"))
    assert decode_pbnode(memoryview(block)) == decode_pbnode(bytearray(block)) == decode_pbnode(block)


@pytest.mark.parametrize("name_len", [0, 1, 127, 128, 300])
@pytest.mark.parametrize("tsize", [None, 0, 127, 128, (1 << 63) - 1, (1 << 63), (1 << 64) - 1])
def test_long_names_and_big_sizes_round_trip(name_len: int, tsize: int | None) -> None:
    node = PBNode([PBLink(CID_V0, b"n" * name_len, tsize), PBLink(CID_V1, b"m" * name_len, tsize)], b"\x08\x01")
    assert decode_pbnode(encode_pbnode(node)) == node


def test_truncated_link_inside_fast_path_is_rejected() -> None:
    body = b"\x0a\x22" + CID_V0 + b"\x12\x05ab"
    with pytest.raises(DagPBError):
        decode_pbnode(b"\x12" + encode_varint(len(body)) + body)
    with pytest.raises(DagPBError, match="runs past the end"):
        decode_pbnode(b"\x12\x30" + b"\x0a\x22" + CID_V0)


def test_data_before_links_is_accepted() -> None:
    links = [PBLink(CID_V0, b"a", 1), PBLink(CID_V1, b"b" * 200, 2)]
    data_first = b"\x0a\x02\x08\x01" + encode_pbnode(PBNode(links, None))
    assert decode_pbnode(data_first) == PBNode(links, b"\x08\x01")
