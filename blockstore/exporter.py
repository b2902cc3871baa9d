"""Reading UnixFS content back out of the block store: file bytes, directory listings, paths, stats.

Everything works over a ``get_block(cid) -> bytes | None`` callback (the
local store for ``ipfs cat/ls/get``). The walks themselves are the sans-I/O
cores of :mod:`blockstore.unixfs_walk`, driven here synchronously (the
gateway drives the same cores over the network). A block the callback does
not have raises :class:`BlockNotFound`. Blocks are read lazily and only
when needed: a byte range of a file touches only the leaves under that range,
and a lookup in a HAMT directory reads only the shards on the path to the name.

Malformed nodes raise :class:`CorruptNode`; using a node as something it is
not raises :class:`NotADirectory` / :class:`NotAFile`; a name that is not
there raises :class:`PathNotFound`. All are :class:`ExportError`\\ s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from .cid import DAG_CBOR, DAG_PB, RAW
from .dagpb import PBLink
from .dagwalk import BlockNotFound, inline_data
from .links import LinksError, cbor_links
from .unixfs import DIRECTORY, FILE, HAMT_SHARD, SYMLINK, TYPE_NAMES
from .unixfs import RAW as UNIXFS_RAW
from .unixfs_walk import (
    CorruptNode,
    ExportError,
    NotADirectory,
    NotAFile,
    PathNotFound,
    block_name,
    codec,
    decode_node,
    dir_entries,
    file_node_size,
    file_range,
    resolve,
)
from .walk_protocol import run_sync, stream_sync

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
def _get(get_block: GetBlock, cid: bytes) -> bytes:
    """The block's bytes (identity CIDs inline); BlockNotFound if absent."""
    data = inline_data(cid)
    if data is not None:
        return data
    data = get_block(cid)
    if data is None:
        raise BlockNotFound(cid)
    return data


# ---------------------------------------------------------------------- files
def read_file(get_block: GetBlock, cid: bytes, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """Stream the bytes ``[offset, offset + length)`` of a UnixFS file (or a raw block).

    Reads only the blocks under the range. An offset at or past the end
    yields nothing. Raises :class:`NotAFile` for directories and other nodes.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ExportError("offset and length must not be negative")
    data = _get(get_block, cid)
    size = file_node_size(cid, data)[0]
    end = size if length is None else min(size, offset + length)
    yield from stream_sync(file_range(cid, data, offset, end), get_block)  # type: ignore[misc]


def read_symlink(get_block: GetBlock, cid: bytes) -> str:
    """The target of a UnixFS symlink."""
    data = _get(get_block, cid)
    if codec(cid) != DAG_PB:
        raise ExportError(f"{block_name(cid)} is not a symlink")
    _node, fs = decode_node(cid, data)
    if fs is None:
        raise CorruptNode(f"dag-pb node {block_name(cid)} has no UnixFS Data")
    if fs.type != SYMLINK:
        raise ExportError(f"{block_name(cid)} is a {TYPE_NAMES[fs.type]}, not a symlink")
    return (fs.data or b"").decode("utf-8", "surrogateescape")


def stat(get_block: GetBlock, cid: bytes) -> NodeStat:
    """Type, content size, links, block size and cumulative size of a node (reads one block)."""
    data = _get(get_block, cid)
    kind = codec(cid)
    if kind == RAW:
        return NodeStat(cid, "file", len(data), 0, len(data), len(data))
    if kind != DAG_PB:
        try:
            n = len(cbor_links(data)) if kind == DAG_CBOR else 0
        except LinksError as exc:
            raise CorruptNode(f"block {block_name(cid)}: {exc}") from None
        name = "dag-cbor" if kind == DAG_CBOR else f"0x{kind:x}"
        return NodeStat(cid, name, len(data), n, len(data), len(data))
    node, fs = decode_node(cid, data)
    cumulative = len(data) + sum(link.tsize or 0 for link in node.links)
    if fs is None:
        return NodeStat(cid, "dag-pb", len(data), len(node.links), len(data), cumulative)
    if fs.type in (FILE, UNIXFS_RAW):
        size = file_node_size(cid, data)[0]
        name = "file"
    elif fs.type == SYMLINK:
        size, name = len(fs.data or b""), "symlink"
    else:
        size, name = 0, "directory" if fs.type in (DIRECTORY, HAMT_SHARD) else TYPE_NAMES[fs.type]
    return NodeStat(cid, name, size, len(node.links), len(data), cumulative, fs.mode, fs.mtime)


# ---------------------------------------------------------------------- directories
def _entry(get_block: GetBlock, name: bytes, link: PBLink, resolve_types: bool) -> DirEntry:
    """The entry of ``link``; with ``resolve_types`` its root block is read for its type and size."""
    text = name.decode("utf-8", "surrogateescape")
    cid = link.hash
    if not resolve_types:
        return DirEntry(text, cid, None, "unknown", link.tsize)
    kind = codec(cid)
    if kind == RAW:
        # a raw leaf's Tsize is its length; read the block only when the link lacks it
        size = link.tsize if link.tsize is not None else len(_get(get_block, cid))
        return DirEntry(text, cid, size, "file", link.tsize)
    if kind != DAG_PB:
        return DirEntry(text, cid, None, "dag-cbor" if kind == DAG_CBOR else f"0x{kind:x}", link.tsize)
    data = _get(get_block, cid)
    _node, fs = decode_node(cid, data)
    if fs is None:
        return DirEntry(text, cid, None, "dag-pb", link.tsize)
    if fs.type in (FILE, UNIXFS_RAW):
        return DirEntry(text, cid, file_node_size(cid, data)[0], "file", link.tsize)
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
    for event in stream_sync(dir_entries(cid, data), get_block):
        if type(event) is tuple:
            name, link = event
            yield _entry(get_block, name, link, resolve_types)


def resolve_path(get_block: GetBlock, root: bytes, segments: Sequence[str]) -> bytes:
    """The CID that ``root/segments...`` names, through plain and HAMT directories and DAG-CBOR links.

    Reads one block per step (plus the HAMT shards on the way), not the one
    the path names. A path that ends on a value inside a DAG-CBOR block
    raises :class:`NotADirectory`.
    """
    res = run_sync(resolve(root, segments), get_block)
    if res.rest:
        where = "/".join([block_name(root), *segments])
        raise NotADirectory(f"{where} is a value inside DAG-CBOR block {block_name(res.cid)}, not a link")
    return res.cid
