"""Reading UnixFS content back out of blocks: file bytes, directory listings, paths, stats.

Everything works over a ``get_block(cid) -> bytes | None`` callback, so the
same code reads from the local store or from a fetcher that asks bitswap. A
block the callback does not have raises :class:`BlockNotFound` (the gateway
may fetch it and retry, or answer 404/504). Blocks are read lazily and only
when needed: a byte range of a file touches only the leaves under that range
(the ``blocksizes`` of each File node tell which children to skip), and a
lookup in a HAMT directory reads only the shards on the path to the name.

Malformed nodes raise :class:`CorruptNode`; using a node as something it is
not raises :class:`NotADirectory` / :class:`NotAFile`; a name that is not
there raises :class:`PathNotFound`. All are :class:`ExportError`\\ s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import libipld

from . import hamt
from .cid import DAG_CBOR, DAG_PB, RAW, CidError, cid_to_str, parse_cid
from .dagpb import DagPBError, PBLink, PBNode, decode_pbnode
from .dagwalk import BlockNotFound, inline_data
from .links import LinksError, cbor_links
from .unixfs import DIRECTORY, FILE, HAMT_SHARD, SYMLINK, TYPE_NAMES, UnixFSData, UnixFSError, decode_unixfs
from .unixfs import RAW as UNIXFS_RAW

__all__ = [
    "BlockNotFound",
    "ExportError",
    "CorruptNode",
    "NotADirectory",
    "NotAFile",
    "PathNotFound",
    "DirEntry",
    "NodeStat",
    "read_file",
    "read_symlink",
    "stat",
    "list_dir",
    "resolve_path",
]

GetBlock = Callable[[bytes], "bytes | None"]


class ExportError(ValueError):
    """Content that cannot be read the way it was asked for."""


class CorruptNode(ExportError):
    """A block that does not decode as valid dag-pb/UnixFS, or a file DAG whose sizes disagree."""


class NotADirectory(ExportError):
    """A path step or listing on something that is not a directory."""


class NotAFile(ExportError):
    """A read of something that is not a file."""


class PathNotFound(ExportError):
    """A path segment that names nothing in its directory."""


class DirEntry(NamedTuple):
    """One directory entry.

    ``type`` is ``"file"``, ``"directory"``, ``"symlink"``, ``"metadata"``,
    ``"dag-cbor"``... or ``"unknown"`` when types were not resolved. ``size``
    is the file size for files (the target length for symlinks), ``None``
    otherwise; ``tsize`` is the link's cumulative DAG size.
    """

    name: str
    cid: bytes
    size: int | None
    type: str
    tsize: int | None = None
    target: str | None = None


class NodeStat(NamedTuple):
    """What a node is: its type, content size, link count, block size and cumulative DAG size."""

    cid: bytes
    type: str
    size: int
    blocks: int
    block_size: int
    cumulative_size: int
    mode: int | None = None
    mtime: tuple[int, int | None] | None = None


# ---------------------------------------------------------------------- helpers
def _name(cid: bytes) -> str:
    try:
        return cid_to_str(cid)
    except (ValueError, TypeError):
        return cid.hex()


def _get(get_block: GetBlock, cid: bytes) -> bytes:
    """The block's bytes (identity CIDs inline); BlockNotFound if absent."""
    data = inline_data(cid)
    if data is not None:
        return data
    data = get_block(cid)
    if data is None:
        raise BlockNotFound(cid)
    return data


def _codec(cid: bytes) -> int:
    try:
        return parse_cid(cid).codec
    except CidError as exc:
        raise CorruptNode(f"invalid CID: {exc}") from None


def _decode(cid: bytes, data: bytes) -> tuple[PBNode, UnixFSData | None]:
    """Decode a dag-pb block and its UnixFS Data (None when the node has no Data)."""
    try:
        node = decode_pbnode(data)
        fs = decode_unixfs(node.data) if node.data is not None else None
    except (DagPBError, UnixFSError) as exc:
        raise CorruptNode(f"block {_name(cid)} is not valid dag-pb/UnixFS: {exc}") from None
    return node, fs


def _unixfs(cid: bytes, data: bytes) -> tuple[PBNode, UnixFSData]:
    node, fs = _decode(cid, data)
    if fs is None:
        raise CorruptNode(f"dag-pb node {_name(cid)} has no UnixFS Data")
    return node, fs


def _link_name(link: PBLink) -> str:
    return (link.name or b"").decode("utf-8", "surrogateescape")


def _strict_get(get_block: GetBlock) -> Callable[[bytes], bytes]:
    """A get_block that raises BlockNotFound instead of answering None (for the HAMT walkers)."""

    def get(cid: bytes) -> bytes:
        return _get(get_block, cid)

    return get


# ---------------------------------------------------------------------- files
def _file_size(cid: bytes, data: bytes) -> tuple[int, PBNode | None, UnixFSData | None]:
    """(content size, node, unixfs) of a file root; NotAFile for anything else."""
    codec = _codec(cid)
    if codec == RAW:
        return len(data), None, None
    if codec != DAG_PB:
        raise NotAFile(f"{_name(cid)} is a 0x{codec:x} block, not a UnixFS file")
    node, fs = _unixfs(cid, data)
    if fs.type not in (FILE, UNIXFS_RAW):
        raise NotAFile(f"{_name(cid)} is a {TYPE_NAMES[fs.type]}, not a file")
    inline = len(fs.data or b"")
    if node.links and len(fs.blocksizes) != len(node.links):
        raise CorruptNode(f"file node {_name(cid)} has {len(node.links)} links but {len(fs.blocksizes)} blocksizes")
    return inline + sum(fs.blocksizes), node, fs


def read_file(get_block: GetBlock, cid: bytes, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """Stream the bytes ``[offset, offset + length)`` of a UnixFS file (or a raw block).

    Reads only the blocks under the range. An offset at or past the end
    yields nothing. Raises :class:`NotAFile` for directories and other nodes.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ExportError("offset and length must not be negative")
    data = _get(get_block, cid)
    size, node, fs = _file_size(cid, data)
    end = size if length is None else min(size, offset + length)
    if offset >= end:
        return
    start = offset
    # (cid, file offset where its content begins, its content size, block if already read)
    stack: list[tuple[bytes, int, int, bytes | None]] = [(cid, 0, size, data)]
    while stack:
        c, base, expect, block = stack.pop()
        if block is None:
            block = _get(get_block, c)
        codec = _codec(c)
        if codec == RAW:
            if len(block) != expect:
                raise CorruptNode(f"raw leaf {_name(c)} holds {len(block)} bytes but its parent says {expect}")
            a = start - base if start > base else 0
            b = end - base
            if a == 0 and b >= len(block):
                if block:
                    yield block
            else:
                yield block[a:b]
            continue
        if codec != DAG_PB:
            raise CorruptNode(f"file DAG contains a 0x{codec:x} block {_name(c)}")
        got, node, fs = _file_size(c, block)
        if got != expect:
            raise CorruptNode(f"file node {_name(c)} holds {got} bytes but its parent says {expect}")
        inline = fs.data or b""
        if inline:
            a = start - base if start > base else 0
            b = end - base
            if a < len(inline) and b > 0:
                yield inline[a:b]
        pos = base + len(inline)
        children: list[tuple[bytes, int, int, bytes | None]] = []
        for link, bs in zip(node.links, fs.blocksizes):
            if pos >= end:
                break
            if pos + bs > start and bs:
                children.append((link.hash, pos, bs, None))
            pos += bs
        stack.extend(reversed(children))


def read_symlink(get_block: GetBlock, cid: bytes) -> str:
    """The target of a UnixFS symlink."""
    data = _get(get_block, cid)
    if _codec(cid) != DAG_PB:
        raise ExportError(f"{_name(cid)} is not a symlink")
    _node, fs = _unixfs(cid, data)
    if fs.type != SYMLINK:
        raise ExportError(f"{_name(cid)} is a {TYPE_NAMES[fs.type]}, not a symlink")
    return (fs.data or b"").decode("utf-8", "surrogateescape")


def stat(get_block: GetBlock, cid: bytes) -> NodeStat:
    """Type, content size, links, block size and cumulative size of a node (reads one block)."""
    data = _get(get_block, cid)
    codec = _codec(cid)
    if codec == RAW:
        return NodeStat(cid, "file", len(data), 0, len(data), len(data))
    if codec != DAG_PB:
        try:
            n = len(cbor_links(data)) if codec == DAG_CBOR else 0
        except LinksError as exc:
            raise CorruptNode(f"block {_name(cid)}: {exc}") from None
        kind = "dag-cbor" if codec == DAG_CBOR else f"0x{codec:x}"
        return NodeStat(cid, kind, len(data), n, len(data), len(data))
    node, fs = _decode(cid, data)
    cumulative = len(data) + sum(link.tsize or 0 for link in node.links)
    if fs is None:
        return NodeStat(cid, "dag-pb", len(data), len(node.links), len(data), cumulative)
    if fs.type in (FILE, UNIXFS_RAW):
        size = _file_size(cid, data)[0]
        kind = "file"
    elif fs.type == SYMLINK:
        size, kind = len(fs.data or b""), "symlink"
    else:
        size, kind = 0, "directory" if fs.type in (DIRECTORY, HAMT_SHARD) else TYPE_NAMES[fs.type]
    return NodeStat(cid, kind, size, len(node.links), len(data), cumulative, fs.mode, fs.mtime)


# ---------------------------------------------------------------------- directories
def _dir_links(get_block: GetBlock, cid: bytes, data: bytes) -> Iterator[tuple[bytes, PBLink]]:
    """(name, link) of every entry of a plain or HAMT directory."""
    codec = _codec(cid)
    if codec != DAG_PB:
        raise NotADirectory(f"{_name(cid)} is a {'raw' if codec == RAW else f'0x{codec:x}'} block, not a directory")
    node, fs = _unixfs(cid, data)
    if fs.type == DIRECTORY:
        for link in node.links:
            yield link.name or b"", link
    elif fs.type == HAMT_SHARD:
        try:
            yield from hamt.hamt_iter(_strict_get(get_block), node)
        except (hamt.HamtError, DagPBError, UnixFSError) as exc:
            raise CorruptNode(f"HAMT directory {_name(cid)}: {exc}") from None
    else:
        raise NotADirectory(f"{_name(cid)} is a {TYPE_NAMES[fs.type]}, not a directory")


def _entry(get_block: GetBlock, name: bytes, link: PBLink, resolve_types: bool) -> DirEntry:
    text = name.decode("utf-8", "surrogateescape")
    cid = link.hash
    if not resolve_types:
        return DirEntry(text, cid, None, "unknown", link.tsize)
    codec = _codec(cid)
    if codec == RAW:
        # a raw leaf's Tsize is its length; read the block only when the link lacks it
        size = link.tsize if link.tsize is not None else len(_get(get_block, cid))
        return DirEntry(text, cid, size, "file", link.tsize)
    if codec != DAG_PB:
        return DirEntry(text, cid, None, "dag-cbor" if codec == DAG_CBOR else f"0x{codec:x}", link.tsize)
    data = _get(get_block, cid)
    _node, fs = _decode(cid, data)
    if fs is None:
        return DirEntry(text, cid, None, "dag-pb", link.tsize)
    if fs.type in (FILE, UNIXFS_RAW):
        return DirEntry(text, cid, _file_size(cid, data)[0], "file", link.tsize)
    if fs.type == SYMLINK:
        target = (fs.data or b"").decode("utf-8", "surrogateescape")
        return DirEntry(text, cid, len(fs.data or b""), "symlink", link.tsize, target)
    if fs.type in (DIRECTORY, HAMT_SHARD):
        return DirEntry(text, cid, None, "directory", link.tsize)
    return DirEntry(text, cid, None, TYPE_NAMES[fs.type], link.tsize)


def list_dir(get_block: GetBlock, cid: bytes, *, resolve_types: bool = True) -> Iterator[DirEntry]:
    """Stream the entries of a plain or HAMT directory in stored order.

    With ``resolve_types`` each entry's root block is read to tell its type
    and file size (as ``ipfs ls`` does); without, only the directory's own
    blocks are read and ``type`` is ``"unknown"``.
    """
    data = _get(get_block, cid)
    for name, link in _dir_links(get_block, cid, data):
        yield _entry(get_block, name, link, resolve_types)


def _lookup(get_block: GetBlock, cid: bytes, data: bytes, segment: str, where: str) -> bytes:
    """The CID named ``segment`` in the directory ``cid`` (plain or HAMT)."""
    if _codec(cid) != DAG_PB:
        raise NotADirectory(f"{where} is not a directory")
    node, fs = _unixfs(cid, data)
    key = segment.encode("utf-8", "surrogateescape")
    if fs.type == DIRECTORY:
        for link in node.links:
            if (link.name or b"") == key:
                return link.hash
        raise PathNotFound(f"no link named {segment!r} under {where}")
    if fs.type == HAMT_SHARD:
        try:
            found = hamt.hamt_find(_strict_get(get_block), node, key)
        except (hamt.HamtError, DagPBError, UnixFSError) as exc:
            raise CorruptNode(f"HAMT directory {_name(cid)}: {exc}") from None
        if found is None:
            raise PathNotFound(f"no link named {segment!r} under {where}")
        return found.hash
    raise NotADirectory(f"{where} is a {TYPE_NAMES[fs.type]}, not a directory")


def _cbor_walk(cid: bytes, data: bytes, segments: Sequence[str], i: int, where: str) -> tuple[bytes, int]:
    """Resolve ``segments[i:]`` inside the DAG-CBOR block ``data`` until a link is reached.

    Returns (CID reached, index of the next unused segment). A byte string
    counts as a link when it is one of the block's tag-42 CIDs.
    """
    try:
        value: Any = libipld.decode_dag_cbor(data)
        links = set(cbor_links(data))
    except (ValueError, LinksError) as exc:
        raise CorruptNode(f"block {_name(cid)} is not valid DAG-CBOR: {exc}") from None
    while i < len(segments):
        seg = segments[i]
        if isinstance(value, dict):
            if seg not in value:
                raise PathNotFound(f"no field {seg!r} under {where}")
            value = value[seg]
        elif isinstance(value, list):
            if not seg.isdigit() or int(seg) >= len(value):
                raise PathNotFound(f"no index {seg!r} under {where}")
            value = value[int(seg)]
        else:
            raise NotADirectory(f"{where} is not a map or list")
        where = f"{where}/{seg}"
        i += 1
        if isinstance(value, bytes) and value in links:
            return value, i
    raise NotADirectory(f"{where} is a value inside DAG-CBOR block {_name(cid)}, not a link")


def resolve_path(get_block: GetBlock, root: bytes, segments: Sequence[str]) -> bytes:
    """The CID that ``root/segments...`` names, through plain and HAMT directories and DAG-CBOR links.

    Reads one block per step (plus the HAMT shards on the way).
    """
    cid = root
    where = _name(root)
    i = 0
    while i < len(segments):
        data = _get(get_block, cid)
        if _codec(cid) == DAG_CBOR:
            cid, j = _cbor_walk(cid, data, segments, i, where)
            where = where + "/" + "/".join(segments[i:j])
            i = j
            continue
        seg = segments[i]
        cid = _lookup(get_block, cid, data, seg, where)
        where = f"{where}/{seg}"
        i += 1
    return cid
