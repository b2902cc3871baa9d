"""The UnixFS ``Data`` protobuf message (proto2), carried in a dag-pb node's Data.

Fields: Type (1, required), Data (2), filesize (3), blocksizes (4, repeated,
written unpacked and read packed or unpacked), hashType (5), fanout (6),
mode (7) and mtime (8, a message of seconds int64 = 1 and nanos fixed32 = 2).
The encoder writes fields in number order, as Go's protobuf does. The decoder
rejects unknown fields, wrong wire types, duplicated singular fields and a
missing Type with a :class:`UnixFSError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from dataclasses import field as _field

from .dagpb import DagPBError, encode_varint, read_pb_varint
from .errors import InvalidData

__all__ = [
    "RAW",
    "DIRECTORY",
    "FILE",
    "METADATA",
    "SYMLINK",
    "HAMT_SHARD",
    "TYPE_NAMES",
    "UnixFSError",
    "UnixFSData",
    "encode_unixfs",
    "decode_unixfs",
]

RAW = 0
DIRECTORY = 1
FILE = 2
METADATA = 3
SYMLINK = 4
HAMT_SHARD = 5

#: human-readable names of the node types
TYPE_NAMES = {RAW: "raw", DIRECTORY: "directory", FILE: "file", METADATA: "metadata", SYMLINK: "symlink", HAMT_SHARD: "hamt-shard"}

_MAX_U64 = (1 << 64) - 1


class UnixFSError(InvalidData):
    """Bytes that are not a valid UnixFS Data message, or a value that cannot be encoded."""


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """A decoded UnixFS Data message; ``None`` means the optional field is absent."""

    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = _field(default_factory=list)
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: tuple[int, int | None] | None = None


def _uvarint(n: int, what: str) -> bytes:
    if not 0 <= n <= _MAX_U64:
        raise UnixFSError(f"{what} {n} is out of range for an unsigned 64-bit field")
    return encode_varint(n)


def encode_unixfs(d: UnixFSData) -> bytes:
    """Serialize a UnixFS Data message (fields in number order, blocksizes unpacked)."""
    if d.type not in TYPE_NAMES:
        raise UnixFSError(f"unknown UnixFS type {d.type}")
    parts = [b"\x08", encode_varint(d.type)]
    if d.data is not None:
        parts += (b"\x12", encode_varint(len(d.data)), d.data)
    if d.filesize is not None:
        parts += (b"\x18", _uvarint(d.filesize, "filesize"))
    for bs in d.blocksizes:
        parts += (b"\x20", _uvarint(bs, "blocksize"))
    if d.hash_type is not None:
        parts += (b"\x28", _uvarint(d.hash_type, "hashType"))
    if d.fanout is not None:
        parts += (b"\x30", _uvarint(d.fanout, "fanout"))
    if d.mode is not None:
        if not 0 <= d.mode <= 0xFFFFFFFF:
            raise UnixFSError(f"mode {d.mode} does not fit in 32 bits")
        parts += (b"\x38", encode_varint(d.mode))
    if d.mtime is not None:
        seconds, nanos = d.mtime
        if not -(1 << 63) <= seconds < (1 << 63):
            raise UnixFSError(f"mtime seconds {seconds} does not fit in int64")
        body = b"\x08" + encode_varint(seconds & _MAX_U64)
        if nanos is not None:
            if not 1 <= nanos <= 999_999_999:
                raise UnixFSError(f"mtime nanoseconds {nanos} outside 1..999999999")
            body += b"\x15" + struct.pack("<I", nanos)
        parts += (b"\x42", encode_varint(len(body)), body)
    return b"".join(parts)


def _varint(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    try:
        return read_pb_varint(buf, pos, end, what)
    except DagPBError as exc:
        raise UnixFSError(str(exc)) from None


def _decode_mtime(buf: bytes, pos: int, end: int) -> tuple[int, int | None]:
    seconds: int | None = None
    nanos: int | None = None
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos, end, "UnixTime field key")
        field, wire = key >> 3, key & 7
        if field == 1:
            if wire != 0:
                raise UnixFSError(f"UnixTime seconds has wire type {wire}, expected 0, at offset {start}")
            if seconds is not None:
                raise UnixFSError(f"duplicate UnixTime seconds at offset {start}")
            raw, pos = _varint(buf, pos, end, "UnixTime seconds")
            seconds = raw - (1 << 64) if raw >= (1 << 63) else raw
        elif field == 2:
            if wire != 5:
                raise UnixFSError(f"UnixTime nanos has wire type {wire}, expected 5, at offset {start}")
            if nanos is not None:
                raise UnixFSError(f"duplicate UnixTime nanos at offset {start}")
            if pos + 4 > end:
                raise UnixFSError(f"truncated UnixTime nanos at offset {start}")
            (nanos,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            if not 1 <= nanos <= 999_999_999:
                raise UnixFSError(f"UnixTime nanos {nanos} outside 1..999999999")
        else:
            raise UnixFSError(f"unknown UnixTime field {field} at offset {start}")
    if seconds is None:
        raise UnixFSError("UnixTime without seconds")
    return seconds, nanos


def decode_unixfs(data: bytes | bytearray | memoryview) -> UnixFSData:
    """Parse a UnixFS Data message strictly; raise :class:`UnixFSError` on any deviation."""
    buf = data if isinstance(data, bytes) else bytes(data)
    pos = 0
    end = len(buf)
    values: dict[int, object] = {}
    blocksizes: list[int] = []
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos, end, "UnixFS field key")
        field, wire = key >> 3, key & 7
        if field == 4:
            if wire == 0:
                v, pos = _varint(buf, pos, end, "blocksize")
                blocksizes.append(v)
            elif wire == 2:
                n, pos = _varint(buf, pos, end, "packed blocksizes length")
                stop = pos + n
                if stop > end:
                    raise UnixFSError(f"packed blocksizes at offset {start} run past the end")
                while pos < stop:
                    v, pos = _varint(buf, pos, stop, "blocksize")
                    blocksizes.append(v)
            else:
                raise UnixFSError(f"blocksizes has wire type {wire} at offset {start}")
            continue
        if field not in (1, 2, 3, 5, 6, 7, 8):
            raise UnixFSError(f"unknown UnixFS field {field} at offset {start}")
        if field in values:
            raise UnixFSError(f"duplicate UnixFS field {field} at offset {start}")
        if field in (2, 8):
            if wire != 2:
                raise UnixFSError(f"UnixFS field {field} has wire type {wire}, expected 2, at offset {start}")
            n, pos = _varint(buf, pos, end, "length")
            if pos + n > end:
                raise UnixFSError(f"UnixFS field {field} at offset {start} runs past the end")
            values[field] = buf[pos : pos + n] if field == 2 else _decode_mtime(buf, pos, pos + n)
            pos += n
        else:
            if wire != 0:
                raise UnixFSError(f"UnixFS field {field} has wire type {wire}, expected 0, at offset {start}")
            v, pos = _varint(buf, pos, end, f"UnixFS field {field}")
            if field == 7 and v > 0xFFFFFFFF:
                raise UnixFSError(f"mode {v} does not fit in 32 bits")
            values[field] = v
    if 1 not in values:
        raise UnixFSError("UnixFS Data without Type")
    t = values[1]
    if t not in TYPE_NAMES:
        raise UnixFSError(f"unknown UnixFS type {t}")
    return UnixFSData(
        type=t,  # type: ignore[arg-type]
        data=values.get(2),  # type: ignore[arg-type]
        filesize=values.get(3),  # type: ignore[arg-type]
        blocksizes=blocksizes,
        hash_type=values.get(5),  # type: ignore[arg-type]
        fanout=values.get(6),  # type: ignore[arg-type]
        mode=values.get(7),  # type: ignore[arg-type]
        mtime=values.get(8),  # type: ignore[arg-type]
    )
