"""HAMT shards: hash slots, bitfields, canonical building, lookup and iteration over a real fixture."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.cid import cid_from_str
from blockstore.dagpb import PBLink, PBNode, decode_pbnode, encode_pbnode
from blockstore.hamt import (
    HamtError,
    bitfield_decode,
    bitfield_encode,
    build_hamt,
    hamt_find,
    hamt_iter,
    hamt_order,
    hamt_slot,
    slot_prefix,
)
from blockstore.unixfs import DIRECTORY, UnixFSData, encode_unixfs

FIXTURES = Path(__file__).resolve().parents[1].joinpath("fixtures")
HAMT_CAR = FIXTURES / "gateway-conformance/trustless_gateway_car/single-layer-hamt-with-multi-block-files.car"
HAMT_ROOT = cid_from_str("bafybeidbclfqleg2uojchspzd4bob56dqetqjsj27gy2cq3klkkgxtpn4i")
FILE_CID = cid_from_str("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")


def test_slot_vectors() -> None:
    assert [hamt_slot(b"1.txt", d) for d in (0, 1)] == [0x07, 0xC1]
    assert [hamt_slot(b"685.txt", d) for d in (0, 1)] == [0xFD, 0xE3]


def test_slot_with_smaller_fanout_uses_the_top_bits() -> None:
    assert hamt_slot(b"1.txt", 0, 16) == 0x0
    assert hamt_slot(b"1.txt", 1, 16) == 0x7
    assert hamt_slot(b"685.txt", 0, 16) == 0xF
    with pytest.raises(HamtError, match="ran out of hash bits"):
        hamt_slot(b"x", 8, 256)
    with pytest.raises(HamtError, match="power of two"):
        hamt_slot(b"x", 0, 100)


def test_prefixes() -> None:
    assert slot_prefix(7) == b"07"
    assert slot_prefix(0xC1) == b"C1"
    assert slot_prefix(3, 16) == b"3"
    assert slot_prefix(3, 1024) == b"003"


def test_bitfield_big_endian_with_leading_zeros_stripped() -> None:
    assert bitfield_encode([]) == b""
    assert bitfield_encode([0]) == b"\x01"
    assert bitfield_encode([8, 1]) == b"\x01\x02"
    assert bitfield_encode([255]) == b"\x80" + b"\x00" * 31
    assert bitfield_decode(b"\x01\x02") == [1, 8]
    with pytest.raises(HamtError):
        bitfield_decode(b"\x01" * 33)
    with pytest.raises(HamtError):
        bitfield_decode(b"\x01\x00", fanout=8)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=255)))
def test_bitfield_round_trip(slots: set[int]) -> None:
    assert bitfield_decode(bitfield_encode(sorted(slots))) == sorted(slots)


def _fixture_blocks(car_blocks: Callable[[Path], dict[bytes, bytes]]) -> dict[bytes, bytes]:
    return car_blocks(HAMT_CAR)


def test_fixture_iter_lists_every_entry(car_blocks: Callable[[Path], dict[bytes, bytes]]) -> None:
    blocks = _fixture_blocks(car_blocks)
    root = decode_pbnode(blocks[HAMT_ROOT])
    names = [name for name, _link in hamt_iter(blocks.__getitem__, root)]
    assert sorted(names) == sorted(f"{i}.txt".encode() for i in range(1, 1001))


def test_fixture_find_fetches_only_the_path(car_blocks: Callable[[Path], dict[bytes, bytes]]) -> None:
    blocks = _fixture_blocks(car_blocks)
    fetched: list[bytes] = []

    def get(cid: bytes) -> bytes:
        fetched.append(cid)
        return blocks[cid]

    root = decode_pbnode(blocks[HAMT_ROOT])
    link = hamt_find(get, root, b"685.txt")
    assert link is not None and link.name is not None and link.name.endswith(b"685.txt")
    assert 1 <= len(fetched) <= 2
    assert hamt_find(get, root, b"1001.txt") is None
    assert hamt_find(get, root, b"") is None


def test_rebuilding_the_fixture_is_byte_exact(car_blocks: Callable[[Path], dict[bytes, bytes]]) -> None:
    blocks = _fixture_blocks(car_blocks)
    root = decode_pbnode(blocks[HAMT_ROOT])
    entries = [(name, link.hash, link.tsize or 0) for name, link in hamt_iter(blocks.__getitem__, root)]
    random.Random(7).shuffle(entries)
    built: dict[bytes, bytes] = {}
    cid, size = build_hamt(entries, built.__setitem__, cid_version=1)
    assert cid == HAMT_ROOT
    for c, data in built.items():
        assert blocks[c] == data
    assert len(built) == 237
    assert size == len(blocks[HAMT_ROOT]) + sum(link.tsize or 0 for link in root.links)


def test_build_is_independent_of_order_and_rejects_duplicates() -> None:
    entries = [(f"f{i}".encode(), b"\x12\x20" + bytes([i % 256]) * 32, i) for i in range(600)]
    a: dict[bytes, bytes] = {}
    b: dict[bytes, bytes] = {}
    ra = build_hamt(entries, a.__setitem__)
    rb = build_hamt(list(reversed(entries)), b.__setitem__)
    assert ra == rb and a == b
    assert all(hamt_find(a.__getitem__, decode_pbnode(a[ra[0]]), n).hash == c for n, c, _ in entries)  # type: ignore[union-attr]
    with pytest.raises(HamtError, match="duplicate"):
        build_hamt(entries + entries[:1], lambda c, d: None)


def test_lookup_rejects_nodes_that_are_not_shards() -> None:
    directory = PBNode([], encode_unixfs(UnixFSData(DIRECTORY)))
    with pytest.raises(HamtError, match="not a HAMT shard"):
        hamt_find(lambda c: b"", directory, b"a")
    with pytest.raises(HamtError, match="without UnixFS Data"):
        list(hamt_iter(lambda c: b"", PBNode([], None)))
    bad = PBNode([PBLink(FILE_CID, b"07a", 1)], encode_unixfs(UnixFSData(5, data=b"\x03", hash_type=0x22, fanout=256)))
    with pytest.raises(HamtError, match="bitfield marks 2 slots"):
        list(hamt_iter(lambda c: b"", decode_pbnode(encode_pbnode(bad))))
    wrong_hash = PBNode([], encode_unixfs(UnixFSData(5, data=b"", hash_type=0x11, fanout=256)))
    with pytest.raises(HamtError, match="unsupported HAMT hash"):
        hamt_find(lambda c: b"", wrong_hash, b"a")


def test_hamt_order_matches_iteration_order() -> None:
    entries = [(f"name-{i}".encode(), b"\x12\x20" + bytes([i % 256]) * 32, 1) for i in range(700)]
    blocks: dict[bytes, bytes] = {}
    root, _size = build_hamt(entries, blocks.__setitem__)
    listed = [name for name, _link in hamt_iter(blocks.__getitem__, decode_pbnode(blocks[root]))]
    assert hamt_order([e[0] for e in reversed(entries)]) == listed
