"""Links of blocks by codec (against the dag-cbor reference implementation) and the iterative DAG walk."""

from __future__ import annotations

import json
from pathlib import Path

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID

from blockstore.car import CarReader
from blockstore.cid import DAG_CBOR, DAG_PB, IDENTITY, RAW, cid_for, cid_from_str, cid_to_str
from blockstore.dagpb import PBLink, PBNode, encode_pbnode
from blockstore.dagwalk import BlockNotFound, walk_dag
from blockstore.links import DAG_JSON, LinksError, iter_links

GW = Path(__file__).resolve().parents[1].joinpath("fixtures", "gateway-conformance")


def load_car(path: Path) -> tuple[list[bytes], dict[bytes, bytes]]:
    with path.open("rb") as fh:
        r = CarReader(fh)
        blocks = {b.cid: b.data for b in r}
        return r.roots, blocks


# ---------------------------------------------------------------- links
def test_raw_has_no_links() -> None:
    assert iter_links(cid_for(b"abc"), b"abc") == []


def test_dag_pb_links_in_order() -> None:
    kids = [cid_for(bytes([i])) for i in range(5)]
    block = encode_pbnode(PBNode([PBLink(k, b"n%d" % i, 1) for i, k in enumerate(kids)], b"\x08\x01"))
    assert iter_links(cid_for(block, codec=DAG_PB, version=0), block) == kids


def test_bad_dag_pb_is_a_clear_error() -> None:
    with pytest.raises(LinksError, match="invalid dag-pb block"):
        iter_links(cid_for(b"\xff\xff", codec=DAG_PB), b"\xff\xff")


def test_identity_cid_links() -> None:
    child = cid_for(b"child")
    block = encode_pbnode(PBNode([PBLink(child, b"", 5)], None))
    ident = cid_for(block, codec=DAG_PB, mh_code=IDENTITY)
    assert iter_links(ident, block) == [child]


def test_unknown_codec_is_a_clear_error() -> None:
    with pytest.raises(LinksError, match="unknown codec 0x300"):
        iter_links(cid_for(b"x", codec=0x300), b"x")


def test_bad_dag_cbor() -> None:
    with pytest.raises(LinksError, match="invalid dag-cbor block"):
        iter_links(cid_for(b"\xa1", codec=DAG_CBOR), b"\xa1")


def test_dag_json_links() -> None:
    child = cid_for(b"c")
    doc = json.dumps({"a": [{"/": cid_to_str(child)}, {"/": {"bytes": "AAA"}}], "b": 1}).encode()
    assert iter_links(cid_for(doc, codec=DAG_JSON), doc) == [child]


def test_dag_cbor_fixture_links() -> None:
    roots, blocks = load_car(GW / "path_gateway_dag/dag-cbor-traversal.car")
    assert iter_links(roots[0], blocks[roots[0]]) == [cid_from_str("bafyreig5alecq2l2akgajxywgnv22kuxh6xcagsnelepylqovt4t5jxt6u")]


# values for the dag-cbor reference encoder, with CIDs and byte strings mixed in
_cids = st.builds(lambda d, c: cid_for(d, codec=c), st.binary(max_size=8), st.sampled_from([RAW, DAG_CBOR, DAG_PB]))
_leaves = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=8),
    st.binary(max_size=40),
    st.booleans(),
    st.none(),
    _cids.map(lambda c: CID.decode(c)),
)
_values = st.recursive(
    _leaves, lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=5), kids, max_size=4)), max_leaves=25
)


def _reference_cids(v: object) -> list[bytes]:
    if isinstance(v, CID):
        return [bytes(v)]
    if isinstance(v, list):
        return [c for x in v for c in _reference_cids(x)]
    if isinstance(v, dict):
        out: list[bytes] = []
        for k in sorted(v, key=lambda k: (len(k.encode()), k.encode())):  # DAG-CBOR map key order
            out += _reference_cids(v[k])
        return out
    return []


@settings(max_examples=150, deadline=None)
@given(value=_values)
def test_dag_cbor_links_match_reference(value: object) -> None:
    block = dag_cbor.encode(value)
    assert iter_links(cid_for(block, codec=DAG_CBOR), block) == _reference_cids(value)


# ---------------------------------------------------------------- walk
def test_walk_order_matches_kubo_car_order() -> None:
    """kubo wrote these CARs in DFS order without duplicates: the walk must give the same order."""
    index = json.loads((GW / "index.json").read_text())["cars"]
    for name, info in index.items():
        roots, blocks = load_car(GW / name)
        got = [cid_to_str(c) for c, _d in walk_dag(roots[0], blocks.get, skip_missing=True)]
        assert got == info["blocks_in_file_order"], name
        if not name.startswith("trustless_gateway_car/single-layer-hamt") and "dag-json" not in name:
            # the fixture index also lists the walk without deduplication
            again = [cid_to_str(c) for c, _d in walk_dag(roots[0], blocks.get, skip_missing=True, dedupe=False)]
            expected = [c for c in info["dfs_order_from_root"] if not c.endswith("[MISSING]")]
            assert again == expected, name


def test_walk_missing_block() -> None:
    roots, blocks = load_car(GW / "trustless_gateway_car/file-3k-and-3-blocks-missing-block.car")
    missing = cid_from_str("QmSNLTo6Wv9dfroVaw7MFYjLqf9ho7PKrgsjdzYDtv8h1W")
    with pytest.raises(BlockNotFound) as ei:
        list(walk_dag(roots[0], blocks.get))
    assert ei.value.cid == missing and "QmSNLTo6Wv9dfroVaw7MFYjLqf9ho7PKrgsjdzYDtv8h1W" in str(ei.value)
    assert len(list(walk_dag(roots[0], blocks.get, skip_missing=True))) == 3


def _chain(depth: int) -> tuple[bytes, dict[bytes, bytes]]:
    blocks: dict[bytes, bytes] = {}
    leaf = b"bottom"
    cid = cid_for(leaf)
    blocks[cid] = leaf
    for _ in range(depth):
        block = encode_pbnode(PBNode([PBLink(cid, b"", None)], None))
        cid = cid_for(block, codec=DAG_PB)
        blocks[cid] = block
    return cid, blocks


def test_deep_dag_does_not_recurse() -> None:
    root, blocks = _chain(20_000)
    assert sum(1 for _ in walk_dag(root, blocks.get)) == 20_001


def test_max_depth_and_dedupe() -> None:
    leaf = b"shared"
    lc = cid_for(leaf)
    block = encode_pbnode(PBNode([PBLink(lc, b"a", 6), PBLink(lc, b"b", 6)], b"\x08\x01"))
    root = cid_for(block, codec=DAG_PB)
    blocks = {root: block, lc: leaf}
    assert [c for c, _ in walk_dag(root, blocks.get)] == [root, lc]
    assert [c for c, _ in walk_dag(root, blocks.get, dedupe=False)] == [root, lc, lc]
    assert [c for c, _ in walk_dag(root, blocks.get, max_depth=0)] == [root]


def test_walk_is_lazy() -> None:
    root, blocks = _chain(50)
    reads: list[bytes] = []

    def get(c: bytes) -> bytes | None:
        reads.append(c)
        return blocks.get(c)

    it = walk_dag(root, get)
    next(it)
    next(it)
    assert len(reads) == 2


def test_identity_blocks_come_from_the_cid() -> None:
    inline = cid_for(b"tiny", mh_code=IDENTITY)
    block = encode_pbnode(PBNode([PBLink(inline, b"t", 4)], b"\x08\x01"))
    root = cid_for(block, codec=DAG_PB)
    assert list(walk_dag(root, {root: block}.get)) == [(root, block), (inline, b"tiny")]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), codec=st.sampled_from([DAG_PB, DAG_CBOR, DAG_JSON, RAW]))
def test_garbage_blocks_fail_only_with_links_error(data: bytes, codec: int) -> None:
    try:
        links = iter_links(cid_for(data, codec=codec), data)
    except LinksError:
        return
    assert all(isinstance(c, bytes) for c in links)
