"""The UnixFS importer: kubo ``ipfs add`` semantics with byte-identical CIDs.

Files are cut by a fixed-size chunker into leaves (raw blocks, or dag-pb
UnixFS nodes) and arranged in a balanced DAG (boxo ``importer/balanced``:
each internal node holds up to ``max_links`` children) or a trickle DAG
(boxo ``importer/trickle``, 4 repeats per depth). Directories are basic dag-pb
directories with links sorted by name bytes, or HAMT shards once their
estimated size passes the threshold (strictly greater), as kubo decides.

Blocks go to a *sink* that has ``put_many(list[(cid, data)], verify=False)``
(the :class:`blockstore.store.BlockStore` has it) in batches of the sink's
``write_batch_bytes``, one batch being written while the next fills, so memory
stays bounded by two batches whatever the file size.

Why one module of over 500 lines: the balanced and trickle layouts, raw leaves, inline CIDs and
directory building (with HAMT sharding) must agree byte for byte with kubo; they share the node
builders and the batch writer and are tested together against kubo's CIDs.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, NamedTuple, Protocol

from . import hamt
from .batchwriter import BatchWriter
from .chunker import DEFAULT_CHUNK_SIZE, ChunkerError, check_chunk_size, chunk_bytes, chunk_stream, parse_chunker
from .memory import DEFAULT_PLAN
from .dagpb import PBLink, PBNode, encode_pbnode, encode_varint
from .unixfs import DIRECTORY, FILE, RAW, SYMLINK, UnixFSData, encode_unixfs
from .errors import InvalidData

__all__ = [
    "ImporterError",
    "ImportParams",
    "ImportResult",
    "AddedEntry",
    "PROFILES",
    "import_file",
    "import_bytes",
    "import_symlink",
    "import_path",
    "DirectoryBuilder",
]

#: boxo's default links per file node (8192 / 47)
DEFAULT_MAX_LINKS = 174
#: kubo's HAMT switch threshold (estimated directory size, bytes)
DEFAULT_HAMT_THRESHOLD = 262144
#: a batch handed to the sink holds at most this many blocks ...
BATCH_BLOCKS = 64
#: ... or this many bytes, unless the sink has a ``write_batch_bytes`` (``BlockStore`` has,
#: sized from ``Datastore.MemoryBudget``): an import holds two batches at most
BATCH_BYTES = DEFAULT_PLAN.write_batch_bytes

HAMT_ESTIMATIONS = ("links", "block", "disabled")

Progress = Callable[[int], Any] | None

_V0_PREFIX = b"\x12\x20"
_V1_DAGPB_PREFIX = b"\x01\x70\x12\x20"
_V1_RAW_PREFIX = b"\x01\x55\x12\x20"
_DIR_DATA = encode_unixfs(UnixFSData(type=DIRECTORY))


class ImporterError(InvalidData):
    """Import parameters or an input (file type, name) the importer cannot handle."""


class BlockSink(Protocol):
    """Where the importer writes blocks (a BlockStore, or anything with ``put_many``)."""

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = ...) -> Any:
        """Store a batch of (cid, data) blocks the importer has just hashed."""


@dataclass(frozen=True)
class ImportParams:
    """Everything that decides the CIDs of an import (kubo ``ipfs add`` options)."""

    cid_version: int = 0
    raw_leaves: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_links: int = DEFAULT_MAX_LINKS
    trickle: bool = False
    hamt_threshold: int = DEFAULT_HAMT_THRESHOLD
    hamt_estimation: str = "links"
    hamt_fanout: int = hamt.DEFAULT_FANOUT
    hidden: bool = False
    wrap_with_directory: bool = False

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ImporterError(f"unknown CID version {self.cid_version} (0 or 1)")
        try:
            check_chunk_size(self.chunk_size)
        except ChunkerError as exc:
            raise ImporterError(str(exc)) from None
        if self.max_links < 2:
            raise ImporterError(f"max links per node must be at least 2, not {self.max_links}")
        if self.hamt_estimation not in HAMT_ESTIMATIONS:
            raise ImporterError(f"unknown HAMT size estimation {self.hamt_estimation!r} (links, block or disabled)")
        if self.hamt_threshold < 0:
            raise ImporterError("the HAMT threshold must not be negative")
        if self.hamt_fanout < 8:
            raise ImporterError(f"HAMT fanout {self.hamt_fanout} is below kubo's minimum of 8")
        try:
            hamt.bits_per_level(self.hamt_fanout)
        except hamt.HamtError as exc:
            raise ImporterError(str(exc)) from None

    @classmethod
    def from_profile(cls, name: str) -> "ImportParams":
        """The parameters of an IPIP-499 profile: ``unixfs-v0-2015`` or ``unixfs-v1-2025``."""
        try:
            return PROFILES[name]
        except KeyError:
            raise ImporterError(f"unknown import profile {name!r} (one of {', '.join(PROFILES)})") from None

    @classmethod
    def from_options(
        cls,
        profile: str | None = None,
        cid_version: int | None = None,
        raw_leaves: bool | None = None,
        chunker: str | None = None,
        trickle: bool = False,
        hidden: bool = False,
        wrap_with_directory: bool = False,
        max_links: int | None = None,
    ) -> "ImportParams":
        """Combine a profile (default: kubo's defaults) with ``ipfs add`` options, as kubo does.

        ``cid_version=1`` implies raw leaves unless ``raw_leaves`` is given.
        """
        base = cls.from_profile(profile) if profile else cls()
        changes: dict[str, Any] = {"trickle": bool(trickle), "hidden": bool(hidden)}
        changes["wrap_with_directory"] = bool(wrap_with_directory)
        if cid_version is not None:
            changes["cid_version"] = cid_version
        if raw_leaves is not None:
            changes["raw_leaves"] = bool(raw_leaves)
        elif cid_version is not None and cid_version >= 1:
            changes["raw_leaves"] = True
        if chunker is not None:
            try:
                changes["chunk_size"] = parse_chunker(chunker)
            except ChunkerError as exc:
                raise ImporterError(str(exc)) from None
        if max_links is not None:
            changes["max_links"] = max_links
        return replace(base, **changes)

    def node_cid(self, block: bytes) -> bytes:
        """The CID of a dag-pb block under these parameters."""
        digest = hashlib.sha256(block).digest()
        return (_V0_PREFIX if self.cid_version == 0 else _V1_DAGPB_PREFIX) + digest


#: the IPIP-499 import profiles
PROFILES: dict[str, ImportParams] = {
    "unixfs-v0-2015": ImportParams(),
    "unixfs-v1-2025": ImportParams(
        cid_version=1, raw_leaves=True, chunk_size=1024 * 1024, max_links=1024, hamt_estimation="block"
    ),
}


class ImportResult(NamedTuple):
    """The root of an import: its CID, cumulative DAG size (link Tsize) and file size."""

    cid: bytes
    size: int
    filesize: int


class AddedEntry(NamedTuple):
    """One ``added <cid> <name>`` line of kubo's output; ``size`` is the cumulative DAG size."""

    name: str
    cid: bytes
    size: int


class _Batcher:
    """Collects blocks and hands them to the sink in batches of at most ``batch_bytes``.

    With ``background=True`` full batches are stored by a
    :class:`~blockstore.batchwriter.BatchWriter` thread while the importer goes
    on reading and hashing, one batch in flight: the import holds at most two
    batches (the one being written, the one being filled). :meth:`close`
    writes what is left, waits for the writer and re-raises its error, if
    any; after it every block is in the sink. The sink is only ever called
    from one thread at a time.
    """

    def __init__(self, sink: BlockSink, background: bool = False, batch_bytes: int | None = None) -> None:
        self._sink = sink
        self._limit = batch_bytes if batch_bytes is not None else _batch_bytes_of(sink)
        self._blocks: list[tuple[bytes, bytes]] = []
        self._bytes = 0
        self._writer = BatchWriter(self._store, name="unixfs-import-writer") if background else None

    def _store(self, blocks: list[tuple[bytes, bytes]]) -> None:
        self._sink.put_many(blocks, verify=False)

    def add(self, cid: bytes, data: bytes) -> None:
        """Queue one block; a full batch is handed on."""
        self._blocks.append((cid, data))
        self._bytes += len(data)
        if len(self._blocks) >= BATCH_BLOCKS or self._bytes >= self._limit:
            self._hand_on()

    def _hand_on(self) -> None:
        blocks = self._blocks
        self._blocks = []
        self._bytes = 0
        if self._writer is None:
            self._store(blocks)
        else:
            self._writer.submit(blocks)

    def close(self, write_rest: bool = True) -> None:
        """Stop the writer; with ``write_rest`` write the pending blocks and raise any writer error."""
        if not write_rest:
            self._blocks = []
            if self._writer is not None:
                try:
                    self._writer.close()  # no write may land after the caller's rollback
                except BaseException:
                    pass  # the import is being abandoned; its own error is on its way up
            return
        if self._blocks:
            self._hand_on()
        if self._writer is not None:
            self._writer.close()

    flush = close


def _batch_bytes_of(sink: BlockSink) -> int:
    """The write batch size the sink asks for (``write_batch_bytes``, from the memory budget), else the default."""
    size = getattr(sink, "write_batch_bytes", None)
    return size if isinstance(size, int) and size > 0 else BATCH_BYTES


class _Node(NamedTuple):
    """A finished DAG node: CID, cumulative size and the file bytes under it."""

    cid: bytes
    tsize: int
    filesize: int


class _FileBuilder:
    """Builds one file's DAG from an iterator of chunks."""

    def __init__(self, chunks: Iterable[bytes], params: ImportParams, out: _Batcher, progress: Progress) -> None:
        self._it = iter(chunks)
        self._next: bytes | None = next(self._it, None)
        self._p = params
        self._out = out
        self._progress = progress
        self._inner_prefix = _V0_PREFIX if params.cid_version == 0 else _V1_DAGPB_PREFIX

    def _done(self) -> bool:
        return self._next is None

    def _take(self) -> bytes:
        data = self._next
        assert data is not None
        self._next = next(self._it, None)
        if self._progress is not None:
            self._progress(len(data))
        return data

    def _leaf(self, data: bytes, fs_type: int) -> _Node:
        n = len(data)
        if self._p.raw_leaves:
            cid = _V1_RAW_PREFIX + hashlib.sha256(data).digest()
            self._out.add(cid, data)
            return _Node(cid, n, n)
        vn = encode_varint(n)
        inner_len = 2 + (1 + len(vn) + n if n else 0) + 1 + len(vn)
        if n:
            block = b"".join((b"\x0a", encode_varint(inner_len), b"\x08", bytes((fs_type,)), b"\x12", vn, data, b"\x18", vn))
        else:
            block = b"".join((b"\x0a", encode_varint(inner_len), b"\x08", bytes((fs_type,)), b"\x18", vn))
        cid = self._inner_prefix + hashlib.sha256(block).digest()
        self._out.add(cid, block)
        return _Node(cid, len(block), n)

    def _internal(self, children: list[_Node]) -> _Node:
        filesize = 0
        for c in children:
            filesize += c.filesize
        data = encode_unixfs(UnixFSData(type=FILE, filesize=filesize, blocksizes=[c.filesize for c in children]))
        block = encode_pbnode(PBNode([PBLink(c.cid, b"", c.tsize) for c in children], data))
        cid = self._inner_prefix + hashlib.sha256(block).digest()
        self._out.add(cid, block)
        tsize = len(block)
        for c in children:
            tsize += c.tsize
        return _Node(cid, tsize, filesize)

    # ------------------------------------------------------------ balanced
    def balanced(self) -> _Node:
        """boxo's balanced layout: grow the tree one level at a time, filling each level fully."""
        if self._done():
            if self._p.raw_leaves:
                return self._leaf(b"", FILE)
            return self._internal([])
        root = self._leaf(self._take(), FILE)
        depth = 1
        while not self._done():
            root = self._fill([root], depth)
            depth += 1
        return root

    def _fill(self, children: list[_Node], depth: int) -> _Node:
        max_links = self._p.max_links
        while len(children) < max_links and not self._done():
            if depth == 1:
                children.append(self._leaf(self._take(), FILE))
            else:
                children.append(self._fill([], depth - 1))
        return self._internal(children)

    # ------------------------------------------------------------ trickle
    def trickle(self) -> _Node:
        """boxo's trickle layout: a layer of leaves, then 4 subtrees of each increasing depth."""
        return self._trickle(-1)

    def _trickle(self, max_depth: int) -> _Node:
        children: list[_Node] = []
        max_links = self._p.max_links
        while len(children) < max_links and not self._done():
            children.append(self._leaf(self._take(), RAW))
        depth = 1
        while max_depth == -1 or depth < max_depth:
            if self._done():
                break
            for _ in range(4):
                if self._done():
                    break
                children.append(self._trickle(depth))
            depth += 1
        return self._internal(children)


def _import_chunks(chunks: Iterable[bytes], sink: BlockSink, params: ImportParams, progress: Progress) -> ImportResult:
    out = _Batcher(sink, background=True)
    try:
        builder = _FileBuilder(chunks, params, out, progress)
        node = builder.trickle() if params.trickle else builder.balanced()
    except BaseException:
        out.close(write_rest=False)
        raise
    out.close()
    return ImportResult(node.cid, node.tsize, node.filesize)


def import_file(
    stream: BinaryIO | Any, sink: BlockSink, params: ImportParams | None = None, progress: Progress = None
) -> ImportResult:
    """Import one file read from a binary stream (``read(n)``); return its root.

    ``progress(n)`` is called with the number of bytes of each chunk consumed.
    Every block is written to ``sink`` before this returns.
    """
    p = params or ImportParams()
    return _import_chunks(chunk_stream(stream, p.chunk_size), sink, p, progress)


def import_bytes(
    data: bytes | memoryview, sink: BlockSink, params: ImportParams | None = None, progress: Progress = None
) -> ImportResult:
    """Import an in-memory file; return its root."""
    p = params or ImportParams()
    return _import_chunks(chunk_bytes(data, p.chunk_size), sink, p, progress)


def import_symlink(target: str | bytes, sink: BlockSink, params: ImportParams | None = None) -> ImportResult:
    """Store a UnixFS Symlink node pointing at ``target``; return it."""
    p = params or ImportParams()
    raw = target if isinstance(target, bytes) else target.encode("utf-8", "surrogateescape")
    block = encode_pbnode(PBNode([], encode_unixfs(UnixFSData(type=SYMLINK, data=raw))))
    cid = p.node_cid(block)
    sink.put_many([(cid, block)], verify=False)
    return ImportResult(cid, len(block), 0)


def _name_bytes(name: str | bytes) -> bytes:
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    if not raw:
        raise ImporterError("a directory entry needs a non-empty name")
    if b"/" in raw:
        raise ImporterError(f"directory entry name {raw!r} contains '/'")
    if raw in (b".", b".."):
        raise ImporterError(f"directory entry name {raw!r} is not allowed")
    return raw


class DirectoryBuilder:
    """Collects a directory's entries and writes it as a basic directory or a HAMT shard, as kubo would."""

    def __init__(self, params: ImportParams | None = None) -> None:
        self._p = params or ImportParams()
        self._entries: dict[bytes, tuple[bytes, int]] = {}
        self._links_estimate = 0
        self._block_size = len(_DIR_DATA) + 2

    def add_entry(self, name: str | bytes, cid: bytes, tsize: int) -> None:
        """Add a child by name, CID (bytes) and cumulative size; names must be unique."""
        raw = _name_bytes(name)
        if raw in self._entries:
            raise ImporterError(f"duplicate directory entry {raw.decode('utf-8', 'replace')!r}")
        if tsize < 0:
            raise ImporterError("a directory entry's size must not be negative")
        self._entries[raw] = (cid, tsize)
        self._links_estimate += len(raw) + len(cid)
        body = 1 + len(encode_varint(len(cid))) + len(cid) + 1 + len(encode_varint(len(raw))) + len(raw)
        body += 1 + len(encode_varint(tsize))
        self._block_size += 1 + len(encode_varint(body)) + body

    def __len__(self) -> int:
        return len(self._entries)

    def estimated_size(self) -> int:
        """The size kubo compares with the HAMT threshold, under the configured estimation mode."""
        if self._p.hamt_estimation == "block":
            return self._block_size
        return self._links_estimate

    def is_sharded(self) -> bool:
        """True when this directory will be written as a HAMT shard."""
        if self._p.hamt_estimation == "disabled":
            return False
        return self.estimated_size() > self._p.hamt_threshold

    def finish(self, sink: BlockSink) -> ImportResult:
        """Write the directory's block(s) to ``sink``; return its root CID and cumulative size."""
        out = _Batcher(sink)
        if self.is_sharded():
            entries = [(name, cid, tsize) for name, (cid, tsize) in self._entries.items()]
            cid, size = hamt.build_hamt(entries, out.add, cid_version=self._p.cid_version, fanout=self._p.hamt_fanout)
            out.flush()
            return ImportResult(cid, size, 0)
        links = [PBLink(cid, name, tsize) for name, (cid, tsize) in sorted(self._entries.items())]
        block = encode_pbnode(PBNode(links, _DIR_DATA))
        cid = self._p.node_cid(block)
        out.add(cid, block)
        out.flush()
        size = len(block)
        for link in links:
            size += link.tsize or 0
        return ImportResult(cid, size, 0)


def _is_hidden(name: bytes) -> bool:
    return name.startswith(b".")


def import_path(
    path: str | os.PathLike[str], sink: BlockSink, params: ImportParams | None = None, progress: Progress = None
) -> Iterator[AddedEntry]:
    """Import a file, symlink or directory tree; yield kubo's ``added`` entries in kubo's order.

    Files come as they finish (directories walked in name order), then every
    directory after its children, the root last; with ``wrap_with_directory``
    a final entry with an empty name is the wrapping directory. Names are
    relative to the parent of ``path``. Hidden entries (a name starting
    with ``.``) inside directories are skipped unless ``params.hidden``.
    Every block of an entry is in ``sink`` when the entry is yielded.
    """
    p = params or ImportParams()
    fspath = os.fspath(path)
    base = os.path.basename(os.path.normpath(fspath))
    if not base or base in (".", ".."):
        base = os.path.basename(os.path.abspath(fspath)) or "root"
    dirs: list[AddedEntry] = []
    last = yield from _import_any(os.fsencode(fspath), base, sink, p, progress, dirs)
    yield from dirs
    if p.wrap_with_directory:
        wrapper = DirectoryBuilder(p)
        wrapper.add_entry(base, last.cid, last.size)
        res = wrapper.finish(sink)
        yield AddedEntry("", res.cid, res.size)


def _import_any(
    fspath: bytes, name: str, sink: BlockSink, p: ImportParams, progress: Progress, dirs: list[AddedEntry]
) -> Generator[AddedEntry, None, AddedEntry]:
    """Import the object at ``fspath``: yield file and symlink entries, append directory entries to ``dirs``.

    Returns the entry of the object itself.
    """
    try:
        st = os.lstat(fspath)
    except OSError as exc:
        raise ImporterError(f"{os.fsdecode(fspath)}: {exc.strerror}") from None
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        res = import_symlink(os.readlink(fspath), sink, p)
        entry = AddedEntry(name, res.cid, res.size)
        yield entry
        return entry
    if stat.S_ISREG(mode):
        try:
            fh = open(fspath, "rb", buffering=0)
        except OSError as exc:
            raise ImporterError(f"{os.fsdecode(fspath)}: {exc.strerror}") from None
        with fh:
            res = import_file(fh, sink, p, progress)
        entry = AddedEntry(name, res.cid, res.size)
        yield entry
        return entry
    if stat.S_ISDIR(mode):
        builder = DirectoryBuilder(p)
        try:
            children = sorted(os.listdir(fspath))
        except OSError as exc:
            raise ImporterError(f"{os.fsdecode(fspath)}: {exc.strerror}") from None
        sub_dirs: dict[bytes, list[AddedEntry]] = {}
        for child in children:
            if not p.hidden and _is_hidden(child):
                continue
            child_dirs: list[AddedEntry] = []
            own = yield from _import_any(
                fspath + b"/" + child, name + "/" + os.fsdecode(child), sink, p, progress, child_dirs
            )
            builder.add_entry(child, own.cid, own.size)
            if child_dirs:
                sub_dirs[child] = child_dirs
        res = builder.finish(sink)
        # kubo lists directories child by child in the order the directory stores them
        order = hamt.hamt_order(list(sub_dirs), p.hamt_fanout) if builder.is_sharded() else sorted(sub_dirs)
        for child in order:
            dirs.extend(sub_dirs[child])
        entry = AddedEntry(name, res.cid, res.size)
        dirs.append(entry)
        return entry
    raise ImporterError(f"{os.fsdecode(fspath)}: unsupported file type (not a file, directory or symlink)")
