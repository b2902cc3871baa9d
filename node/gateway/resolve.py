"""Async path resolution over a :class:`BlockSource`: dag-pb directories, HAMT shards and DAG-CBOR links.

The blockstore's HAMT and exporter helpers take a synchronous ``get_block``; the gateway's source is async
(bitswap may fetch), so the few walks the gateway needs are written here on top of the shared decoders.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator, NamedTuple

from blockstore.cid import DAG_CBOR, DAG_PB, cid_to_str, codec_of
from blockstore.dagpb import DagPBError, PBLink, PBNode, decode_pbnode
from blockstore.hamt import MURMUR3_X64_64, HamtError, hamt_slot, slot_prefix
from blockstore.unixfs import DIRECTORY, HAMT_SHARD, UnixFSData, UnixFSError, decode_unixfs

from . import cbor
from .source import BlockNotFound, BlockSource, BlockTimeout

__all__ = ["GatewayError", "Resolved", "resolve_path", "unixfs_of", "hamt_find", "hamt_entries", "hamt_shards", "dir_find", "fetch", "fetch_in_order"]


class GatewayError(Exception):
    """A request that ends in an HTTP error: ``status`` plus one clear message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Resolved(NamedTuple):
    """The outcome of walking a content path."""

    cid: bytes
    """the terminal CID"""
    block: bytes
    """the terminal block"""
    trail: list[tuple[bytes, bytes]]
    """every block read on the way, root to terminus, HAMT shards included: (cid, block)"""
    roots: list[bytes]
    """one CID per path segment (the root first), for ``X-Ipfs-Roots``"""


def unixfs_of(cid: bytes, block: bytes) -> tuple[PBNode, UnixFSData | None]:
    """Decode a dag-pb block and its UnixFS Data (None when the node has no Data)."""
    try:
        node = decode_pbnode(block)
        fs = decode_unixfs(node.data) if node.data is not None else None
    except (DagPBError, UnixFSError) as exc:
        raise GatewayError(500, f"block {cid_to_str(cid)} is not valid UnixFS: {exc}") from None
    return node, fs


def _shard_width(cid: bytes, fs: UnixFSData) -> tuple[int, int]:
    if fs.hash_type != MURMUR3_X64_64:
        raise GatewayError(500, f"HAMT shard {cid_to_str(cid)} uses unsupported hash function {fs.hash_type!r}")
    fanout = fs.fanout or 256
    if fanout < 2 or fanout & (fanout - 1) or fanout > 1024:
        raise GatewayError(500, f"HAMT shard {cid_to_str(cid)} has invalid fanout {fanout}")
    return fanout, len(slot_prefix(0, fanout))


async def fetch(source: BlockSource, cid: bytes, what: str = "") -> bytes:
    """``source.get`` with not-found turned into 404 and a source timeout into 504, naming the block."""
    try:
        return await source.get(cid)
    except BlockTimeout:
        where = f" ({what})" if what else ""
        raise GatewayError(504, f"block {cid_to_str(cid)}{where} was not retrieved from the network in time") from None
    except BlockNotFound:
        where = f" ({what})" if what else ""
        raise GatewayError(404, f"block {cid_to_str(cid)}{where} not found") from None
    except TimeoutError:
        where = f" ({what})" if what else ""
        raise GatewayError(504, f"timed out retrieving block {cid_to_str(cid)}{where}") from None


def _retrieve(task: "asyncio.Future[bytes]") -> None:
    if not task.cancelled():
        task.exception()


async def fetch_in_order(
    source: BlockSource, cids: list[bytes], what: str = ""
) -> AsyncIterator[tuple[bytes, bytes]]:
    """Yield (cid, block) for ``cids`` in order, with up to ``source.concurrency`` fetches in flight."""
    window = max(int(getattr(source, "concurrency", 1)), 1)
    if window == 1 or len(cids) < 2:
        for cid in cids:
            yield cid, await fetch(source, cid, what)
        return
    queue: deque[tuple[bytes, asyncio.Future[bytes]]] = deque()
    nxt = 0
    try:
        while nxt < len(cids) or queue:
            while nxt < len(cids) and len(queue) < window:
                task = asyncio.ensure_future(fetch(source, cids[nxt], what))
                task.add_done_callback(_retrieve)
                queue.append((cids[nxt], task))
                nxt += 1
            cid, task = queue.popleft()
            yield cid, await task
    finally:
        for _, task in queue:
            task.cancel()


async def hamt_find(
    source: BlockSource, cid: bytes, node: PBNode, fs: UnixFSData, name: bytes, trail: list[tuple[bytes, bytes]]
) -> PBLink | None:
    """Find ``name`` in the HAMT rooted at ``node``; shards read on the way are appended to ``trail``."""
    depth = 0
    while True:
        fanout, width = _shard_width(cid, fs)
        try:
            want = slot_prefix(hamt_slot(name, depth, fanout), fanout)
        except HamtError as exc:
            raise GatewayError(500, f"HAMT {cid_to_str(cid)}: {exc}") from None
        child: PBLink | None = None
        for link in node.links:
            lname = link.name or b""
            if lname[:width] != want:
                continue
            if len(lname) == width:
                child = link
                break
            if lname[width:] == name:
                return link
        if child is None:
            return None
        cid = child.hash
        block = await fetch(source, cid, "HAMT shard")
        trail.append((cid, block))
        node, sub = unixfs_of(cid, block)
        if sub is None or sub.type != HAMT_SHARD:
            raise GatewayError(500, f"HAMT child {cid_to_str(cid)} is not a shard")
        fs = sub
        depth += 1


async def hamt_entries(source: BlockSource, cid: bytes, node: PBNode, fs: UnixFSData) -> AsyncIterator[tuple[bytes, PBLink]]:
    """Every (name, link) of a HAMT directory, shard by shard in link order."""
    _, width = _shard_width(cid, fs)
    for link in node.links:
        lname = link.name or b""
        if len(lname) < width:
            raise GatewayError(500, f"HAMT {cid_to_str(cid)} has a link name shorter than its slot prefix")
        if len(lname) == width:
            block = await fetch(source, link.hash, "HAMT shard")
            sub_node, sub = unixfs_of(link.hash, block)
            if sub is None or sub.type != HAMT_SHARD:
                raise GatewayError(500, f"HAMT child {cid_to_str(link.hash)} is not a shard")
            async for entry in hamt_entries(source, link.hash, sub_node, sub):
                yield entry
        else:
            yield lname[width:], link


async def hamt_shards(source: BlockSource, cid: bytes, node: PBNode, fs: UnixFSData) -> AsyncIterator[tuple[bytes, bytes]]:
    """Every sub-shard (cid, block) under a HAMT node, depth-first pre-order in link order."""
    _, width = _shard_width(cid, fs)
    for link in node.links:
        if len(link.name or b"") == width:
            block = await fetch(source, link.hash, "HAMT shard")
            yield link.hash, block
            sub_node, sub = unixfs_of(link.hash, block)
            if sub is None or sub.type != HAMT_SHARD:
                raise GatewayError(500, f"HAMT child {cid_to_str(link.hash)} is not a shard")
            async for item in hamt_shards(source, link.hash, sub_node, sub):
                yield item


async def dir_find(
    source: BlockSource, cid: bytes, node: PBNode, fs: UnixFSData | None, name: str, trail: list[tuple[bytes, bytes]]
) -> PBLink | None:
    """The link named ``name`` in a UnixFS directory or HAMT (None if absent); 404 if ``cid`` is no directory."""
    raw = name.encode("utf-8", "surrogateescape")
    if fs is not None and fs.type == HAMT_SHARD:
        return await hamt_find(source, cid, node, fs, raw, trail)
    if fs is None or fs.type == DIRECTORY:
        for link in node.links:
            if link.name == raw:
                return link
        return None
    raise GatewayError(404, f"cannot look up {name!r}: {cid_to_str(cid)} is not a directory")


async def resolve_path(source: BlockSource, root: bytes, segments: list[str]) -> Resolved:
    """Walk ``segments`` from ``root``; raise :class:`GatewayError` 404 for a missing block or name."""
    cid = root
    block = await fetch(source, cid)
    trail = [(cid, block)]
    roots = [cid]
    value: object = None  # position inside the current DAG-CBOR block
    for i, seg in enumerate(segments):
        codec = codec_of(cid)
        if codec == DAG_PB:
            node, fs = unixfs_of(cid, block)
            link = await dir_find(source, cid, node, fs, seg, trail)
            if link is None:
                shown = "/".join(segments[: i + 1])
                raise GatewayError(404, f"no link named {seg!r} under {cid_to_str(cid)} (path {shown!r})")
            cid = link.hash
        elif codec == DAG_CBOR:
            if value is None:
                try:
                    value = cbor.decode(block)
                except cbor.CborError as exc:
                    raise GatewayError(500, f"block {cid_to_str(cid)}: {exc}") from None
            if isinstance(value, dict) and seg in value:
                value = value[seg]
            elif isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
                value = value[int(seg)]
            else:
                raise GatewayError(404, f"no field {seg!r} in DAG-CBOR block {cid_to_str(cid)}")
            if not isinstance(value, cbor.Link):
                roots.append(cid)
                continue
            cid = value.cid
            value = None
        else:
            raise GatewayError(404, f"cannot traverse {seg!r}: {cid_to_str(cid)} has no named links")
        block = await fetch(source, cid, f"path segment {seg!r}")
        trail.append((cid, block))
        roots.append(cid)
    return Resolved(cid, block, trail, roots)
