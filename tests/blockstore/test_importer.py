"""The UnixFS importer: kubo's published CIDs, fixture DAGs rebuilt byte-exactly, layouts, directories, options."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID, multihash

from blockstore.cid import cid_from_str, cid_to_str, codec_of, RAW as RAW_CODEC
from blockstore.chunker import ChunkerError, chunk_bytes, chunk_stream, parse_chunker
from blockstore.dagpb import decode_pbnode
from blockstore.importer import (
    BATCH_BLOCKS,
    DirectoryBuilder,
    ImporterError,
    ImportParams,
    import_bytes,
    import_file,
    import_path,
    import_symlink,
)
from blockstore.unixfs import DIRECTORY, FILE, HAMT_SHARD, RAW, SYMLINK, decode_unixfs

FIXTURES = Path(__file__).resolve().parents[1].joinpath("fixtures", "gateway-conformance")
V0 = ImportParams()
V1_RAW = ImportParams.from_options(cid_version=1)
V1_PB = ImportParams.from_options(cid_version=1, raw_leaves=False)
V1_2025 = ImportParams.from_profile("unixfs-v1-2025")

SMALL = [
    (b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
     "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
     "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y"),
    (b"hello world", "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD",
     "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
     "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"),
    (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
     "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
     "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"),
    (b"hello\n", "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
     "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
     "bafybeiffndsajwhk3lwjewwdxqntmjm4b5wxaaanokonsggenkbw6slwk4"),
    (b"x", "QmULKig5Fxrs2sC4qt9nNduucXfb92AFYQ6Hi3YRqDmrYC",
     "bafkreibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe",
     "bafybeiczcctdlznuiia25cbxs3bmdsinqecjoqocn43kvxcy4u5fgouucu"),
]


def read_file_dag(blocks: dict[bytes, bytes], cid: bytes) -> tuple[bytes, int]:
    """Reassemble a file from its DAG, checking filesize, blocksizes and Tsize on the way; return (bytes, tsize)."""
    block = blocks[cid]
    if codec_of(cid) == RAW_CODEC:
        return block, len(block)
    node = decode_pbnode(block)
    fs = decode_unixfs(node.data or b"")
    assert fs.type in (FILE, RAW)
    parts = [fs.data or b""]
    tsize = len(block)
    assert len(fs.blocksizes) == len(node.links)
    for link, bs in zip(node.links, fs.blocksizes):
        assert link.name == b""
        data, child_tsize = read_file_dag(blocks, link.hash)
        assert len(data) == bs and link.tsize == child_tsize
        parts.append(data)
        tsize += child_tsize
    content = b"".join(parts)
    assert fs.filesize == len(content)
    return content, tsize


@pytest.mark.parametrize(("data", "v0", "v1raw", "v1pb"), SMALL)
def test_small_known_cids(sink, data: bytes, v0: str, v1raw: str, v1pb: str) -> None:
    assert cid_to_str(import_bytes(data, sink, V0).cid) == v0
    assert cid_to_str(import_bytes(data, sink, V1_RAW).cid) == v1raw
    res = import_bytes(data, sink, V1_PB)
    assert cid_to_str(res.cid) == v1pb
    assert res.filesize == len(data) and res.size == len(sink.blocks[res.cid])


def test_empty_directory_cids(sink) -> None:
    assert cid_to_str(DirectoryBuilder(V0).finish(sink).cid) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    assert cid_to_str(DirectoryBuilder(V1_RAW).finish(sink).cid) == (
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    )


@pytest.mark.parametrize(
    ("seed", "size", "params", "want"),
    [
        ("chunk-v0-seed", 262144, V0, "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE"),
        ("chunk-v0-seed", 262145, V0, "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ"),
        ("v0-seed", 174 * 262144, V0, "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"),
        ("v0-seed", 174 * 262144 + 1, V0, "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW"),
        ("chunk-v1-seed", 1 << 20, V1_2025, "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta"),
        ("chunk-v1-seed", (1 << 20) + 1, V1_2025, "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"),
    ],
)
def test_kubo_large_vectors(sink, chacha, seed: str, size: int, params: ImportParams, want: str) -> None:
    data = chacha(seed, size)
    res = import_file(io.BytesIO(data), sink, params)
    assert cid_to_str(res.cid) == want
    content, tsize = read_file_dag(sink.blocks, res.cid)
    assert content == data and tsize == res.size and res.filesize == size


def test_174_plus_one_has_two_levels(sink, chacha) -> None:
    res = import_bytes(chacha("v0-seed", 174 * 262144 + 1), sink, V0)
    root = decode_pbnode(sink.blocks[res.cid])
    assert len(root.links) == 2
    assert len(decode_pbnode(sink.blocks[root.links[0].hash]).links) == 174


HAMT_ALPHABET = "abcdefghijklmnopqrstuvwxyz01234567890-_"


def _names(chacha: Callable[[str, int], bytes], seed: str, lengths: list[int]) -> list[str]:
    stream = chacha(seed, 1 << 20)
    out, pos = [], 0
    for n in lengths:
        out.append("".join(HAMT_ALPHABET[b % 39] for b in stream[pos : pos + n]))
        pos += n
    return out


@pytest.mark.parametrize(
    ("seed", "lengths", "params", "sharded", "want"),
    [
        ("hamt-unixfs-v0-2015", [30] * 4096, V0, False, "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN"),
        ("hamt-unixfs-v0-2015", [31] * 4033, V0, True, "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP"),
        ("hamt-unixfs-v1-2025", [11] * 4765 + [21], V1_2025, False,
         "bafybeic3h7rwruealwxkacabdy45jivq2crwz6bufb5ljwupn36gicplx4"),
        ("hamt-unixfs-v1-2025", [11] * 4765 + [22], V1_2025, True,
         "bafybeiegvuterwurhdtkikfhbxcldohmxp566vpjdofhzmnhv6o4freidu"),
    ],
)
def test_hamt_threshold_vectors(sink, chacha, seed, lengths, params, sharded, want) -> None:
    x = import_bytes(b"x", sink, params)
    builder = DirectoryBuilder(params)
    for name in _names(chacha, seed, lengths):
        builder.add_entry(name, x.cid, x.size)
    assert builder.is_sharded() is sharded
    res = builder.finish(sink)
    assert cid_to_str(res.cid) == want
    fs = decode_unixfs(decode_pbnode(sink.blocks[res.cid]).data or b"")
    assert fs.type == (HAMT_SHARD if sharded else DIRECTORY)


@pytest.mark.parametrize(("count", "sharded"), [(5, False), (6, True)])
def test_hamt_threshold_through_import_path(tmp_path: Path, sink, count: int, sharded: bool) -> None:
    # names of 10 bytes + 34-byte CIDv0: 44 bytes per entry; a 250-byte threshold is crossed by the 6th entry
    params = replace(V0, hamt_threshold=250)
    root = tmp_path / "d"
    root.mkdir()
    for i in range(count):
        (root / f"file{i:06d}").write_bytes(b"x")
    entries = list(import_path(root, sink, params))
    assert [e.name for e in entries] == [f"d/file{i:06d}" for i in range(count)] + ["d"]
    fs = decode_unixfs(decode_pbnode(sink.blocks[entries[-1].cid]).data or b"")
    assert fs.type == (HAMT_SHARD if sharded else DIRECTORY)
    builder = DirectoryBuilder(params)
    for e in entries[:-1]:
        builder.add_entry(e.name.split("/")[1], e.cid, e.size)
    assert builder.finish(type(sink)()).cid == entries[-1].cid


def test_hamt_estimation_disabled_keeps_basic_directory(sink, chacha) -> None:
    params = ImportParams(hamt_estimation="disabled")
    x = import_bytes(b"x", sink, params)
    builder = DirectoryBuilder(params)
    for name in _names(chacha, "hamt-unixfs-v0-2015", [31] * 4033):
        builder.add_entry(name, x.cid, x.size)
    assert not builder.is_sharded()


def _fixture_dir(car_blocks, tmp_path: Path, car: str, root_cid: str) -> Path:
    """Write a fixture's basic directory out to disk (files and symlinks), returning its path."""
    blocks = car_blocks(FIXTURES / car)
    out = tmp_path / "fixture"
    out.mkdir()
    for link in decode_pbnode(blocks[cid_from_str(root_cid)]).links:
        name = (link.name or b"").decode()
        block = blocks[link.hash]
        if codec_of(link.hash) != RAW_CODEC:
            fs = decode_unixfs(decode_pbnode(block).data or b"")
            if fs.type == SYMLINK:
                os.symlink(fs.data or b"", out / name)
                continue
        (out / name).write_bytes(read_file_dag(blocks, link.hash)[0])
    return out


def test_fixture_dir_with_files_rebuilt(tmp_path: Path, sink, car_blocks) -> None:
    root = "bafybeihchr7vmgjaasntayyatmp5sv6xza57iy2h4xj7g46bpjij6yhrmy"
    path = _fixture_dir(car_blocks, tmp_path, "path_gateway_unixfs/dir-with-files.car", root)
    params = ImportParams.from_options(cid_version=1, chunker="size-256")
    entries = {e.name: e for e in import_path(path, sink, params)}
    assert cid_to_str(entries["fixture/multiblock.txt"].cid) == (
        "bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa"
    )
    assert cid_to_str(entries["fixture"].cid) == root
    fixture_blocks = car_blocks(FIXTURES / "path_gateway_unixfs/dir-with-files.car")
    for cid, data in sink.blocks.items():
        assert fixture_blocks[cid] == data


def test_fixture_symlink_dir_rebuilt(tmp_path: Path, sink, car_blocks) -> None:
    root = "QmWvY6FaqFMS89YAQ9NAPjVP4WZKA1qbHbicc9HeSKQTgt"
    path = _fixture_dir(car_blocks, tmp_path, "path_gateway_unixfs/symlink.car", root)
    assert os.readlink(path / "bar") == "foo"
    entries = list(import_path(path, sink, V0))
    assert [e.name for e in entries] == ["fixture/bar", "fixture/foo", "fixture"]
    assert cid_to_str(entries[-1].cid) == root


def test_symlink_node(sink) -> None:
    res = import_symlink("foo", sink, V0)
    assert sink.blocks[res.cid] == b"\x0a\x07\x08\x04\x12\x03foo"
    assert res.size == 9


def test_raw_leaves_with_cid_v0_mix_versions(sink) -> None:
    params = ImportParams(raw_leaves=True, chunk_size=4)
    res = import_bytes(b"0123456789", sink, params)
    assert len(res.cid) == 34
    links = decode_pbnode(sink.blocks[res.cid]).links
    assert [codec_of(link.hash) for link in links] == [RAW_CODEC] * 3
    assert read_file_dag(sink.blocks, res.cid)[0] == b"0123456789"


def _shape(blocks: dict[bytes, bytes], cid: bytes) -> list:
    """Nested lists of leaf counts: a leaf is 0, an internal node the list of its children's shapes."""
    node = decode_pbnode(blocks[cid])
    if not node.links:
        return 0  # type: ignore[return-value]
    return [_shape(blocks, link.hash) for link in node.links]


def test_balanced_shape(sink) -> None:
    params = ImportParams(chunk_size=1, max_links=3)
    res = import_bytes(b"abcdefghij", sink, params)
    assert _shape(sink.blocks, res.cid) == [[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0]]]
    assert read_file_dag(sink.blocks, res.cid)[0] == b"abcdefghij"


def test_trickle_shape_and_leaf_type(sink) -> None:
    params = ImportParams(chunk_size=1, max_links=2, trickle=True)
    data = bytes(range(20))
    res = import_bytes(data, sink, params)
    # root: 2 leaves, then 4 depth-1 subtrees (2 leaves each), then depth-2 subtrees
    # (2 leaves + up to 4 depth-1 subtrees each) until the data ends
    shape = _shape(sink.blocks, res.cid)
    assert shape[:6] == [0, 0, [0, 0], [0, 0], [0, 0], [0, 0]]
    assert shape[6] == [0, 0, [0, 0], [0, 0], [0, 0], [0, 0]]
    assert len(shape) == 7
    assert read_file_dag(sink.blocks, res.cid)[0] == data
    first_leaf = decode_pbnode(sink.blocks[decode_pbnode(sink.blocks[res.cid]).links[0].hash])
    assert decode_unixfs(first_leaf.data or b"").type == RAW


def test_trickle_single_chunk_and_empty(sink) -> None:
    params = ImportParams(trickle=True)
    one = import_bytes(b"hello", sink, params)
    assert len(decode_pbnode(sink.blocks[one.cid]).links) == 1
    empty = import_bytes(b"", sink, ImportParams(trickle=True, raw_leaves=True, cid_version=1))
    assert sink.blocks[empty.cid] == b"\x0a\x04\x08\x02\x18\x00"


class ShortReads(io.RawIOBase):
    """A stream that returns at most 1000 bytes per read, as a pipe might."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, 1000) if n >= 0 else 1000)


def test_short_reads_and_progress_and_batches(sink, chacha) -> None:
    data = chacha("short", 3 * 262144 + 17)
    seen: list[int] = []
    res = import_file(ShortReads(data), sink, V0, progress=seen.append)
    assert res.cid == import_bytes(data, type(sink)(), V0).cid
    assert seen == [262144, 262144, 262144, 17]
    many = type(sink)()
    import_bytes(chacha("many", 300 * 1024), many, ImportParams(chunk_size=1024))
    assert max(many.batches) <= BATCH_BLOCKS and sum(many.batches) == len(many.blocks)


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=3000),
    st.sampled_from([V0, V1_RAW, V1_PB, replace(V0, trickle=True), replace(V1_RAW, trickle=True)]),
    st.integers(min_value=64, max_value=1024),
)
def test_every_block_cid_matches_multiformats(data: bytes, params: ImportParams, chunk: int) -> None:
    """Differential check: every CID the importer makes is what multiformats computes for the block."""
    blocks: dict[bytes, bytes] = {}

    class Sink:
        def put_many(self, batch, verify=False):
            blocks.update(batch)

    res = import_bytes(data, Sink(), replace(params, chunk_size=chunk, max_links=4))
    for cid, block in blocks.items():
        ref = CID.decode(cid)
        assert ref.digest == multihash.digest(block, "sha2-256")
        assert bytes(CID(ref.base, ref.version, ref.codec, multihash.digest(block, "sha2-256"))) == cid
    assert read_file_dag(blocks, res.cid)[0] == data


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "top"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "empty").mkdir()
    (root / "z.txt").write_bytes(b"z")
    (root / "a" / "1.txt").write_bytes(b"1")
    (root / "b" / "2.txt").write_bytes(b"2")
    (root / "b" / "deep" / "3.txt").write_bytes(b"3")
    (root / ".hidden").write_bytes(b"h")
    (root / "b" / ".cache").mkdir()
    (root / "b" / ".cache" / "x").write_bytes(b"x")
    return root


def test_import_path_order_and_hidden(tmp_path: Path, sink) -> None:
    root = _tree(tmp_path)
    names = [e.name for e in import_path(root, sink, V0)]
    assert names == [
        "top/a/1.txt", "top/b/2.txt", "top/b/deep/3.txt", "top/z.txt",
        "top/a", "top/b/deep", "top/b", "top/empty", "top",
    ]
    with_hidden = [e.name for e in import_path(root, type(sink)(), replace(V0, hidden=True))]
    assert "top/.hidden" in with_hidden and "top/b/.cache/x" in with_hidden and "top/b/.cache" in with_hidden


def test_import_path_directory_structure(tmp_path: Path, sink) -> None:
    root = _tree(tmp_path)
    entries = {e.name: e for e in import_path(root, sink, V0)}
    top = decode_pbnode(sink.blocks[entries["top"].cid])
    assert [link.name for link in top.links] == [b"a", b"b", b"empty", b"z.txt"]
    assert top.links[2].hash == cid_from_str("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
    assert entries["top"].size == len(sink.blocks[entries["top"].cid]) + sum(link.tsize or 0 for link in top.links)
    assert entries["top/z.txt"].cid == import_bytes(b"z", sink, V0).cid


def test_import_path_wrap_and_single_file(tmp_path: Path, sink) -> None:
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello world\n")
    entries = list(import_path(f, sink, V0))
    assert [(e.name, cid_to_str(e.cid)) for e in entries] == [("hello.txt", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")]
    wrapped = list(import_path(f, sink, replace(V0, wrap_with_directory=True)))
    assert [e.name for e in wrapped] == ["hello.txt", ""]
    wrapper = decode_pbnode(sink.blocks[wrapped[-1].cid])
    assert [(link.name, link.hash, link.tsize) for link in wrapper.links] == [(b"hello.txt", entries[0].cid, 20)]


def test_import_path_errors(tmp_path: Path, sink) -> None:
    with pytest.raises(ImporterError, match="No such file"):
        list(import_path(tmp_path / "missing", sink, V0))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ImporterError, match="unsupported file type"):
        list(import_path(fifo, sink, V0))


def test_directory_builder_rejects_bad_names(sink) -> None:
    b = DirectoryBuilder(V0)
    cid = import_bytes(b"x", sink, V0).cid
    b.add_entry("a", cid, 1)
    for bad in ("", "a/b", ".", ".."):
        with pytest.raises(ImporterError):
            b.add_entry(bad, cid, 1)
    with pytest.raises(ImporterError, match="duplicate"):
        b.add_entry("a", cid, 1)
    with pytest.raises(ImporterError, match="negative"):
        b.add_entry("c", cid, -1)


def test_directory_links_sorted_by_name_bytes(sink) -> None:
    b = DirectoryBuilder(V0)
    cid = import_bytes(b"x", sink, V0).cid
    for name in ["b", "B", "\u00e9", "a", "_", "10", "9"]:
        b.add_entry(name, cid, 9)
    node = decode_pbnode(sink.blocks[b.finish(sink).cid])
    names = [link.name for link in node.links]
    assert names == sorted(names) and names[0] == b"10"


def test_options_follow_kubo_rules() -> None:
    assert ImportParams.from_options().raw_leaves is False
    assert ImportParams.from_options(cid_version=1).raw_leaves is True
    assert ImportParams.from_options(cid_version=1, raw_leaves=False).raw_leaves is False
    assert ImportParams.from_options(raw_leaves=True).cid_version == 0
    p = ImportParams.from_options(profile="unixfs-v1-2025", chunker="size-1000", max_links=10, trickle=True)
    assert (p.cid_version, p.raw_leaves, p.chunk_size, p.max_links, p.trickle, p.hamt_estimation) == (
        1, True, 1000, 10, True, "block"
    )
    v0 = ImportParams.from_profile("unixfs-v0-2015")
    assert (v0.cid_version, v0.raw_leaves, v0.chunk_size, v0.max_links, v0.hamt_estimation) == (0, False, 262144, 174, "links")
    assert ImportParams.from_options(chunker="size-2096896").chunk_size == 2096896


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunker": "size-2096897"}, "exceeds the maximum"),
        ({"chunker": "size-0"}, "must be positive"),
        ({"chunker": "rabin-1-2-3"}, "not supported"),
        ({"chunker": "big"}, "malformed chunker"),
        ({"cid_version": 2}, "unknown CID version"),
        ({"max_links": 1}, "at least 2"),
        ({"profile": "nope"}, "unknown import profile"),
    ],
)
def test_bad_options_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ImporterError, match=message):
        ImportParams.from_options(**kwargs)


@pytest.mark.parametrize("total", [0, 1, 99, 100, 101, 1000])
def test_chunk_stream_cuts_fixed_sizes(total: int) -> None:
    data = bytes(i % 251 for i in range(total))
    chunks = list(chunk_stream(io.BytesIO(data), 100))
    assert b"".join(chunks) == data
    assert all(len(c) == 100 for c in chunks[:-1]) and all(0 < len(c) <= 100 for c in chunks)
    assert chunks == list(chunk_bytes(data, 100))
    assert [bytes(c) for c in chunk_stream(ShortReads(data), 100)] == chunks


def test_chunk_stream_accepts_bytearray_reads() -> None:
    class Arrays:
        def __init__(self) -> None:
            self.left = 5

        def read(self, n: int) -> bytearray:
            take = min(n, self.left, 2)
            self.left -= take
            return bytearray(b"a" * take)

    assert list(chunk_stream(Arrays(), 3)) == [b"aaa", b"aa"]
    assert all(type(c) is bytes for c in chunk_stream(Arrays(), 2))


def test_parse_chunker() -> None:
    assert parse_chunker(None) == parse_chunker("") == parse_chunker("default") == 262144
    assert parse_chunker("size-1") == 1
    for bad in ("size-", "size-x", "size--1", "SIZE-5", "size-5 "):
        with pytest.raises(ChunkerError):
            parse_chunker(bad)


def test_writer_error_reaches_the_caller(chacha) -> None:
    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        def put_many(self, blocks, verify=False):
            self.calls += 1
            if self.calls == 2:
                raise OSError("disk full")
            return len(blocks)

    with pytest.raises(OSError, match="disk full"):
        import_bytes(chacha("fail", 200 * 1024), Failing(), ImportParams(chunk_size=1024))


def test_stream_error_stops_the_writer_thread(chacha) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.reads = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            self.reads += 1
            if self.reads > 300:
                raise OSError("connection reset")
            return b"\xab" * n

    import threading

    before = {t.name for t in threading.enumerate()}
    with pytest.raises(OSError, match="connection reset"):
        import_file(Broken(), type("S", (), {"put_many": lambda self, b, verify=False: 0})(), ImportParams(chunk_size=1024))
    assert "unixfs-import-writer" not in {t.name for t in threading.enumerate()} - before


def test_directories_under_a_sharded_directory_come_in_shard_order(tmp_path: Path, sink) -> None:
    from blockstore.hamt import hamt_iter

    root = tmp_path / "big"
    root.mkdir()
    for i in range(40):
        (root / f"sub{i:02d}").mkdir()
        (root / f"sub{i:02d}" / "f").write_bytes(b"x")
    params = replace(V0, hamt_threshold=100)
    entries = list(import_path(root, sink, params))
    dir_names = [e.name for e in entries if not e.name.endswith("/f")]
    listed = [n.decode() for n, _ in hamt_iter(sink.get, decode_pbnode(sink.blocks[entries[-1].cid]))]
    assert dir_names == [f"big/{n}" for n in listed] + ["big"]
    assert listed != sorted(listed)


def test_text_stream_is_a_clear_error(tmp_path: Path, sink) -> None:
    f = tmp_path / "t.txt"
    f.write_text("hello")
    with open(f) as fh, pytest.raises(ChunkerError, match="binary mode"):
        import_file(fh, sink, V0)


@pytest.mark.parametrize("params", [V0, replace(V1_2025, chunk_size=1000, max_links=3), replace(V1_PB, trickle=True, chunk_size=700)])
def test_import_into_leveldb_then_export(tmp_path: Path, chacha, params: ImportParams) -> None:
    """Integration: a tree imported into a real LevelDB BlockStore reads back through the exporter."""
    from blockstore import exporter
    from blockstore.db import open_db
    from blockstore.store import BlockStore

    tree = tmp_path / "tree"
    (tree / "shard").mkdir(parents=True)
    big = chacha("export", 12_345)
    (tree / "big.bin").write_bytes(big)
    (tree / "empty").write_bytes(b"")
    os.symlink("big.bin", tree / "link")
    for i in range(30):
        (tree / "shard" / f"entry-{i}").write_bytes(f"content {i}".encode())
    params = replace(params, hamt_threshold=600)
    db = open_db(tmp_path / "repo")
    try:
        store = BlockStore(db)
        entries = {e.name: e for e in import_path(tree, store, params)}
        root = entries["tree"].cid
        get = store.get

        def cat(*segments: str) -> bytes:
            return b"".join(exporter.read_file(get, exporter.resolve_path(get, root, list(segments))))

        assert cat("big.bin") == big
        assert cat("empty") == b""
        assert cat("shard", "entry-17") == b"content 17"
        assert exporter.read_symlink(get, exporter.resolve_path(get, root, ["link"])) == "big.bin"
        part = b"".join(exporter.read_file(get, entries["tree/big.bin"].cid, 5000, 3000))
        assert part == big[5000:8000]
        names = sorted(e.name for e in exporter.list_dir(get, entries["tree/shard"].cid))
        assert names == sorted(f"entry-{i}" for i in range(30))
        assert decode_unixfs(decode_pbnode(get(entries["tree/shard"].cid)).data or b"").type == HAMT_SHARD
        assert [e.name for e in exporter.list_dir(get, root)] == ["big.bin", "empty", "link", "shard"]
    finally:
        db.close()
