"""The protobuf wire format, as far as the bitswap and Kademlia message codecs need it (sans-I/O).

https://protobuf.dev/programming-guides/encoding/ : varints, field keys, length-delimited and
varint fields. Readers take the error class to raise, so each codec reports malformed input
as its own error (``MessageError``, ``KadMessageError``) and names where it was found.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from blockstore.cid import encode_varint

__all__ = ["read_varint", "iter_fields", "expect_wire", "as_int32", "field_key", "len_field", "int_field"]

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


def read_varint(buf: memoryview, pos: int, end: int, error: type[Exception]) -> tuple[int, int]:
    """The varint (up to 10 bytes, 64 bits) at ``pos``: (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise error("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if value >> 64:
                raise error("varint exceeds 64 bits")
            return value, pos
        shift += 7
        if shift >= 70:
            raise error("varint too long")


def iter_fields(buf: memoryview, pos: int, end: int, where: str, error: type[Exception]) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field in ``buf[pos:end]``.

    The value is the integer for wire type 0 and (start, stop) for wire type 2; fixed-size
    fields (wire types 1 and 5) are skipped after a bounds check; other wire types are errors."""
    while pos < end:
        key, pos = read_varint(buf, pos, end, error)
        number = key >> 3
        wire = key & 7
        if number == 0:
            raise error(f"{where}: field number 0")
        if wire == 0:
            value, pos = read_varint(buf, pos, end, error)
            yield number, 0, value
        elif wire == 2:
            size, pos = read_varint(buf, pos, end, error)
            if size > end - pos:
                raise error(f"{where}: field {number} overruns its message")
            yield number, 2, (pos, pos + size)
            pos += size
        elif wire == 1:
            if end - pos < 8:
                raise error(f"{where}: truncated fixed64 field {number}")
            pos += 8
        elif wire == 5:
            if end - pos < 4:
                raise error(f"{where}: truncated fixed32 field {number}")
            pos += 4
        else:
            raise error(f"{where}: unsupported wire type {wire} for field {number}")


def expect_wire(wire: int, want: int, where: str, number: int, error: type[Exception]) -> None:
    """Raise ``error`` unless field ``number`` came with wire type ``want``."""
    if wire != want:
        raise error(f"{where}: field {number} has wire type {wire}, expected {want}")


def as_int32(value: int, where: str, error: type[Exception]) -> int:
    """A varint read as protobuf ``int32`` (negative values arrive as 64-bit two's complement)."""
    if value >= 1 << 63:
        value -= 1 << 64
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise error(f"{where}: value {value} out of int32 range")
    return value


def field_key(number: int, wire: int) -> bytes:
    """The key of field ``number`` with wire type ``wire``."""
    key = (number << 3) | wire
    return bytes((key,)) if key < 0x80 else encode_varint(key)


def len_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: key, length, payload."""
    return field_key(number, 2) + encode_varint(len(payload)) + payload


def int_field(number: int, value: int) -> bytes:
    """A varint field (negative values as 64-bit two's complement, as protobuf ``int32``/``int64``)."""
    if value < 0:
        value += 1 << 64
    return field_key(number, 0) + encode_varint(value)
