"""The UnixFS walk cores (blockstore/unixfs_walk.py and the HAMT cores of blockstore/hamt.py).

Each core is driven here by a checking driver that answers ``Need`` from a dict and asserts the
protocol's invariant: an ``Ahead`` names blocks in the exact order of the ``Need``\\ s that follow for
them (a FIFO where each new hint goes to the front), and every announced block is needed.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import libipld
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore import hamt
from blockstore.cid import DAG_CBOR, DAG_PB, RAW, cid_for, codec_of
from blockstore.dagpb import PBLink, PBNode, decode_pbnode, encode_pbnode
from blockstore.importer import DirectoryBuilder, ImportParams, import_bytes
from blockstore.unixfs import DIRECTORY, FILE, UnixFSData, encode_unixfs
from blockstore.unixfs_walk import (
    CorruptNode,
    NotADirectory,
    NotAFile,
    PathNotFound,
    dir_entries,
    dir_find,
    file_range,
    resolve,
)
from blockstore.walk_protocol import Ahead, Need, Visited, Walk


class Store:
    """Blocks by CID, as an importer sink."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        self.blocks.update(blocks)
        return len(blocks)

    def put(self, cid: bytes, data: bytes) -> None:
        self.blocks[cid] = data


class Run:
    """The record of one checked run: outputs, the CIDs needed in order, and the result."""

    def __init__(self, walk: Walk[Any, Any], blocks: dict[bytes, bytes]) -> None:
        self.outputs: list[Any] = []
        self.needs: list[bytes] = []
        queue: deque[bytes] = deque()
        send: bytes | None = None
        while True:
            try:
                event = walk.send(send)
            except StopIteration as stop:
                self.result = stop.value
                break
            send = None
            if type(event) is Need:
                if queue and queue[0] == event.cid:
                    queue.popleft()
                else:
                    assert event.cid not in queue, "a Need out of the order its Ahead announced"
                self.needs.append(event.cid)
                send = blocks[event.cid]
            elif type(event) is Ahead:
                assert event.cids, "an empty Ahead"
                queue.extendleft(reversed(event.cids))
            else:
                self.outputs.append(event)
        assert not queue, "announced blocks that were never needed"

    def data(self) -> bytes:
        return b"".join(o for o in self.outputs if type(o) is bytes)

    def visited(self) -> list[bytes]:
        return [o.cid for o in self.outputs if type(o) is Visited]


# ---------------------------------------------------------------------- files
params_st = st.builds(
    ImportParams,
    cid_version=st.sampled_from([0, 1]),
    raw_leaves=st.booleans(),
    chunk_size=st.sampled_from([1, 5, 64, 256]),
    max_links=st.integers(2, 5),
    trickle=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(params=params_st, size=st.integers(0, 4000), data=st.data())
def test_any_range_of_a_random_file_equals_the_slice(params: ImportParams, size: int, data: st.DataObject) -> None:
    content = os.urandom(size)
    s = Store()
    root = import_bytes(content, s, params).cid
    for _ in range(4):
        start = data.draw(st.integers(0, size + 3))
        end = data.draw(st.integers(0, size + 3))
        run = Run(file_range(root, s.blocks[root], start, end), s.blocks)
        assert run.data() == content[start:end] and run.visited() == []
        with_visits = Run(file_range(root, s.blocks[root], start, end, visits=True), s.blocks)
        assert with_visits.data() == run.data() and with_visits.needs == run.needs
        assert with_visits.visited() == [root, *run.needs]  # every block read is output once, the root first
        if start < min(end, size):
            leaves = [c for c in [root, *run.needs] if codec_of(c) == RAW or not decode_pbnode(s.blocks[c]).links]
            first, last = start // params.chunk_size, (min(end, size) - 1) // params.chunk_size
            assert len(leaves) == last - first + 1  # only the leaves under the range are read


def test_whole_blocks_are_output_without_copies() -> None:
    leaf = os.urandom(1000)
    s = Store()
    root = import_bytes(leaf * 3, s, ImportParams(cid_version=1, raw_leaves=True, chunk_size=1000)).cid
    run = Run(file_range(root, s.blocks[root], 0, 3000), s.blocks)
    assert all(piece is s.blocks[cid_for(leaf)] for piece in run.outputs if type(piece) is bytes)


def _file_node(links: list[PBLink], fs: UnixFSData) -> tuple[bytes, bytes]:
    block = encode_pbnode(PBNode(links, encode_unixfs(fs)))
    return cid_for(block, codec=DAG_PB), block


def test_a_file_whose_sizes_lie_is_corrupt() -> None:
    leaf = b"abc"
    blocks = {cid_for(leaf): leaf}
    root, block = _file_node([PBLink(cid_for(leaf), b"", 3)], UnixFSData(FILE, blocksizes=[4]))
    blocks[root] = block
    with pytest.raises(CorruptNode, match="holds 3 bytes but its parent says 4"):
        Run(file_range(root, block, 0, 10), blocks)
    root, block = _file_node([PBLink(cid_for(leaf), b"", 3)], UnixFSData(FILE, blocksizes=[3, 3]))
    with pytest.raises(CorruptNode, match="1 links but 2 blocksizes"):
        Run(file_range(root, block, 0, 10), blocks)


def test_a_file_with_a_directory_inside_is_refused() -> None:
    d_cid, d_block = _file_node([], UnixFSData(DIRECTORY))
    root, block = _file_node([PBLink(d_cid, b"", 5)], UnixFSData(FILE, blocksizes=[5]))
    with pytest.raises(NotAFile, match="directory, not a file"):
        Run(file_range(root, block, 0, 5), {root: block, d_cid: d_block})
    with pytest.raises(NotAFile):
        Run(file_range(d_cid, d_block, 0, 5), {})
    cbor = libipld.encode_dag_cbor({"a": 1})
    with pytest.raises(NotAFile, match="0x71 block"):
        Run(file_range(cid_for(cbor, codec=DAG_CBOR), cbor, 0, 5), {})


# ---------------------------------------------------------------------- HAMT
names_st = st.sets(st.text(min_size=1, max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")), min_size=1, max_size=400)


@settings(max_examples=60, deadline=None)
@given(names=names_st, fanout=st.sampled_from([8, 16, 256]), others=st.lists(st.binary(max_size=12), max_size=20))
def test_hamt_lookup_finds_every_name_and_nothing_else(names: set[bytes], fanout: int, others: list[bytes]) -> None:
    s = Store()
    entries = [(n, cid_for(n), len(n)) for n in names]
    root, _size = hamt.build_hamt(entries, s.put, fanout=fanout)
    node = decode_pbnode(s.blocks[root])
    depth = 0
    for name in names:
        run = Run(hamt.shard_find(node, name), s.blocks)
        assert run.result is not None and run.result.hash == cid_for(name)
        assert run.visited() == run.needs  # the sub-shards on the path, each output once
        depth = max(depth, len(run.needs))
    for name in others:
        if name not in names:
            assert Run(hamt.shard_find(node, name), s.blocks).result is None
    listing = Run(hamt.shard_entries(node), s.blocks)
    listed = [o[0] for o in listing.outputs if type(o) is tuple]
    assert listed == hamt.hamt_order(list(names), fanout)
    assert sorted(listing.visited()) == sorted(c for c in s.blocks if c != root)  # every sub-shard once
    assert listing.visited() == listing.needs


def test_hamt_listing_is_pre_order() -> None:
    s = Store()
    entries = [(f"n{i}".encode(), cid_for(b"%d" % i), 1) for i in range(300)]
    root, _ = hamt.build_hamt(entries, s.put, fanout=8)
    seen: set[bytes] = {root}
    for event in Run(hamt.shard_entries(decode_pbnode(s.blocks[root])), s.blocks).outputs:
        if type(event) is Visited:
            seen.add(event.cid)
        else:
            # an entry is output only after the shard that holds it
            holder = [c for c in s.blocks if any(link.hash == event[1].hash and link.name == event[1].name for link in decode_pbnode(s.blocks[c]).links)]
            assert holder and holder[0] in seen


# ---------------------------------------------------------------------- directories
def _dir(links: list[PBLink], data: bytes | None = encode_unixfs(UnixFSData(DIRECTORY))) -> tuple[bytes, bytes]:
    block = encode_pbnode(PBNode(links, data))
    return cid_for(block, codec=DAG_PB), block


def test_plain_directory_and_data_less_node_list_and_find_their_links() -> None:
    a, b = cid_for(b"a"), cid_for(b"b")
    for cid, block in (_dir([PBLink(a, b"x", 1), PBLink(b, b"y", 1)]), _dir([PBLink(a, b"x", 1), PBLink(b, b"y", 1)], None)):
        run = Run(dir_entries(cid, block), {})
        assert [(n, link.hash) for n, link in run.outputs] == [(b"x", a), (b"y", b)] and run.needs == []
        found = Run(dir_find(cid, block, b"y"), {}).result
        assert found is not None and found.hash == b
        assert Run(dir_find(cid, block, b"z"), {}).result is None


def test_directory_walks_refuse_files_and_raw_blocks() -> None:
    f, fblock = _file_node([], UnixFSData(FILE, data=b"x"))
    with pytest.raises(NotADirectory, match="file, not a directory"):
        Run(dir_entries(f, fblock), {})
    with pytest.raises(NotADirectory, match="where/it is a file"):
        Run(dir_find(f, fblock, b"x", "where/it"), {})
    with pytest.raises(NotADirectory, match="raw block"):
        Run(dir_entries(cid_for(b"r", codec=RAW), b"r"), {})
    with pytest.raises(CorruptNode):
        Run(dir_entries(cid_for(b"\x0a\x05", codec=DAG_PB), b"\x0a\x05"), {})


def test_a_broken_hamt_is_corrupt() -> None:
    s = Store()
    root, _ = hamt.build_hamt([(f"n{i}".encode(), cid_for(b"%d" % i), 1) for i in range(100)], s.put, fanout=8)
    sub = next(link.hash for link in decode_pbnode(s.blocks[root]).links if len(link.name or b"") == 1)
    s.blocks[sub] = b"\x0a\x05"  # a sub-shard that does not decode
    with pytest.raises(CorruptNode, match="HAMT directory"):
        Run(dir_entries(root, s.blocks[root]), s.blocks)


# ---------------------------------------------------------------------- paths
@settings(max_examples=30, deadline=None)
@given(
    layout=st.dictionaries(st.sampled_from(["a", "b", "c", "ą", "d e"]), st.lists(st.text("xyz", min_size=1, max_size=6), min_size=1, max_size=40, unique=True), min_size=1, max_size=4),
    threshold=st.sampled_from([0, 5, 100]),
)
def test_every_path_of_a_random_tree_resolves(layout: dict[str, list[str]], threshold: int) -> None:
    """Two levels of plain or HAMT directories (threshold 0 never shards): every path resolves to its file."""
    s = Store()
    params = ImportParams(hamt_threshold=threshold) if threshold else ImportParams()
    top = DirectoryBuilder(params)
    files: dict[tuple[str, str], bytes] = {}
    for sub, names in layout.items():
        d = DirectoryBuilder(params)
        for name in names:
            r = import_bytes(f"{sub}/{name}".encode(), s, params)
            files[(sub, name)] = r.cid
            d.add_entry(name, r.cid, r.size)
        dr = d.finish(s)
        top.add_entry(sub, dr.cid, dr.size)
    root = top.finish(s).cid
    for (sub, name), cid in files.items():
        run = Run(resolve(root, [sub, name]), s.blocks)
        res = run.result
        assert res.cid == cid and res.rest == ()
        assert len(res.roots) == 3 and res.roots[0] == root and res.roots[-1] == cid
        assert [c for c, _ in res.trail] == run.needs and run.needs[0] == root and cid not in run.needs
        with pytest.raises(PathNotFound, match="no link named 'nope'"):
            Run(resolve(root, [sub, "nope"]), s.blocks)
        with pytest.raises(NotADirectory):
            Run(resolve(root, [sub, name, "deeper"]), s.blocks)
    assert Run(resolve(root, []), s.blocks).result.cid == root


def test_dag_cbor_paths_tell_links_from_bytes() -> None:
    target = cid_for(b"leaf", codec=RAW)
    blocks = {target: b"leaf"}
    doc = libipld.encode_dag_cbor({"a": {"b": target}, "bytes": target, "list": [1, target], "n": 5})
    # libipld encodes bytes as a byte string and a CID only when asked; rebuild the link as tag 42
    tagged = b"\xd8\x2a\x58" + bytes((len(target) + 1,)) + b"\x00" + target
    plain = b"\x58" + bytes((len(target),)) + target
    doc = (
        b"\xa4\x61a\xa1\x61b" + tagged + b"\x61n\x05" + b"\x64list\x82\x01" + tagged + b"\x65bytes" + plain
    )
    libipld.decode_dag_cbor(doc)  # valid, canonical DAG-CBOR
    root = cid_for(doc, codec=DAG_CBOR)
    blocks[root] = doc
    res = Run(resolve(root, ["a", "b"]), blocks).result
    assert (res.cid, res.rest, res.roots) == (target, (), [root, root, target])
    assert Run(resolve(root, ["list", "1"]), blocks).result.cid == target
    inside = Run(resolve(root, ["bytes"]), blocks).result  # a byte string that spells a CID is no link
    assert (inside.cid, inside.rest, inside.roots) == (root, ("bytes",), [root, root])
    assert Run(resolve(root, ["a"]), blocks).result.rest == ("a",)
    with pytest.raises(PathNotFound, match="no field 'nope'"):
        Run(resolve(root, ["nope"]), blocks)
    with pytest.raises(PathNotFound, match="no index '7'"):
        Run(resolve(root, ["list", "7"]), blocks)
    with pytest.raises(NotADirectory, match="not a map or list"):
        Run(resolve(root, ["n", "x"]), blocks)
    with pytest.raises(NotADirectory):
        Run(resolve(root, ["a", "b", "x"]), blocks)  # into a raw block
    bad = b"\xa2\x61b\x01\x61a\x02"  # keys out of canonical order
    blocks[cid_for(bad, codec=DAG_CBOR)] = bad
    with pytest.raises(CorruptNode, match="not valid DAG-CBOR"):
        Run(resolve(cid_for(bad, codec=DAG_CBOR), ["a"]), blocks)


def test_a_hamt_link_outside_the_slot_its_bitfield_marks_is_corrupt() -> None:
    slot = hamt.hamt_slot(b"abc", 0)
    wrong = hamt.slot_prefix((slot + 1) % 256) + b"abc"
    data = encode_unixfs(UnixFSData(5, data=hamt.bitfield_encode([slot]), hash_type=hamt.MURMUR3_X64_64, fanout=256))
    cid, block = _dir([PBLink(cid_for(b"v"), wrong, 1)], data)
    with pytest.raises(CorruptNode, match="does not start with the prefix of its slot"):
        Run(dir_find(cid, block, b"abc"), {})
    assert Run(dir_find(cid, block, b"abd"), {}).result is None or hamt.hamt_slot(b"abd", 0) == slot
