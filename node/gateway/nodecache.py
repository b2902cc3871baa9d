"""Decoded dag-pb nodes by CID, so that a request decodes its terminal node once and a popular small one never again.

A block named by a CID never changes (its bytes hash to the CID), so what is derived from the
block alone is the same for every request that names the CID: its dag-pb links, its UnixFS
Data, the file size it declares, the type its first bytes sniff as. :func:`decoded` decodes a
block into a :class:`DecodedNode` that the whole request passes along (file size, ranges,
sniffing and the body all read it instead of decoding again), and keeps small ones in a
:class:`NodeCache`.

The cache only saves decoding: the block itself is still read from the block source on every
request, so what the gateway answers for a block it no longer has (404, 504, ``only-if-cached``)
and the block read metrics do not depend on the cache. Bounds (a flood of distinct CIDs evicts
the least recently used entries; it cannot grow the cache):

- only blocks of at most :data:`MAX_BLOCK` bytes are kept (large nodes are decoded per request);
- at most ``max_entries`` entries and ``max_bytes`` bytes, each entry counted as twice its
  block (the decoded Data and inline file bytes are copies) plus :data:`ENTRY_OVERHEAD`.
"""

from __future__ import annotations

from blockstore.cid import DAG_PB, codec_of
from blockstore.dagpb import PBNode
from blockstore.unixfs import FILE, RAW as UNIXFS_RAW, UnixFSData
from blockstore.unixfs_walk import CorruptNode, decode_node

from .errors import GatewayError
from .lru import SizedLRU

__all__ = ["DecodedNode", "NodeCache", "decoded", "MAX_BLOCK", "ENTRY_OVERHEAD"]

#: largest block kept in the cache (a 1 KiB file's node is ~1.1 KiB; a 1 MiB chunk is never kept)
MAX_BLOCK = 16 * 1024
#: bytes an entry is counted for beyond its block (the objects, the dict slot, the links)
ENTRY_OVERHEAD = 512


class DecodedNode:
    """One dag-pb block decoded once: its node, its UnixFS Data (None when absent) and derived facts.

    ``inline`` is the whole content of a file whose bytes are all in this node (a file node
    without links whose declared size is its data's), else None. ``sniffed`` is the type sniffed from the content's first bytes,
    set by the first request that needs it (None until then).
    """

    __slots__ = ("cid", "node", "fs", "inline", "sniffed", "block_size")

    def __init__(self, cid: bytes, node: PBNode, fs: UnixFSData | None, block_size: int) -> None:
        self.cid = cid
        self.node = node
        self.fs = fs
        self.inline: bytes | None = None
        if fs is not None and fs.type in (FILE, UNIXFS_RAW) and not node.links and not fs.blocksizes:
            data = fs.data or b""
            if fs.filesize is None or fs.filesize == len(data):
                self.inline = data
        self.sniffed: str | None = None
        self.block_size = block_size

    @property
    def cost(self) -> int:
        """Bytes this entry is counted for in a :class:`NodeCache`."""
        return 2 * self.block_size + ENTRY_OVERHEAD


class NodeCache(SizedLRU[bytes, DecodedNode]):
    """Decoded nodes by CID: a :class:`~node.gateway.lru.SizedLRU` that keeps only nodes of small blocks."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 8 << 20) -> None:
        super().__init__(max_entries, max_bytes)

    def keep(self, entry: DecodedNode) -> None:
        """Keep ``entry`` if its block is at most :data:`MAX_BLOCK` bytes."""
        if entry.block_size <= MAX_BLOCK:
            self.put(entry.cid, entry, entry.cost)


def decoded(cache: NodeCache | None, cid: bytes, block: bytes) -> DecodedNode:
    """The :class:`DecodedNode` of the dag-pb ``block`` named ``cid``: from ``cache``, or decoded (and kept when small).

    A block that is not valid dag-pb/UnixFS is a 500 :class:`GatewayError` (as everywhere in the gateway).
    """
    if cache is not None:
        entry = cache.get(cid)
        if entry is not None:
            return entry
    if codec_of(cid) != DAG_PB:
        raise GatewayError(500, "only dag-pb blocks decode as UnixFS nodes")
    try:
        node, fs = decode_node(cid, block)
    except CorruptNode as exc:
        raise GatewayError(500, str(exc)) from None
    entry = DecodedNode(cid, node, fs, len(block))
    if cache is not None:
        cache.keep(entry)
    return entry
