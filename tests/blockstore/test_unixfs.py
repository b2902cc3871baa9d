"""UnixFS Data codec: spec byte examples, hypothesis round-trips, packed blocksizes, strictness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.unixfs import (
    DIRECTORY,
    FILE,
    HAMT_SHARD,
    SYMLINK,
    UnixFSData,
    UnixFSError,
    decode_unixfs,
    encode_unixfs,
)

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
datas = st.builds(
    UnixFSData,
    type=st.integers(min_value=0, max_value=5),
    data=st.one_of(st.none(), st.binary(max_size=64)),
    filesize=st.one_of(st.none(), u64),
    blocksizes=st.lists(u64, max_size=6),
    hash_type=st.one_of(st.none(), u64),
    fanout=st.one_of(st.none(), u64),
    mode=st.one_of(st.none(), st.integers(min_value=0, max_value=0xFFFFFFFF)),
    mtime=st.one_of(
        st.none(),
        st.tuples(
            st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
            st.one_of(st.none(), st.integers(min_value=1, max_value=999_999_999)),
        ),
    ),
)


def test_spec_examples() -> None:
    assert encode_unixfs(UnixFSData(DIRECTORY)) == b"\x08\x01"
    assert encode_unixfs(UnixFSData(SYMLINK, data=b"foo")) == b"\x08\x04\x12\x03foo"
    assert encode_unixfs(UnixFSData(FILE, data=b"hi", filesize=2)) == b"\x08\x02\x12\x02hi\x18\x02"
    root = UnixFSData(FILE, filesize=1026, blocksizes=[256, 256, 256, 256, 2])
    assert encode_unixfs(root) == bytes.fromhex("0802188208") + bytes.fromhex("208002") * 4 + b"\x20\x02"
    hamt = UnixFSData(HAMT_SHARD, data=b"\x01\x00", hash_type=0x22, fanout=256)
    assert encode_unixfs(hamt) == b"\x08\x05\x12\x02\x01\x00\x28\x22\x30\x80\x02"


@settings(max_examples=300, deadline=None)
@given(datas)
def test_round_trip(d: UnixFSData) -> None:
    b = encode_unixfs(d)
    assert decode_unixfs(b) == d
    assert encode_unixfs(decode_unixfs(b)) == b


def test_packed_blocksizes_are_read() -> None:
    packed = b"\x08\x02\x18\x03\x22\x03\x01\x01\x01"
    assert decode_unixfs(packed).blocksizes == [1, 1, 1]
    mixed = b"\x08\x02\x20\x05\x22\x02\x01\x02\x20\x07"
    assert decode_unixfs(mixed).blocksizes == [5, 1, 2, 7]


def test_mode_and_mtime() -> None:
    d = UnixFSData(FILE, filesize=0, mode=0o644, mtime=(-5, 123))
    b = encode_unixfs(d)
    assert b.endswith(b"\x42\x10\x08" + b"\xfb" + b"\xff" * 8 + b"\x01" + b"\x15\x7b\x00\x00\x00")
    assert decode_unixfs(b) == d


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "without Type"),
        (b"\x12\x00", "without Type"),
        (b"\x08\x09", "unknown UnixFS type 9"),
        (b"\x08\x01\x08\x01", "duplicate UnixFS field 1"),
        (b"\x08\x01\x48\x00", "unknown UnixFS field 9"),
        (b"\x08\x01\x12\x05ab", "runs past the end"),
        (b"\x0a\x00", "wire type 2"),
        (b"\x08\x02\x25\x00\x00\x00\x00", "blocksizes has wire type 5"),
        (b"\x08\x02\x22\x05\x01", "packed blocksizes"),
        (b"\x08\x02\x38\x80\x80\x80\x80\x10", "does not fit in 32 bits"),
        (b"\x08\x02\x42\x02\x15\x00", "truncated UnixTime nanos"),
        (b"\x08\x02\x42\x05\x15\x00\x00\x00\x00", "UnixTime nanos 0"),
        (b"\x08\x02\x42\x00", "without seconds"),
        (b"\x08\x02\x42\x02\x18\x00", "unknown UnixTime field 3"),
        (b"\x08", "truncated varint"),
    ],
)
def test_strict_decoder_rejects(data: bytes, message: str) -> None:
    with pytest.raises(UnixFSError, match=message):
        decode_unixfs(data)


def test_encoder_rejects_out_of_range() -> None:
    with pytest.raises(UnixFSError):
        encode_unixfs(UnixFSData(7))
    with pytest.raises(UnixFSError):
        encode_unixfs(UnixFSData(FILE, filesize=-1))
    with pytest.raises(UnixFSError):
        encode_unixfs(UnixFSData(FILE, mode=1 << 32))
    with pytest.raises(UnixFSError):
        encode_unixfs(UnixFSData(FILE, mtime=(0, 0)))
    with pytest.raises(UnixFSError):
        encode_unixfs(UnixFSData(FILE, mtime=(1 << 63, None)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise(data: bytes) -> None:
    try:
        d = decode_unixfs(data)
    except UnixFSError:
        return
    assert decode_unixfs(encode_unixfs(d)) == d
