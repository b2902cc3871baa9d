"""Trustless CAR responses: the CARv1 framing and the block walks for each ``dag-scope``."""

from __future__ import annotations

from typing import AsyncIterator, Iterator

from blockstore.cid import DAG_CBOR, DAG_PB, cid_to_str, codec_of, encode_varint, is_identity
from blockstore.dagpb import DagPBError, decode_pbnode
from blockstore.links import LinksError, cbor_links
from blockstore.unixfs import FILE, HAMT_SHARD, RAW as UNIXFS_RAW
from blockstore.unixfs_walk import dir_entries, file_range
from blockstore.walk_protocol import Ahead, Need, Visited, Walk

from .errors import GatewayError
from .params import CarParams, entity_span
from .source import BlockSource
from .walk import Resolved, stream, unixfs_of

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


Blocks = Walk[tuple[bytes, bytes], None]


class CarWalk:
    """The blocks of one CAR response, in DFS order, honouring scope, entity-bytes and dups.

    :meth:`walk` is a sans-I/O walk core (:mod:`blockstore.walk_protocol`) whose outputs are the
    (cid, block) pairs to write; the file and HAMT parts are the shared UnixFS walks, whose
    :class:`Visited` blocks are the ones a CAR carries. :meth:`blocks` drives it over the source.
    """

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

    def blocks(self) -> AsyncIterator[tuple[bytes, bytes]]:
        """Every (cid, block) to write, fetched from the source; :class:`GatewayError` on failure."""
        return stream(self.walk(), self.source)

    def walk(self) -> Blocks:
        """The walk core: the path blocks root to terminus, then the terminal's scope."""
        *path, (cid, block) = self.resolved.trail
        for pcid, pblock in path:
            if self._admit(pcid):
                yield pcid, pblock
        scope = self.params.scope
        if scope == "block":
            if self._admit(cid):
                yield cid, block
        elif scope == "entity":
            yield from self._entity(cid, block)
        else:
            yield from self._all(cid, block)

    def _visited(self, walk: Walk[object, None]) -> Blocks:
        """Run a UnixFS walk, passing its requests up and outputting the admitted blocks it read."""
        send: bytes | None = None
        while True:
            try:
                event = walk.send(send)
            except StopIteration:
                return
            if type(event) is Need or type(event) is Ahead:
                send = yield event  # type: ignore[misc]
                continue
            send = None
            if type(event) is Visited and self._admit(event.cid):  # type: ignore[union-attr]
                yield event.cid, event.block  # type: ignore[union-attr]

    def _entity(self, cid: bytes, block: bytes) -> Blocks:
        if codec_of(cid) != DAG_PB:
            if self._admit(cid):
                yield cid, block
            return
        _node, fs = unixfs_of(cid, block)
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
            # the file's blocks that hold bytes span[0]..span[1]; children outside are never fetched
            yield from self._visited(file_range(cid, block, span[0], span[1] + 1, visits=True))
            return
        if self._admit(cid):
            yield cid, block
        if fs is not None and fs.type == HAMT_SHARD:
            yield from self._visited(dir_entries(cid, block))  # every sub-shard, pre-order

    def _children(self, cid: bytes, block: bytes) -> list[bytes]:
        """The links of a dag-pb (link order) or DAG-CBOR (encoding order) block; none for other codecs."""
        codec = codec_of(cid)
        try:
            if codec == DAG_PB:
                return [link.hash for link in decode_pbnode(block).links]
            if codec == DAG_CBOR:
                return cbor_links(block)
        except (DagPBError, LinksError) as exc:
            raise GatewayError(500, f"block {cid_to_str(cid)}: {exc}") from None
        return []

    def _all(self, cid: bytes, block: bytes) -> Blocks:
        """Depth-first pre-order over the whole DAG; a repeated block is descended again only with dups=y."""
        pending: list[Iterator[bytes]] = []
        current: tuple[bytes, bytes] | None = (cid, block)
        while True:
            if current is not None:
                c, b = current
                first_time = c not in self._seen
                if self._admit(c):
                    yield c, b
                if first_time or is_identity(c) or self.params.dups:
                    children = self._children(c, b)
                    if children:
                        yield Ahead(tuple(children), "DAG child")  # type: ignore[misc]
                        pending.append(iter(children))
                current = None
            while pending:
                child = next(pending[-1], None)
                if child is None:
                    pending.pop()
                    continue
                data = yield Need(child, "DAG child")  # type: ignore[misc]
                assert data is not None
                current = (child, data)
                break
            else:
                return
