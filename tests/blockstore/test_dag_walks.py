"""DAG walks of the kubo RPC: ``refs`` edges (kubo's order and pruning), indirect pins, ``dag resolve`` paths."""

from __future__ import annotations

from pathlib import Path

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID

from blockstore.cid import DAG_CBOR, DAG_PB, RAW, cid_for, cid_to_str
from blockstore.dagpath import NoLink, resolve_to_last
from blockstore.dagpb import PBLink, PBNode, encode_pbnode
from blockstore.db import open_db
from blockstore.indirect import find_indirect, iter_indirect
from blockstore.pins import DIRECT, RECURSIVE, Pins
from blockstore.refs import RefWalker
from blockstore.visited import VisitedSet, scratch_keys


def build_dag(shape: list[list[int]]) -> tuple[list[bytes], dict[bytes, bytes]]:
    """Node i links (in order, repeats allowed) to nodes j > i of ``shape[i]``; leaves are raw blocks."""
    n = len(shape)
    cids: list[bytes] = [b""] * n
    blocks: dict[bytes, bytes] = {}
    for i in reversed(range(n)):
        kids = [j for j in shape[i] if j > i]
        if not kids:
            data = f"leaf {i}".encode()
            cids[i] = cid_for(data, codec=RAW)
        else:
            links = [PBLink(cids[j], f"l{k}".encode(), 1) for k, j in enumerate(kids)]
            data = encode_pbnode(PBNode(links, f"node {i}".encode()))
            cids[i] = cid_for(data, codec=DAG_PB, version=0)
        blocks[cids[i]] = data
    return cids, blocks


def kubo_refs(root: bytes, blocks: dict[bytes, bytes], max_depth: int, unique: bool) -> list[tuple[bytes, bytes, str]]:
    """A direct, recursive transcription of kubo's RefWriter (core/commands/refs.go) as the reference."""
    from blockstore.refs import named_links

    seen: dict[bytes, int] = {}
    out: list[tuple[bytes, bytes, str]] = []

    def visit(c: bytes, depth: int) -> tuple[bool, bool]:
        at_max = max_depth >= 0 and depth == max_depth
        if max_depth >= 0 and depth > max_depth:
            return False, False
        if not unique:
            return not at_max, True
        old = seen.get(c)
        if old is not None and (max_depth < 0 or old <= depth):
            return False, False
        seen[c] = depth
        return not at_max, old is None

    def rec(c: bytes, depth: int) -> None:
        for child, name in named_links(c, blocks[c]):
            deeper, write = visit(child, depth + 1)
            if write:
                out.append((c, child, name))
            if deeper:
                rec(child, depth + 1)

    rec(root, 0)
    return out


shapes = st.integers(2, 9).flatmap(
    lambda n: st.lists(st.lists(st.integers(0, n - 1), max_size=4), min_size=n, max_size=n)
)


@given(shapes, st.integers(-1, 4), st.booleans(), st.integers(1, 3))
@settings(max_examples=200, deadline=None)
def test_refs_match_kubos_algorithm(tmp_path_factory, shape, max_depth, unique, limit) -> None:  # type: ignore[no-untyped-def]
    cids, blocks = build_dag(shape)
    db = open_db(tmp_path_factory.mktemp("refs") / "db")
    walker = RefWalker(blocks.get, max_depth=max_depth, unique=unique, seen=VisitedSet(db, memory_limit=limit))
    try:
        assert list(walker.walk(cids[0])) == kubo_refs(cids[0], blocks, max_depth, unique)
    finally:
        walker.close()
    assert list(scratch_keys(db)) == []
    db.close()


def test_refs_stop_at_a_missing_block() -> None:
    cids, blocks = build_dag([[1, 2], [], []])
    del blocks[cids[2]]
    walker = RefWalker(blocks.get)
    edges = []
    with pytest.raises(LookupError) as info:
        for edge in walker.walk(cids[0]):
            edges.append(edge)
    assert edges == [(cids[0], cids[1], "l0")] and info.value.cid == cids[2]  # type: ignore[attr-defined]


def test_indirect_pins_are_found_and_listed(tmp_path: Path) -> None:
    cids, blocks = build_dag([[1, 2], [3], [3, 4], [], [], [6], []])
    db = open_db(tmp_path / "db")
    pins = Pins(db)
    pins.add(cids[0], RECURSIVE)
    pins.add(cids[5], RECURSIVE)
    pins.add(cids[3], DIRECT)  # also inside cids[0]'s DAG
    found = find_indirect(pins, blocks.get, [cids[4], cids[6], cids[3], cids[1], b"\x01\x55nope"], db)
    assert found == {cids[4]: cids[0], cids[6]: cids[5], cids[3]: cids[0], cids[1]: cids[0]}
    listed = list(iter_indirect(pins, blocks.get, db))
    assert sorted(listed) == sorted([cids[1], cids[2], cids[4], cids[6]])  # pinned ones (3) are not indirect
    assert len(listed) == len(set(listed))
    assert list(scratch_keys(db)) == []
    db.close()


def test_resolve_to_last_block_and_remainder() -> None:
    cids, blocks = build_dag([[1, 2], [], []])
    inner = dag_cbor.encode({"deep": {"list": [10, CID.decode(cids[0])]}, "n": 1})
    inner_cid = cid_for(inner, codec=DAG_CBOR)
    outer = dag_cbor.encode({"child": CID.decode(inner_cid), "x": {"y": "z"}})
    outer_cid = cid_for(outer, codec=DAG_CBOR)
    blocks.update({inner_cid: inner, outer_cid: outer})
    get = blocks.get
    assert resolve_to_last(get, outer_cid, []) == (outer_cid, [])
    assert resolve_to_last(get, outer_cid, ["x", "y"]) == (outer_cid, ["x", "y"])
    assert resolve_to_last(get, outer_cid, ["child"]) == (inner_cid, [])
    assert resolve_to_last(get, outer_cid, ["child", "deep", "list", "0"]) == (inner_cid, ["deep", "list", "0"])
    assert resolve_to_last(get, outer_cid, ["child", "deep", "list", "1", "l1"]) == (cids[2], [])
    with pytest.raises(NoLink, match=f'no link named "nope" under {cid_to_str(inner_cid)}'):
        resolve_to_last(get, outer_cid, ["child", "nope"])
    with pytest.raises(NoLink, match=f'no link named "l9" under {cid_to_str(cids[0])}'):
        resolve_to_last(get, cids[0], ["l9"])
    with pytest.raises(NoLink):
        resolve_to_last(get, cids[1], ["anything"])  # a raw block has no links
