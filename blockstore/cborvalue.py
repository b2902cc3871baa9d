"""A small DAG-CBOR value reader that keeps links distinct from byte strings.

libipld decodes CIDs (tag 42) to plain ``bytes``, like byte strings, so a path walk cannot tell
``{"a": <link>}`` from ``{"a": <bytes that spell a CID>}``. This reader returns links as
:class:`Link` and keeps map order as encoded. It checks well-formedness (one item, known majors,
only tag 42, string keys, bounded depth) but not canonical form: callers that must be strict check
the block with libipld first. The CIDs of a block alone are :func:`blockstore.links.cbor_links`.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple
from .errors import InvalidData

__all__ = ["CborError", "Link", "decode_cbor", "MAX_DEPTH"]

#: deepest nesting accepted (a block is at most a few MiB; deeper input is an attack or an error)
MAX_DEPTH = 256


class CborError(InvalidData):
    """Bytes that are not one well-formed DAG-CBOR item."""


class Link(NamedTuple):
    """A CID found under tag 42 (binary CID, without the 0x00 multibase prefix)."""

    cid: bytes


def _head(buf: bytes, pos: int) -> tuple[int, int, int]:
    if pos >= len(buf):
        raise CborError("truncated DAG-CBOR")
    ib = buf[pos]
    major, info = ib >> 5, ib & 31
    pos += 1
    if info < 24:
        return major, info, pos
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None:
        raise CborError(f"unsupported CBOR additional info {info} (indefinite lengths are not DAG-CBOR)")
    if pos + size > len(buf):
        raise CborError("truncated DAG-CBOR")
    return major, int.from_bytes(buf[pos : pos + size], "big"), pos + size


def _item(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise CborError(f"DAG-CBOR nested deeper than {MAX_DEPTH}")
    start = pos
    major, val, pos = _head(buf, pos)
    if major == 0:
        return val, pos
    if major == 1:
        return -1 - val, pos
    if major in (2, 3):
        end = pos + val
        if end > len(buf):
            raise CborError("truncated DAG-CBOR string")
        raw = buf[pos:end]
        if major == 2:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            raise CborError("DAG-CBOR text string is not UTF-8") from None
    if major == 4:
        out = []
        for _ in range(val):
            v, pos = _item(buf, pos, depth + 1)
            out.append(v)
        return out, pos
    if major == 5:
        m: dict[str, Any] = {}
        for _ in range(val):
            k, pos = _item(buf, pos, depth + 1)
            if not isinstance(k, str):
                raise CborError("DAG-CBOR map key is not a string")
            v, pos = _item(buf, pos, depth + 1)
            m[k] = v
        return m, pos
    if major == 6:
        if val != 42:
            raise CborError(f"unsupported CBOR tag {val} (DAG-CBOR allows only 42)")
        raw, pos = _item(buf, pos, depth + 1)
        if not isinstance(raw, bytes) or not raw or raw[0] != 0:
            raise CborError("tag 42 must wrap a byte string starting with 0x00")
        return Link(raw[1:]), pos
    # major 7
    ib = buf[start] & 31
    if ib == 20:
        return False, pos
    if ib == 21:
        return True, pos
    if ib == 22:
        return None, pos
    if ib == 27:
        return struct.unpack(">d", buf[start + 1 : pos])[0], pos
    raise CborError(f"unsupported CBOR simple value {ib}")


def decode_cbor(data: bytes) -> Any:
    """Decode one DAG-CBOR item (links as :class:`Link`); raise :class:`CborError` on bad input."""
    value, pos = _item(bytes(data), 0, 0)
    if pos != len(data):
        raise CborError(f"{len(data) - pos} trailing bytes after the DAG-CBOR item")
    return value

