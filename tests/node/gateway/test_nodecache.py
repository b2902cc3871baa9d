"""The cache of decoded small nodes: decode once, reuse by CID, bounded by entries and bytes, no large nodes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.cid import DAG_PB, cid_for
from blockstore.dagpb import PBLink, PBNode, encode_pbnode
from blockstore.unixfs import DIRECTORY, FILE, UnixFSData, encode_unixfs
from node.gateway.errors import GatewayError
from node.gateway.lru import SizedLRU
from node.gateway.nodecache import ENTRY_OVERHEAD, MAX_BLOCK, DecodedNode, NodeCache, decoded


def _pb(fs: UnixFSData | None, links: list[PBLink] | None = None) -> tuple[bytes, bytes]:
    """(CIDv1 dag-pb, block) of a node with ``fs`` as its Data."""
    block = encode_pbnode(PBNode(links or [], encode_unixfs(fs) if fs is not None else None))
    return cid_for(block, DAG_PB), block


def _file(data: bytes, filesize: int | None = None) -> tuple[bytes, bytes]:
    return _pb(UnixFSData(FILE, data=data, filesize=len(data) if filesize is None else filesize))


def test_a_small_node_is_decoded_once_and_reused() -> None:
    cache = NodeCache()
    cid, block = _file(b"hello\n")
    first = decoded(cache, cid, block)
    assert first.inline == b"hello\n" and first.fs is not None and first.fs.type == FILE
    assert decoded(cache, cid, block) is first
    assert len(cache) == 1 and cache.bytes == first.cost == 2 * len(block) + ENTRY_OVERHEAD


def test_a_large_node_is_decoded_but_not_kept() -> None:
    cache = NodeCache()
    cid, block = _file(b"x" * (MAX_BLOCK + 1))
    node = decoded(cache, cid, block)
    assert node.inline == b"x" * (MAX_BLOCK + 1)
    assert len(cache) == 0 and cache.bytes == 0
    assert decoded(cache, cid, block) is not node  # decoded again: nothing was kept


def test_inline_content_only_for_a_whole_one_block_file() -> None:
    child = cid_for(b"chunk")
    with_links = _pb(UnixFSData(FILE, data=b"", filesize=5, blocksizes=[5]), [PBLink(child, b"", 5)])
    wrong_size = _file(b"abc", filesize=10)
    directory = _pb(UnixFSData(DIRECTORY))
    no_data = _pb(None)
    for cid, block in (with_links, wrong_size, directory, no_data):
        assert decoded(None, cid, block).inline is None
    assert decoded(None, *_file(b"")).inline == b""


def test_a_corrupt_block_is_500_and_not_kept() -> None:
    cache = NodeCache()
    block = b"\xff\xff not dag-pb"
    with pytest.raises(GatewayError) as info:
        decoded(cache, cid_for(block, DAG_PB), block)
    assert info.value.status == 500
    assert len(cache) == 0


def test_a_flood_of_distinct_cids_does_not_grow_the_cache() -> None:
    cache = NodeCache(max_entries=64, max_bytes=64 * 1024)
    for i in range(2000):
        decoded(cache, *_file(i.to_bytes(4, "big") * 200))
        assert len(cache) <= 64 and cache.bytes <= 64 * 1024
    # the most recent ones are what is kept
    cid, block = _file((1999).to_bytes(4, "big") * 200)
    assert cache.get(cid) is not None


@settings(max_examples=200, deadline=None)
@given(
    max_entries=st.integers(1, 8),
    max_bytes=st.integers(1, 40_000),
    ops=st.lists(st.tuples(st.sampled_from(["put", "get"]), st.integers(0, 15), st.integers(0, 20_000)), max_size=60),
)
def test_sized_lru_bounds_and_order(max_entries: int, max_bytes: int, ops: list[tuple[str, int, int]]) -> None:
    cache: SizedLRU[int, str] = SizedLRU(max_entries, max_bytes)
    model: list[tuple[int, int]] = []  # (key, cost), least recently used first
    for op, key, cost in ops:
        present = [k for k, _ in model]
        if op == "get":
            got = cache.get(key)
            assert (got is not None) == (key in present)
            if got is not None:
                assert got == f"v{key}"
                model.append(model.pop(present.index(key)))
            continue
        cache.put(key, f"v{key}", cost)
        if key not in present and cost <= max_bytes:
            model.append((key, cost))
            while len(model) > max_entries or sum(c for _, c in model) > max_bytes:
                model.pop(0)
        assert len(cache) <= max_entries and cache.bytes <= max_bytes
        assert cache.bytes == sum(c for _, c in model)
        assert cache.keys() == [k for k, _ in model]


def test_node_cache_keeps_only_small_blocks() -> None:
    cache = NodeCache()
    small = DecodedNode(b"a", PBNode([], None), None, MAX_BLOCK)
    large = DecodedNode(b"b", PBNode([], None), None, MAX_BLOCK + 1)
    cache.keep(small)
    cache.keep(large)
    assert cache.keys() == [b"a"] and cache.bytes == small.cost
