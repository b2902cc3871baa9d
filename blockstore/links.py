"""The child CIDs of a block, by codec: raw, dag-pb, dag-cbor, dag-json and link-free codecs.

Used by the DAG walker (CAR export, pinning, the bitswap fetcher) and by
garbage collection. libipld decodes DAG-CBOR as plain Python values in which
a CID (tag 42) and a byte string are both ``bytes``, so the CIDs of a
DAG-CBOR block are found by a small scan of its CBOR items for tag 42, after
libipld has checked that the block is valid DAG-CBOR.
"""

from __future__ import annotations

import json

import libipld

from .cid import DAG_CBOR, DAG_PB, IDENTITY, LIBP2P_KEY, RAW, CidError, cid_from_str, parse_cid, read_cid
from .dagpb import DagPBError, decode_pbnode
from .errors import InvalidData

__all__ = ["LinksError", "DAG_JSON", "iter_links", "cbor_links", "dag_json_links"]

DAG_JSON = 0x0129
_JSON = 0x0200
_CBOR = 0x51

#: codecs whose blocks never link to other blocks
_LEAF_CODECS = frozenset({RAW, _JSON, _CBOR, LIBP2P_KEY, IDENTITY})


class LinksError(InvalidData):
    """A block that does not decode as its CID's codec, or a codec whose links are unknown."""


def iter_links(cid: bytes, data: bytes) -> list[bytes]:
    """The CIDs a block links to, in the order they appear in the block.

    ``data`` is the block's bytes (for an identity CID, the inline digest).
    Raises :class:`LinksError` for a block that does not decode as its codec
    or for a codec Pinion does not know.
    """
    try:
        codec = parse_cid(cid).codec
    except CidError as exc:
        raise LinksError(f"invalid CID: {exc}") from None
    if codec == DAG_PB:
        try:
            return [link.hash for link in decode_pbnode(data).links]
        except DagPBError as exc:
            raise LinksError(f"invalid dag-pb block: {exc}") from None
    if codec == DAG_CBOR:
        return cbor_links(data)
    if codec in _LEAF_CODECS:
        return []
    if codec == DAG_JSON:
        return dag_json_links(data)
    raise LinksError(f"cannot find links in a block of unknown codec 0x{codec:x}")


def _head(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a CBOR item head at ``pos``; return (major type, argument, position after it)."""
    if pos >= end:
        raise LinksError("invalid dag-cbor block: truncated item")
    ib = buf[pos]
    major, info = ib >> 5, ib & 0x1F
    pos += 1
    if info < 24:
        return major, info, pos
    if info > 27:
        raise LinksError(f"invalid dag-cbor block: unsupported additional info {info} at offset {pos - 1}")
    n = 1 << (info - 24)
    if pos + n > end:
        raise LinksError("invalid dag-cbor block: truncated item head")
    return major, int.from_bytes(buf[pos : pos + n], "big"), pos + n


def cbor_links(data: bytes) -> list[bytes]:
    """Every CID (tag 42) anywhere in a DAG-CBOR block, in document order.

    The block is first checked with libipld (strict DAG-CBOR); then its items
    are scanned without building Python values.
    """
    buf = bytes(data)
    try:
        libipld.decode_dag_cbor(buf)
    except ValueError as exc:
        raise LinksError(f"invalid dag-cbor block: {exc}") from None
    return scan_cbor_cids(buf)


def scan_cbor_cids(buf: bytes) -> list[bytes]:
    """The tag-42 CIDs of one (already validated) CBOR item, found by an iterative scan."""
    out: list[bytes] = []
    pos = 0
    end = len(buf)
    todo = 1
    while todo:
        todo -= 1
        major, arg, pos = _head(buf, pos, end)
        if major == 2 or major == 3:
            pos += arg
        elif major == 4:
            todo += arg
        elif major == 5:
            todo += 2 * arg
        elif major == 6:
            if arg != 42:
                raise LinksError(f"invalid dag-cbor block: tag {arg} (only tag 42 is allowed)")
            start = pos
            m2, n, pos = _head(buf, pos, end)
            if m2 != 2 or n < 1 or pos + n > end or buf[pos] != 0:
                raise LinksError(f"invalid dag-cbor block: tag 42 at offset {start} is not a CID byte string")
            raw = buf[pos + 1 : pos + n]
            try:
                cid, used = read_cid(raw, 0)
                if used != len(raw):
                    raise CidError("trailing bytes after the CID")
            except CidError as exc:
                raise LinksError(f"invalid dag-cbor block: bad CID at offset {start}: {exc}") from None
            out.append(cid)
            pos += n
        # majors 0, 1 and 7 carry their value in the head
    if pos > end:
        raise LinksError("invalid dag-cbor block: truncated item")
    return out


def dag_json_links(data: bytes) -> list[bytes]:
    """Every link (``{"/": "<cid>"}``) anywhere in a DAG-JSON block."""
    found: list[bytes] = []

    def hook(obj: dict) -> dict:
        if len(obj) == 1 and isinstance(obj.get("/"), str):
            try:
                found.append(cid_from_str(obj["/"]))
            except CidError as exc:
                raise LinksError(f"invalid dag-json block: bad link {obj['/'][:80]!r}: {exc}") from None
        return obj

    try:
        json.loads(bytes(data), object_hook=hook)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, LinksError):
            raise
        raise LinksError(f"invalid dag-json block: {exc}") from None
    return found
