"""Trustless CAR responses: the CARv1 framing and the block walks for each ``dag-scope``."""

from __future__ import annotations

from typing import AsyncIterator, Iterator

from blockstore.cid import DAG_CBOR, DAG_PB, cid_to_str, codec_of, encode_varint, is_identity
from blockstore.unixfs import FILE, HAMT_SHARD, RAW as UNIXFS_RAW

from . import cbor
from .params import CarParams, entity_span
from .resolve import GatewayError, Resolved, fetch_in_order, hamt_shards, unixfs_of
from .source import BlockSource

__all__ = ["car_header", "car_section", "CarWalk", "car_content_type"]


def _cbor_bytes_head(n: int) -> bytes:
    if n < 24:
        return bytes((0x40 | n,))
    if n < 256:
        return bytes((0x58, n))
    return b"\x59" + n.to_bytes(2, "big")


def car_header(root: bytes) -> bytes:
    """The CARv1 header (length-prefixed DAG-CBOR ``{roots: [root], version: 1}``)."""
    body = b"\xa2\x65roots\x81\xd8\x2a" + _cbor_bytes_head(len(root) + 1) + b"\x00" + root + b"\x67version\x01"
    return encode_varint(len(body)) + body


def car_section(cid: bytes, block: bytes) -> Iterator[bytes]:
    """The section of one block as two pieces (prefix + CID, then the block itself, not copied)."""
    yield encode_varint(len(cid) + len(block)) + cid
    yield block


def car_content_type(params: CarParams) -> str:
    """The exact Content-Type of a CAR response for these options."""
    return f"application/vnd.ipld.car; version=1; order={params.order}; dups={'y' if params.dups else 'n'}"


class CarWalk:
    """The blocks of one CAR response, in DFS order, honouring scope, entity-bytes and dups."""

    def __init__(self, source: BlockSource, resolved: Resolved, params: CarParams) -> None:
        self.source = source
        self.resolved = resolved
        self.params = params
        self._seen: set[bytes] = set()

    def _admit(self, cid: bytes) -> bool:
        """Whether to send this occurrence of ``cid`` (identity CIDs never; repeats only with dups=y)."""
        if is_identity(cid):
            return False
        if cid in self._seen:
            return self.params.dups
        self._seen.add(cid)
        return True

    async def blocks(self) -> AsyncIterator[tuple[bytes, bytes]]:
        """Every (cid, block) to write: the path blocks root to terminus, then the terminal's scope."""
        *path, (cid, block) = self.resolved.trail
        for pcid, pblock in path:
            if self._admit(pcid):
                yield pcid, pblock
        scope = self.params.scope
        if scope == "block":
            if self._admit(cid):
                yield cid, block
        elif scope == "entity":
            async for item in self._entity(cid, block):
                yield item
        else:
            async for item in self._all(cid, block):
                yield item

    async def _entity(self, cid: bytes, block: bytes) -> AsyncIterator[tuple[bytes, bytes]]:
        if codec_of(cid) != DAG_PB:
            if self._admit(cid):
                yield cid, block
            return
        node, fs = unixfs_of(cid, block)
        if fs is not None and fs.type in (FILE, UNIXFS_RAW):
            size = fs.filesize if fs.filesize is not None else len(fs.data or b"") + sum(fs.blocksizes)
            if self.params.entity_bytes is None:
                span = (0, size - 1) if size > 0 else None
            else:
                span = entity_span(self.params.entity_bytes, size)
            if span is None:
                if self._admit(cid):
                    yield cid, block
                return
            async for item in self._file(cid, block, span[0], span[1], 0):
                yield item
            return
        if self._admit(cid):
            yield cid, block
        if fs is not None and fs.type == HAMT_SHARD:
            async for scid, sblock in hamt_shards(self.source, cid, node, fs):
                if self._admit(scid):
                    yield scid, sblock

    async def _file(self, cid: bytes, block: bytes, first: int, last: int, base: int) -> AsyncIterator[tuple[bytes, bytes]]:
        """The blocks of a file node needed for bytes ``first..last``; children outside are never fetched."""
        if self._admit(cid):
            yield cid, block
        if codec_of(cid) != DAG_PB:
            return
        node, fs = unixfs_of(cid, block)
        if fs is None or fs.type not in (FILE, UNIXFS_RAW):
            raise GatewayError(500, f"{cid_to_str(cid)} inside a file is not a UnixFS file node")
        if len(fs.blocksizes) != len(node.links):
            raise GatewayError(500, f"file node {cid_to_str(cid)} has {len(node.links)} links but {len(fs.blocksizes)} blocksizes")
        wanted: list[bytes] = []
        offsets: list[int] = []
        offset = base + len(fs.data or b"")
        for link, size in zip(node.links, fs.blocksizes):
            if offset > last:
                break
            if offset + size > first:
                wanted.append(link.hash)
                offsets.append(offset)
            offset += size
        children = fetch_in_order(self.source, wanted, "file chunk")
        try:
            i = 0
            async for child_cid, child in children:
                async for item in self._file(child_cid, child, first, last, offsets[i]):
                    yield item
                i += 1
        finally:
            await children.aclose()

    async def _all(self, cid: bytes, block: bytes) -> AsyncIterator[tuple[bytes, bytes]]:
        """Depth-first pre-order over the whole DAG (dag-pb link order, DAG-CBOR encoding order)."""
        first_time = cid not in self._seen
        if self._admit(cid):
            yield cid, block
        if not first_time and not is_identity(cid):
            if not self.params.dups:
                return
        codec = codec_of(cid)
        if codec == DAG_PB:
            node, _ = unixfs_of(cid, block)
            children = [link.hash for link in node.links]
        elif codec == DAG_CBOR:
            try:
                children = list(cbor.iter_links(cbor.decode(block)))
            except cbor.CborError as exc:
                raise GatewayError(500, f"block {cid_to_str(cid)}: {exc}") from None
        else:
            return
        fetched = fetch_in_order(self.source, children, "DAG child")
        try:
            async for child, data in fetched:
                async for item in self._all(child, data):
                    yield item
        finally:
            await fetched.aclose()
