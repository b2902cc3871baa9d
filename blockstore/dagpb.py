"""The dag-pb codec (protobuf ``PBNode`` / ``PBLink``), written by hand.

Encoding follows boxo: a node's Links (field 2) come first, then Data
(field 1); inside a link Hash (1), Name (2) and Tsize (3) in that order. The
encoder never reorders links: directory builders sort them before encoding.

Decoding is strict, as the IPLD dag-pb spec asks: unknown fields, wrong wire
types, a duplicated Data or link field, link fields out of order and links
without a Hash are all rejected with a :class:`DagPBError`. Both node layouts
found in existing data are accepted (Links then Data, and Data then Links,
ipfs/specs#531), but Links split around Data are rejected.
"""

from __future__ import annotations

from typing import NamedTuple

from .cid import CidError, read_cid
from .errors import InvalidData

__all__ = ["DagPBError", "PBLink", "PBNode", "encode_pbnode", "decode_pbnode", "encode_varint", "read_pb_varint", "node_size"]


class DagPBError(InvalidData):
    """Bytes that are not a valid dag-pb block."""


class PBLink(NamedTuple):
    """One dag-pb link: the target CID (bytes), an optional name and cumulative size."""

    hash: bytes
    name: bytes | None
    tsize: int | None


class PBNode(NamedTuple):
    """A dag-pb node: its links (in stored order) and optional opaque data."""

    links: list[PBLink]
    data: bytes | None


_MAX_U64 = (1 << 64) - 1
_SMALL_VARINTS = [bytes((i,)) for i in range(128)]


def encode_varint(n: int) -> bytes:
    """Protobuf (unsigned LEB128) varint of ``0 <= n < 2**64``."""
    if n < 128:
        if n < 0:
            raise DagPBError(f"cannot encode negative varint {n}")
        return _SMALL_VARINTS[n]
    if n > _MAX_U64:
        raise DagPBError(f"varint {n} does not fit in 64 bits")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_pb_varint(buf: bytes | memoryview, pos: int, end: int, what: str) -> tuple[int, int]:
    """Read a protobuf varint of at most 10 bytes from ``buf[pos:end]``; return (value, next position)."""
    if pos < end:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise DagPBError(f"truncated varint in {what} at offset {start}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if result > _MAX_U64:
                raise DagPBError(f"varint in {what} at offset {start} overflows 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise DagPBError(f"varint in {what} at offset {start} is longer than 10 bytes")


def encode_link(link: PBLink) -> bytes:
    """Encode the body of one PBLink (without its outer field tag and length)."""
    h = link.hash
    if not h:
        raise DagPBError("link without Hash")
    parts = [b"\x0a", encode_varint(len(h)), h]
    if link.name is not None:
        parts += (b"\x12", encode_varint(len(link.name)), link.name)
    if link.tsize is not None:
        parts += (b"\x18", encode_varint(link.tsize))
    return b"".join(parts)


def encode_pbnode(node: PBNode) -> bytes:
    """Serialize a PBNode: every link (in the given order), then Data if present."""
    parts: list[bytes] = []
    for link in node.links:
        body = encode_link(link)
        parts += (b"\x12", encode_varint(len(body)), body)
    data = node.data
    if data is not None:
        parts += (b"\x0a", encode_varint(len(data)), data)
    return b"".join(parts)


def node_size(node: PBNode) -> int:
    """Length in bytes of ``encode_pbnode(node)``, computed without encoding the data."""
    total = 0
    for link in node.links:
        n = len(encode_link(link))
        total += 1 + len(encode_varint(n)) + n
    if node.data is not None:
        total += 1 + len(encode_varint(len(node.data))) + len(node.data)
    return total


def _decode_link_fast(buf: bytes, pos: int, end: int) -> PBLink | None:
    """The common layout (CIDv0 Hash, short Name, Tsize below 2**63) without generic parsing; None otherwise."""
    if end - pos < 38 or buf[pos] != 0x0A or buf[pos + 1] != 34 or buf[pos + 2] != 0x12 or buf[pos + 3] != 0x20:
        return None
    h = buf[pos + 2 : pos + 36]
    p = pos + 36
    if buf[p] != 0x12:
        return None
    n = buf[p + 1]
    if n >= 0x80:
        return None
    p += 2
    name = buf[p : p + n]
    p += n
    if p == end:
        return PBLink(h, name, None)
    if p > end or buf[p] != 0x18:
        return None
    tsize = 0
    shift = 0
    p += 1
    while p < end and shift < 63:
        b = buf[p]
        p += 1
        tsize |= (b & 0x7F) << shift
        if b < 0x80:
            return PBLink(h, name, tsize) if p == end else None
        shift += 7
    return None


def _decode_link(buf: bytes, pos: int, end: int) -> PBLink:
    """Decode one PBLink occupying ``buf[pos:end]``."""
    fast = _decode_link_fast(buf, pos, end)
    if fast is not None:
        return fast
    h: bytes | None = None
    name: bytes | None = None
    tsize: int | None = None
    last = 0
    while pos < end:
        start = pos
        key, pos = read_pb_varint(buf, pos, end, "PBLink field key")
        field, wire = key >> 3, key & 7
        if field <= last:
            if field in (1, 2, 3):
                kind = "duplicate" if field == last else "out-of-order"
                raise DagPBError(f"{kind} PBLink field {field} at offset {start}")
            raise DagPBError(f"unknown PBLink field {field} at offset {start}")
        if field == 1 or field == 2:
            if wire != 2:
                raise DagPBError(f"PBLink field {field} has wire type {wire}, expected 2, at offset {start}")
            n, pos = read_pb_varint(buf, pos, end, "PBLink length")
            if pos + n > end:
                raise DagPBError(f"PBLink field {field} at offset {start} runs past the link end")
            value = bytes(buf[pos : pos + n])
            pos += n
            if field == 1:
                try:
                    cid, used = read_cid(value, 0)
                except CidError as exc:
                    raise DagPBError(f"PBLink Hash at offset {start} is not a CID: {exc}") from None
                if used != len(value):
                    raise DagPBError(f"PBLink Hash at offset {start} has trailing bytes after the CID")
                h = cid
            else:
                name = value
        elif field == 3:
            if wire != 0:
                raise DagPBError(f"PBLink Tsize has wire type {wire}, expected 0, at offset {start}")
            tsize, pos = read_pb_varint(buf, pos, end, "PBLink Tsize")
        else:
            raise DagPBError(f"unknown PBLink field {field} at offset {start}")
        last = field
    if h is None:
        raise DagPBError("PBLink without Hash")
    return PBLink(h, name, tsize)


def decode_pbnode(data: bytes | bytearray | memoryview) -> PBNode:
    """Parse a dag-pb block strictly; raise :class:`DagPBError` on any deviation."""
    buf = data if isinstance(data, bytes) else bytes(data)
    pos = 0
    end = len(buf)
    links: list[PBLink] = []
    payload: bytes | None = None
    links_before_data = False
    while pos < end:
        start = pos
        if buf[pos] == 0x12 and pos + 1 < end and buf[pos + 1] < 0x80 and not links_before_data:
            # fast path: a link shorter than 128 bytes
            n = buf[pos + 1]
            pos += 2
            if pos + n > end:
                raise DagPBError(f"PBNode field 2 at offset {start} runs past the end of the block")
            link = _decode_link_fast(buf, pos, pos + n)
            links.append(link if link is not None else _decode_link(buf, pos, pos + n))
            pos += n
            continue
        key, pos = read_pb_varint(buf, pos, end, "PBNode field key")
        field, wire = key >> 3, key & 7
        if field not in (1, 2):
            raise DagPBError(f"unknown PBNode field {field} at offset {start}")
        if wire != 2:
            raise DagPBError(f"PBNode field {field} has wire type {wire}, expected 2, at offset {start}")
        n, pos = read_pb_varint(buf, pos, end, "PBNode length")
        if pos + n > end:
            raise DagPBError(f"PBNode field {field} at offset {start} runs past the end of the block")
        if field == 1:
            if payload is not None:
                raise DagPBError(f"duplicate PBNode Data at offset {start}")
            payload = buf[pos : pos + n]
            links_before_data = bool(links)
        else:
            if links_before_data:
                raise DagPBError(f"PBNode Links at offset {start} interleaved with Data (Links, Data, Links)")
            links.append(_decode_link(buf, pos, pos + n))
        pos += n
    return PBNode(links, payload)
