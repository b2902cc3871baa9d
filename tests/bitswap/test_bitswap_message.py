"""The bitswap message codec: exact bytes, round trips, strict rejection of bad input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitswap.message import (
    DONT_HAVE,
    HAVE,
    MAX_BLOCK_SIZE,
    MAX_MESSAGE_SIZE,
    V0_PREFIX,
    WANT_BLOCK,
    WANT_HAVE,
    Block,
    Message,
    MessageError,
    Presence,
    WantEntry,
    block_cid,
    block_prefix,
    decode_message,
    encode_message,
)
from blockstore.cid import DAG_CBOR, DAG_PB, RAW, cid_for, encode_varint

V12 = "/ipfs/bitswap/1.2.0"


def raw_cid(data: bytes) -> bytes:
    return cid_for(data, RAW)


def test_exact_bytes_of_a_small_message() -> None:
    cid = raw_cid(b"a")
    msg = Message(
        wantlist=[WantEntry(cid, priority=5, want_type=WANT_HAVE, send_dont_have=True)],
        full=True,
        presences=[Presence(cid, DONT_HAVE)],
    )
    entry = b"\x0a" + bytes([len(cid)]) + cid + b"\x10\x05" + b"\x20\x01" + b"\x28\x01"
    wantlist = b"\x0a" + bytes([len(entry)]) + entry + b"\x10\x01"
    presence = b"\x0a" + bytes([len(cid)]) + cid + b"\x10\x01"
    expected = b"\x0a" + bytes([len(wantlist)]) + wantlist + b"\x22" + bytes([len(presence)]) + presence
    assert encode_message(msg, V12) == expected
    assert decode_message(expected) == msg


def test_payload_block_and_prefix() -> None:
    data = b"hello world"
    cid = raw_cid(data)
    prefix = block_prefix(cid)
    assert prefix == b"\x01\x55\x12\x20"
    wire = encode_message(Message(blocks=[Block(prefix, data)]), V12)
    body = b"\x0a\x04" + prefix + b"\x12" + bytes([len(data)]) + data
    assert wire == b"\x1a" + bytes([len(body)]) + body
    decoded = decode_message(wire)
    assert block_cid(decoded.blocks[0].prefix, decoded.blocks[0].data) == cid


def test_v100_blocks_field_derives_cidv0() -> None:
    data = b"\x0a\x02\x08\x01"  # any bytes; a 1.0.0 block is CIDv0 by definition
    wire = encode_message(Message(blocks=[Block(V0_PREFIX, data)]), "/ipfs/bitswap/1.0.0")
    assert wire == b"\x12" + bytes([len(data)]) + data
    msg = decode_message(wire)
    assert block_cid(msg.blocks[0].prefix, msg.blocks[0].data) == b"\x12\x20" + hashlib.sha256(data).digest()


def test_old_protocols_drop_what_they_cannot_express() -> None:
    cid = raw_cid(b"x")
    msg = Message(
        wantlist=[WantEntry(cid, want_type=WANT_HAVE), WantEntry(cid, want_type=WANT_BLOCK, send_dont_have=True)],
        presences=[Presence(cid, HAVE)],
    )
    for proto in ("/ipfs/bitswap/1.1.0", "/ipfs/bitswap/1.0.0", "/ipfs/bitswap"):
        back = decode_message(encode_message(msg, proto))
        assert back.presences == []
        assert back.wantlist == [WantEntry(cid)]


def test_negative_priority_round_trips_as_int32() -> None:
    cid = raw_cid(b"p")
    msg = Message(wantlist=[WantEntry(cid, priority=-7)], pending_bytes=-1)
    assert decode_message(encode_message(msg)) == msg


cids = st.binary(min_size=0, max_size=64).map(raw_cid) | st.binary(max_size=64).map(
    lambda d: cid_for(d, DAG_PB, version=0)
)
entries = st.builds(
    WantEntry,
    cids,
    st.integers(-(2**31), 2**31 - 1),
    st.booleans(),
    st.sampled_from([WANT_BLOCK, WANT_HAVE]),
    st.booleans(),
)
blocks = st.binary(max_size=300).map(lambda d: Block(block_prefix(cid_for(d, DAG_CBOR)), d))
presences = st.builds(Presence, cids, st.sampled_from([HAVE, DONT_HAVE]))
messages = st.builds(
    Message,
    st.lists(entries, max_size=8),
    st.booleans(),
    st.lists(blocks, max_size=4),
    st.lists(presences, max_size=8),
    st.integers(-(2**31), 2**31 - 1),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg, V12)) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_message_error(data: bytes) -> None:
    try:
        decode_message(data)
    except MessageError:
        pass


@settings(max_examples=200, deadline=None)
@given(messages, st.data())
def test_truncation_never_crashes(msg: Message, data: st.DataObject) -> None:
    wire = encode_message(msg, V12)
    cut = data.draw(st.integers(0, len(wire)))
    try:
        decode_message(wire[:cut])
    except MessageError:
        pass


@pytest.mark.parametrize(
    "wire, problem",
    [
        (b"\x0a\x05\x0a\x03\x0a\x01", "overruns"),  # entry length past the end
        (b"\x0a\x02\x0a\x00", "missing CID"),  # entry without a CID
        (b"\x0a\x04\x0a\x02\x0a\x00", "missing CID"),
        (b"\x22\x02\x10\x01", "missing CID"),  # presence without a CID
        (b"\x22\x05\x0a\x03abc", "invalid CID"),
        (b"\x1a\x02\x12\x00", "without a CID prefix"),
        (b"\x0b", "wire type 3"),
        (b"\x08", "truncated varint"),
        (b"\x0a\x81", "truncated varint"),
        (b"\x00\x00", "field number 0"),
        (b"\x0a\x01\x10", "truncated varint"),
        (b"\x28" + b"\xff" * 11, "too long"),
        (b"\x28\x80\x80\x80\x80\x10", "out of int32 range"),
        (b"\x08\x01", "wire type 0, expected 2"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(wire: bytes, problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        decode_message(wire)


def test_bad_want_type_and_presence_type() -> None:
    cid = raw_cid(b"t")
    entry = b"\x0a" + bytes([len(cid)]) + cid + b"\x20\x07"
    wl = b"\x0a" + bytes([len(entry)]) + entry
    with pytest.raises(MessageError, match="unknown want type"):
        decode_message(b"\x0a" + bytes([len(wl)]) + wl)
    pres = b"\x0a" + bytes([len(cid)]) + cid + b"\x10\x02"
    with pytest.raises(MessageError, match="unknown type"):
        decode_message(b"\x22" + bytes([len(pres)]) + pres)


def test_oversize_cid_is_rejected() -> None:
    cid = b"\x01\x55\x00\xa0\x01" + b"x" * 160  # an identity CID of 165+ bytes
    pres = b"\x0a" + encode_varint(len(cid)) + cid
    with pytest.raises(MessageError):
        decode_message(b"\x22" + encode_varint(len(pres)) + pres)


def test_size_limits() -> None:
    big = b"\0" * (MAX_BLOCK_SIZE + 1)
    with pytest.raises(MessageError, match="exceeds the"):
        decode_message(b"\x12" + encode_varint(len(big)) + big)
    with pytest.raises(MessageError, match="message of"):
        decode_message(b"\0" * (MAX_MESSAGE_SIZE + 1))
    two = b"\1" * MAX_BLOCK_SIZE
    msg = Message(blocks=[Block(V0_PREFIX, two), Block(V0_PREFIX, two)])
    with pytest.raises(MessageError, match="encoded message"):
        encode_message(msg)
    # a block of exactly 2 MiB is fine
    assert len(decode_message(encode_message(Message(blocks=[Block(V0_PREFIX, two)]))).blocks[0].data) == MAX_BLOCK_SIZE


def test_unknown_fields_are_skipped() -> None:
    cid = raw_cid(b"u")
    pres = b"\x0a" + bytes([len(cid)]) + cid + b"\x3d\x01\x02\x03\x04" + b"\x41" + b"\0" * 8
    wire = b"\x22" + bytes([len(pres)]) + pres + b"\x32\x02hi"
    assert decode_message(wire).presences == [Presence(cid, HAVE)]


@pytest.mark.parametrize(
    "prefix, problem",
    [
        (b"\x02\x55\x12\x20", "unsupported CID version"),
        (b"\x01\x55\x99\x01\x20", "unsupported multihash"),
        (b"\x01\x55\x12\x10", "16-byte digest"),
        (b"\x00\x55\x12\x20", "CIDv0 block prefix"),
        (b"\x01\x55\x12\x20\x00", "trailing bytes"),
        (b"\x01\x55\x12", "truncated"),
    ],
)
def test_bad_prefixes(prefix: bytes, problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        block_cid(prefix, b"data")


def test_identity_prefix_derives_identity_cid() -> None:
    assert block_cid(b"\x01\x55\x00\x03", b"abc") == b"\x01\x55\x00\x03abc"
