"""The UnixFS exporter: ranged reads over importer-built DAGs, listings and lookups in the gateway fixtures."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore import exporter as ex
from blockstore.car import CarReader
from blockstore.cid import DAG_PB, IDENTITY, RAW, cid_for, cid_from_str
from blockstore.dagpb import PBLink, PBNode, decode_pbnode, encode_pbnode
from blockstore.importer import DirectoryBuilder, ImportParams, import_bytes, import_symlink
from blockstore.unixfs import FILE, UnixFSData, encode_unixfs

GW = Path(__file__).resolve().parents[1].joinpath("fixtures", "gateway-conformance")
INDEX = json.loads((GW / "index.json").read_text())["cars"]


class DictStore:
    """A block sink and get_block source that counts reads."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.reads = 0

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        for cid, data in blocks:
            self.blocks[cid] = data
        return len(blocks)

    def get(self, cid: bytes) -> bytes | None:
        self.reads += 1
        return self.blocks.get(cid)


def load(name: str) -> tuple[bytes, DictStore]:
    s = DictStore()
    with (GW / name).open("rb") as fh:
        r = CarReader(fh)
        for b in r:
            s.blocks[b.cid] = b.data
        return r.roots[0], s


def read(get, cid: bytes, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join(ex.read_file(get, cid, offset, length))


# ---------------------------------------------------------------- files
params_st = st.builds(
    ImportParams,
    cid_version=st.sampled_from([0, 1]),
    raw_leaves=st.booleans(),
    chunk_size=st.sampled_from([1, 7, 64, 256]),
    max_links=st.integers(2, 5),
    trickle=st.booleans(),
)


@settings(max_examples=80, deadline=None)
@given(params=params_st, size=st.integers(0, 3000), data=st.data())
def test_ranges_match_the_original(params: ImportParams, size: int, data: st.DataObject) -> None:
    content = os.urandom(size)
    s = DictStore()
    root = import_bytes(content, s, params).cid
    assert read(s.get, root) == content
    for _ in range(5):
        off = data.draw(st.integers(0, size + 5))
        length = data.draw(st.one_of(st.none(), st.integers(0, size + 5)))
        want = content[off:] if length is None else content[off : off + length]
        assert read(s.get, root, off, length) == want
    st_ = ex.stat(s.get, root)
    assert st_.type == "file" and st_.size == size


def test_small_range_reads_only_its_path() -> None:
    content = os.urandom(100_000)
    s = DictStore()
    root = import_bytes(content, s, ImportParams(cid_version=1, raw_leaves=True, chunk_size=100, max_links=4)).cid
    total = len(s.blocks)
    s.reads = 0
    assert read(s.get, root, 54_321, 10) == content[54_321:54_331]
    assert s.reads <= 10 < total  # depth of a 1000-leaf tree with 4 links per node, not the whole DAG


def test_reading_is_lazy() -> None:
    content = os.urandom(50_000)
    s = DictStore()
    root = import_bytes(content, s, ImportParams(chunk_size=1000, max_links=10)).cid
    s.reads = 0
    it = ex.read_file(s.get, root)
    assert next(it) == content[:1000]
    assert s.reads <= 4


def test_kubo_vector_multiblock_file_reads_back() -> None:
    root, s = load("path_gateway_unixfs/dir-with-files.car")
    cid = ex.resolve_path(s.get, root, ["multiblock.txt"])
    assert cid == cid_from_str("bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa")
    whole = read(s.get, cid)
    assert len(whole) == 1026
    assert read(s.get, cid, 250, 20) == whole[250:270]
    assert read(s.get, ex.resolve_path(s.get, root, ["ascii.txt"])) == b"hello application/vnd.ipld.car\n"


def test_inline_data_with_children_and_identity_leaf() -> None:
    s = DictStore()
    leaf = b"0123456789"
    lc = cid_for(leaf)
    s.blocks[lc] = leaf
    ident = cid_for(b"XYZ", mh_code=IDENTITY)
    fs = UnixFSData(type=FILE, data=b"head-", filesize=5 + 10 + 3, blocksizes=[10, 3])
    block = encode_pbnode(PBNode([PBLink(lc, b"", 10), PBLink(ident, b"", 3)], encode_unixfs(fs)))
    root = cid_for(block, codec=DAG_PB)
    s.blocks[root] = block
    content = b"head-0123456789XYZ"
    for off in range(len(content) + 1):
        for n in (0, 1, 4, 30):
            assert read(s.get, root, off, n) == content[off : off + n]


def test_file_with_wrong_blocksizes_is_corrupt() -> None:
    s = DictStore()
    leaf = b"abc"
    s.blocks[cid_for(leaf)] = leaf
    fs = UnixFSData(type=FILE, filesize=4, blocksizes=[4])
    block = encode_pbnode(PBNode([PBLink(cid_for(leaf), b"", 3)], encode_unixfs(fs)))
    root = cid_for(block, codec=DAG_PB)
    s.blocks[root] = block
    with pytest.raises(ex.CorruptNode, match="holds 3 bytes but its parent says 4"):
        read(s.get, root)


def test_missing_block_is_named() -> None:
    root, s = load("trustless_gateway_car/file-3k-and-3-blocks-missing-block.car")
    assert len(read(s.get, root, 0, 1024)) == 1024  # the first chunk is there
    with pytest.raises(ex.BlockNotFound) as ei:
        read(s.get, root)
    assert ei.value.cid == cid_from_str("QmSNLTo6Wv9dfroVaw7MFYjLqf9ho7PKrgsjdzYDtv8h1W")
    with pytest.raises(ex.BlockNotFound):
        read(s.get, cid_for(b"nowhere"))


def test_negative_range_is_refused() -> None:
    with pytest.raises(ex.ExportError, match="must not be negative"):
        read(DictStore().get, cid_for(b""), -1)


# ---------------------------------------------------------------- directories
def test_plain_directory_listing() -> None:
    root, s = load("path_gateway_unixfs/dir-with-files.car")
    entries = {e.name: e for e in ex.list_dir(s.get, root)}
    assert set(entries) == {"ascii-copy.txt", "ascii.txt", "hello.txt", "multiblock.txt"}
    assert entries["multiblock.txt"].size == 1026 and entries["multiblock.txt"].type == "file"
    assert entries["hello.txt"].size == 12
    assert entries["ascii.txt"].cid == entries["ascii-copy.txt"].cid


def test_nested_directories_and_unicode_names() -> None:
    root, s = load("dir_listing/fixtures.car")
    top = {e.name: e.type for e in ex.list_dir(s.get, root)}
    assert top == {"api": "directory", "ipfs": "directory", "ipns": "directory", "ą": "directory"}
    cid = ex.resolve_path(s.get, root, ["ą", "ę", "file-źł.txt"])
    assert cid == cid_from_str("bafkreialihlqnf5uwo4byh4n3cmwlntwqzxxs2fg5vanqdi3d7tb2l5xkm")
    assert len(read(s.get, cid)) == 34


def test_hamt_listing_and_lookup() -> None:
    name = "trustless_gateway_car/single-layer-hamt-with-multi-block-files.car"
    root, s = load(name)
    file_cid = cid_from_str("bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa")
    entries = list(ex.list_dir(s.get, root, resolve_types=False))
    assert sorted(e.name for e in entries) == sorted(f"{i}.txt" for i in range(1, 1001))
    assert all(e.cid == file_cid and e.tsize == 1271 for e in entries)
    for i in (1, 685, 1000, 333):
        s.reads = 0
        assert ex.resolve_path(s.get, root, [f"{i}.txt"]) == file_cid
        assert s.reads <= 3  # root + the shards on the way, nothing else
    with pytest.raises(ex.PathNotFound, match="1001.txt"):
        ex.resolve_path(s.get, root, ["1001.txt"])
    assert ex.stat(s.get, root).type == "directory"
    typed = next(iter(ex.list_dir(s.get, root)))
    assert typed.type == "file" and typed.size == 1026


def test_importer_built_hamt_round_trips() -> None:
    s = DictStore()
    params = ImportParams(hamt_threshold=100)
    d = DirectoryBuilder(params)
    names = [f"entry-{i:04d}" for i in range(300)]
    for n in names:
        r = import_bytes(n.encode(), s, params)
        d.add_entry(n, r.cid, r.size)
    root = d.finish(s).cid
    assert sorted(e.name for e in ex.list_dir(s.get, root)) == names
    for n in names[::37]:
        assert read(s.get, ex.resolve_path(s.get, root, [n])) == n.encode()


def test_symlinks() -> None:
    root, s = load("path_gateway_unixfs/symlink.car")
    entries = {e.name: e for e in ex.list_dir(s.get, root)}
    assert entries["bar"].type == "symlink" and entries["bar"].target == "foo"
    assert ex.read_symlink(s.get, entries["bar"].cid) == "foo"
    assert read(s.get, entries["foo"].cid) == b"content\n"
    with pytest.raises(ex.NotAFile, match="symlink, not a file"):
        read(s.get, entries["bar"].cid)
    t = import_symlink("../x", s)
    assert ex.read_symlink(s.get, t.cid) == "../x"
    with pytest.raises(ex.ExportError, match="not a symlink"):
        ex.read_symlink(s.get, entries["foo"].cid)


def test_wrong_kind_errors() -> None:
    root, s = load("path_gateway_unixfs/dir-with-files.car")
    f = ex.resolve_path(s.get, root, ["hello.txt"])
    with pytest.raises(ex.NotAFile, match="directory, not a file"):
        read(s.get, root)
    with pytest.raises(ex.NotADirectory):
        list(ex.list_dir(s.get, f))
    with pytest.raises(ex.NotADirectory):
        ex.resolve_path(s.get, root, ["hello.txt", "x"])
    with pytest.raises(ex.PathNotFound, match="'nope'"):
        ex.resolve_path(s.get, root, ["nope"])
    assert ex.resolve_path(s.get, root, []) == root


def test_corrupt_dag_pb_is_reported() -> None:
    s = DictStore()
    bad = b"\x0a\x05\x08\x02"  # Data field runs past the end
    cid = cid_for(bad, codec=DAG_PB)
    s.blocks[cid] = bad
    with pytest.raises(ex.CorruptNode):
        read(s.get, cid)
    with pytest.raises(ex.CorruptNode):
        list(ex.list_dir(s.get, cid))


def test_dag_cbor_paths() -> None:
    root, s = load("path_gateway_dag/dag-cbor-traversal.car")
    want = cid_from_str("bafyreiaefvpp22slf5bzd4lqgzwbztqahwlldtqkpgmlhv7mh23pudle7y")
    assert ex.resolve_path(s.get, root, ["foo", "link", "bar"]) == want
    with pytest.raises(ex.NotADirectory, match="not a link"):
        ex.resolve_path(s.get, root, ["foo", "object"])
    with pytest.raises(ex.PathNotFound):
        ex.resolve_path(s.get, root, ["foo", "nope"])
    assert ex.stat(s.get, root).type == "dag-cbor"


def test_every_named_fixture_path_resolves() -> None:
    """Every UnixFS/DAG-CBOR path the fixture index names resolves to the CID it lists."""
    checked = 0
    for name, info in INDEX.items():
        if "dag-json" in name or "plain-" in name:
            continue
        root, s = load(name)
        for entry in info["entries"]:
            path, chunk = entry["path"], None
            m = re.fullmatch(r"(.*)\[(\d+)\]", path)
            if m:  # "file[i]": the i-th child of the file's root node
                path, chunk = m.group(1), int(m.group(2))
            segs = [p for p in path.split("/") if p]
            if ".." in segs or "<any entry>" in segs:  # names containing "/" (TAR escapes), or a placeholder
                continue
            got = ex.resolve_path(s.get, root, segs)
            if chunk is not None:
                got = decode_pbnode(s.blocks[got]).links[chunk].hash
            assert got == cid_from_str(entry["cid"]), (name, entry["path"])
            checked += 1
            if entry.get("codec") == "raw" or entry.get("unixfs") == "File":
                assert ex.stat(s.get, cid_from_str(entry["cid"])).type == "file"
    assert checked > 50


def test_raw_block_stat_and_read() -> None:
    s = DictStore()
    data = b"raw bytes"
    c = cid_for(data, codec=RAW)
    s.blocks[c] = data
    st_ = ex.stat(s.get, c)
    assert (st_.type, st_.size, st_.blocks) == ("file", 9, 0)
    assert read(s.get, c, 4) == b"bytes"


@settings(max_examples=200, deadline=None)
@given(
    unixfs=st.builds(
        UnixFSData,
        type=st.integers(0, 5),
        data=st.one_of(st.none(), st.binary(max_size=20)),
        filesize=st.one_of(st.none(), st.integers(0, 100)),
        blocksizes=st.lists(st.integers(0, 50), max_size=4),
    ),
    nlinks=st.integers(0, 4),
    present=st.booleans(),
)
def test_odd_nodes_fail_only_with_export_errors(unixfs: UnixFSData, nlinks: int, present: bool) -> None:
    """Whatever a (possibly inconsistent) node says, the exporter answers or raises one of its own errors."""
    s = DictStore()
    kids = []
    for i in range(nlinks):
        leaf = bytes([i]) * (i * 7)
        kids.append(PBLink(cid_for(leaf), b"k%d" % i, len(leaf)))
        if present:
            s.blocks[cid_for(leaf)] = leaf
    block = encode_pbnode(PBNode(kids, encode_unixfs(unixfs)))
    root = cid_for(block, codec=DAG_PB)
    s.blocks[root] = block
    for op in (
        lambda: read(s.get, root, 3, 10),
        lambda: list(ex.list_dir(s.get, root)),
        lambda: ex.resolve_path(s.get, root, ["k1"]),
        lambda: ex.stat(s.get, root),
        lambda: ex.read_symlink(s.get, root),
    ):
        try:
            op()
        except (ex.ExportError, ex.BlockNotFound):
            pass
