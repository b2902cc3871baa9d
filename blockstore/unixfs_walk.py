"""The UnixFS walks, written once as sans-I/O cores: file byte ranges, directory listing and lookup, paths.

Each core is a generator of the :mod:`blockstore.walk_protocol`: it yields
``Need(cid)`` for every block it reads and is resumed with the bytes. The
exporter (``ipfs cat/ls/get``) drives them over the local block store with
:func:`~blockstore.walk_protocol.stream_sync`; the gateway drives the same
cores over a source that may fetch from the network (``node/gateway/walk.py``).

- :func:`file_range` outputs the bytes ``[start, end)`` of a UnixFS file or
  raw block, reading only the blocks under the range (the ``blocksizes`` of
  each File node tell which children to skip), and checks that every child
  holds the size its parent declares.
- :func:`dir_entries` outputs (name, link) of a plain or HAMT directory.
- :func:`dir_find` returns the link of one name (HAMT: only the shards on
  the path to the name are read).
- :func:`resolve` follows a content path through directories, HAMTs,
  dag-pb link names and DAG-CBOR fields/links.

Every block a core reads beyond the one it was given is also output as a
:class:`~blockstore.walk_protocol.Visited` (CAR responses forward them;
:func:`file_range` only when asked, as its readers want bytes alone).
A dag-pb node without UnixFS Data is walked as a plain directory of named
links (as boxo does). Malformed nodes raise :class:`CorruptNode`; using a
node as something it is not raises :class:`NotADirectory` /
:class:`NotAFile`; a name that is not there raises :class:`PathNotFound`.
All are :class:`ExportError`\\ s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import libipld

from . import hamt
from .cborvalue import CborError, Link, decode_cbor
from .cid import DAG_CBOR, DAG_PB, RAW, CidError, cid_to_str, codec_of
from .dagpb import DagPBError, PBLink, PBNode, decode_pbnode
from .unixfs import DIRECTORY, FILE, HAMT_SHARD, TYPE_NAMES, UnixFSData, UnixFSError, decode_unixfs
from .unixfs import RAW as UNIXFS_RAW
from .walk_protocol import Ahead, Need, Visited, Walk, collect
from .errors import InvalidData

__all__ = [
    "ExportError",
    "CorruptNode",
    "NotADirectory",
    "NotAFile",
    "PathNotFound",
    "Resolution",
    "block_name",
    "codec",
    "decode_node",
    "file_node_size",
    "file_range",
    "dir_entries",
    "dir_find",
    "resolve",
]


class ExportError(InvalidData):
    """Content that cannot be read the way it was asked for."""


class CorruptNode(ExportError):
    """A block that does not decode as valid dag-pb/UnixFS, or a file DAG whose sizes disagree."""


class NotADirectory(ExportError):
    """A path step or listing on something that is not a directory."""


class NotAFile(ExportError):
    """A read of something that is not a file."""


class PathNotFound(ExportError):
    """A path segment that names nothing in its directory (HTTP 404)."""

    status = 404


# ---------------------------------------------------------------------- decoding
def block_name(cid: bytes) -> str:
    """The CID as text for messages (hex when it does not parse)."""
    try:
        return cid_to_str(cid)
    except (ValueError, TypeError):
        return cid.hex()


def codec(cid: bytes) -> int:
    """The CID's codec; :class:`CorruptNode` for an invalid CID."""
    try:
        return codec_of(cid)
    except CidError as exc:
        raise CorruptNode(f"invalid CID: {exc}") from None


def decode_node(cid: bytes, data: bytes) -> tuple[PBNode, UnixFSData | None]:
    """Decode a dag-pb block and its UnixFS Data (None when the node has no Data)."""
    try:
        node = decode_pbnode(data)
        fs = decode_unixfs(node.data) if node.data is not None else None
    except (DagPBError, UnixFSError) as exc:
        raise CorruptNode(f"block {block_name(cid)} is not valid dag-pb/UnixFS: {exc}") from None
    return node, fs


def _unixfs(cid: bytes, data: bytes) -> tuple[PBNode, UnixFSData]:
    node, fs = decode_node(cid, data)
    if fs is None:
        raise CorruptNode(f"dag-pb node {block_name(cid)} has no UnixFS Data")
    return node, fs


def file_node_size(cid: bytes, data: bytes) -> tuple[int, PBNode | None, UnixFSData | None]:
    """(content size, node, unixfs) of a file node or raw block; :class:`NotAFile` for anything else.

    The size is what the node's blocks hold (inline data + the children's
    ``blocksizes``), the figure each level of a file DAG is checked against.
    """
    c = codec(cid)
    if c == RAW:
        return len(data), None, None
    if c != DAG_PB:
        raise NotAFile(f"{block_name(cid)} is a 0x{c:x} block, not a UnixFS file")
    node, fs = _unixfs(cid, data)
    if fs.type not in (FILE, UNIXFS_RAW):
        raise NotAFile(f"{block_name(cid)} is a {TYPE_NAMES[fs.type]}, not a file")
    inline = len(fs.data or b"")
    if node.links and len(fs.blocksizes) != len(node.links):
        raise CorruptNode(f"file node {block_name(cid)} has {len(node.links)} links but {len(fs.blocksizes)} blocksizes")
    return inline + sum(fs.blocksizes), node, fs


# ---------------------------------------------------------------------- files
def file_range(cid: bytes, block: bytes, start: int, end: int, *, visits: bool = False) -> Walk[bytes | Visited, None]:
    """Walk core: output the bytes ``[start, end)`` of the file ``cid`` whose root block is ``block``.

    ``end`` is clipped to the file's size. Outputs the file's bytes in order
    as ``bytes`` pieces (whole blocks are not copied); with ``visits`` also a
    :class:`Visited` for every block it reads (the root first, then
    pre-order; an empty range outputs the root's only), which is what a CAR
    of the range carries. Only blocks that overlap the range are needed;
    before reading a node's children it yields an ``Ahead`` with those it
    will need. Holds the pending siblings of each level, never more than one
    block per level.
    """
    size, _node, _fs = file_node_size(cid, block)
    if visits:
        yield Visited(cid, block)
    end = min(end, size)
    if start >= end:
        return
    # (cid, file offset where its content begins, its content size, block if already read)
    stack: list[tuple[bytes, int, int, bytes | None]] = [(cid, 0, size, block)]
    while stack:
        c, base, expect, data = stack.pop()
        if data is None:
            data = yield Need(c, "file chunk")
            assert data is not None
            if visits:
                yield Visited(c, data)
        kind = codec(c)
        if kind == RAW:
            if len(data) != expect:
                raise CorruptNode(f"raw leaf {block_name(c)} holds {len(data)} bytes but its parent says {expect}")
            a = start - base if start > base else 0
            b = end - base
            if a == 0 and b >= len(data):
                if data:
                    yield data
            else:
                yield data[a:b]
            continue
        if kind != DAG_PB:
            raise CorruptNode(f"file DAG contains a 0x{kind:x} block {block_name(c)}")
        got, node, fs = file_node_size(c, data)
        assert node is not None and fs is not None
        if got != expect:
            raise CorruptNode(f"file node {block_name(c)} holds {got} bytes but its parent says {expect}")
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
        if children:
            yield Ahead(tuple(child[0] for child in children), "file chunk")
            stack.extend(reversed(children))


# ---------------------------------------------------------------------- directories
def _hamt_error(cid: bytes, exc: Exception) -> CorruptNode:
    return CorruptNode(f"HAMT directory {block_name(cid)}: {exc}")


def _directory(cid: bytes, data: bytes, where: str) -> tuple[PBNode, UnixFSData | None]:
    """The node of a plain directory (or Data-less dag-pb node) or HAMT; :class:`NotADirectory` otherwise."""
    c = codec(cid)
    if c != DAG_PB:
        raise NotADirectory(f"{where} is a {'raw' if c == RAW else f'0x{c:x}'} block, not a directory")
    node, fs = decode_node(cid, data)
    if fs is not None and fs.type not in (DIRECTORY, HAMT_SHARD):
        raise NotADirectory(f"{where} is a {TYPE_NAMES[fs.type]}, not a directory")
    return node, fs


def dir_entries(cid: bytes, block: bytes) -> Walk[tuple[bytes, PBLink] | Visited, None]:
    """Walk core: output (name, link) of every entry of a plain or HAMT directory, in stored order.

    A plain directory needs no block; a HAMT needs each sub-shard (output as
    :class:`Visited` before its entries).
    """
    node, fs = _directory(cid, block, block_name(cid))
    if fs is None or fs.type == DIRECTORY:
        for link in node.links:
            yield link.name or b"", link
        return
    try:
        yield from hamt.shard_entries(node)
    except (hamt.HamtError, DagPBError, UnixFSError) as exc:
        raise _hamt_error(cid, exc) from None


def dir_find(cid: bytes, block: bytes, name: bytes, where: str | None = None) -> Walk[Visited, PBLink | None]:
    """Walk core: the link named ``name`` in a plain or HAMT directory, or None.

    ``where`` names the directory in errors (default: its CID).
    """
    node, fs = _directory(cid, block, block_name(cid) if where is None else where)
    if fs is None or fs.type == DIRECTORY:
        for link in node.links:
            if (link.name or b"") == name:
                return link
        return None
    try:
        return (yield from hamt.shard_find(node, name))
    except (hamt.HamtError, DagPBError, UnixFSError) as exc:
        raise _hamt_error(cid, exc) from None


# ---------------------------------------------------------------------- paths
class Resolution(NamedTuple):
    """Where a content path leads."""

    cid: bytes
    """the CID the path names (with ``rest``: the DAG-CBOR block the path ends inside)"""
    trail: list[tuple[bytes, bytes]]
    """every block read on the way, root first, HAMT shards included: (cid, block)"""
    roots: list[bytes]
    """one CID per path segment, the root first (``X-Ipfs-Roots``); ``cid`` is the last"""
    rest: tuple[str, ...]
    """segments that name a value inside the DAG-CBOR block ``cid`` rather than a link (else empty)"""


def _cbor_step(cid: bytes, data: bytes, segments: Sequence[str], i: int, where: str) -> tuple[bytes | None, int]:
    """Follow ``segments[i:]`` inside the DAG-CBOR block ``data`` until a link.

    Returns (CID of the link, index of the next unused segment), or (None, i)
    when the segments end on a value inside the block.
    """
    try:
        libipld.decode_dag_cbor(data)  # strict DAG-CBOR
        value: Any = decode_cbor(data)  # the same item, with links told apart from byte strings
    except (ValueError, CborError) as exc:
        raise CorruptNode(f"block {block_name(cid)} is not valid DAG-CBOR: {exc}") from None
    j = i
    while j < len(segments):
        seg = segments[j]
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
        j += 1
        if isinstance(value, Link):
            return value.cid, j
    return None, i


def resolve(root: bytes, segments: Sequence[str]) -> Walk[Any, Resolution]:
    """Walk core: follow ``root/segments...`` through plain and HAMT directories and DAG-CBOR links.

    Needs one block per step (plus the HAMT shards on the way), never the
    block the path ends on. Outputs nothing; returns the :class:`Resolution`.
    """
    cid = root
    where = block_name(root)
    trail: list[tuple[bytes, bytes]] = []
    roots = [root]
    i = 0
    while i < len(segments):
        data = yield Need(cid, f"path segment {segments[i - 1]!r}" if i else "")
        assert data is not None
        trail.append((cid, data))
        kind = codec(cid)
        if kind == DAG_CBOR:
            nxt, j = _cbor_step(cid, data, segments, i, where)
            if nxt is None:
                roots.extend([cid] * (len(segments) - i))
                return Resolution(cid, trail, roots, tuple(segments[i:]))
            roots.extend([cid] * (j - i - 1))
            where = where + "/" + "/".join(segments[i:j])
            i = j
        elif kind == DAG_PB:
            seg = segments[i]
            shards: list[Visited] = []
            link = yield from collect(dir_find(cid, data, seg.encode("utf-8", "surrogateescape"), where), shards)
            trail.extend(shards)
            if link is None:
                raise PathNotFound(f"no link named {seg!r} under {where}")
            nxt = link.hash
            where = f"{where}/{seg}"
            i += 1
        else:
            raise NotADirectory(f"{where} is not a directory")
        cid = nxt
        roots.append(cid)
    return Resolution(cid, trail, roots, ())
