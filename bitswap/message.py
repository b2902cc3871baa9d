"""The bitswap message: a strict, bounded protobuf codec written by hand.

Wire schema (proto3, the same for bitswap 1.0.0, 1.1.0 and 1.2.0)::

    Message       { Wantlist wantlist = 1; repeated bytes blocks = 2;
                    repeated Block payload = 3; repeated BlockPresence blockPresences = 4;
                    int32 pendingBytes = 5; }
    Wantlist      { repeated Entry entries = 1; bool full = 2; }
    Entry         { bytes block = 1; int32 priority = 2; bool cancel = 3;
                    WantType wantType = 4; bool sendDontHave = 5; }   // Block=0, Have=1
    Block         { bytes prefix = 1; bytes data = 2; }
    BlockPresence { bytes cid = 1; BlockPresenceType type = 2; }       // Have=0, DontHave=1

Blocks travel without their CID: 1.0.0 puts the bare data in ``blocks``
(CIDv0, sha2-256, dag-pb implied), 1.1+ sends a CID *prefix* (version, codec,
multihash code and length) beside the data in ``payload``. Either way the
receiver re-derives the CID by hashing the data (:func:`block_cid`), so a
block can only ever be matched to the CID its bytes hash to.

Decoding is strict: truncated fields, unknown wire types, wrong field types,
oversize blocks or CIDs, or a missing CID raise :class:`MessageError`.
Unknown fields with a valid wire type are skipped, as protobuf requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from blockstore.cid import (
    DAG_PB,
    IDENTITY,
    SHA2_256,
    CidError,
    encode_varint,
    hash_digest,
    make_cid,
    make_multihash,
    parse_cid,
)
from .errors import BadMessage

__all__ = [
    "MessageError",
    "WANT_BLOCK",
    "WANT_HAVE",
    "HAVE",
    "DONT_HAVE",
    "MAX_MESSAGE_SIZE",
    "MAX_BLOCK_SIZE",
    "MAX_CID_SIZE",
    "V0_PREFIX",
    "WantEntry",
    "Block",
    "Presence",
    "Message",
    "decode_message",
    "encode_message",
    "block_prefix",
    "block_cid",
]

WANT_BLOCK = 0  #: Entry.wantType: send me the block
WANT_HAVE = 1  #: Entry.wantType: tell me whether you have it
HAVE = 0  #: BlockPresence.type
DONT_HAVE = 1  #: BlockPresence.type

MAX_MESSAGE_SIZE = 4 * 1024 * 1024  #: largest encoded message read or written
MAX_BLOCK_SIZE = 2 * 1024 * 1024  #: largest block accepted in a message
MAX_CID_SIZE = 168  #: longest CID accepted in an entry or presence (boxo's limit)
MAX_PREFIX_SIZE = 64  #: longest CID prefix accepted

#: the prefix of a CIDv0 block: version 0, dag-pb, sha2-256, 32-byte digest
V0_PREFIX = b"\x00\x70\x12\x20"

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


class MessageError(BadMessage):
    """A bitswap message that is malformed, oversize or uses something unsupported."""


@dataclass(slots=True)
class WantEntry:
    """One wantlist entry: a CID we want (or cancel), with its kind and priority."""

    cid: bytes
    priority: int = 1
    cancel: bool = False
    want_type: int = WANT_BLOCK
    send_dont_have: bool = False


@dataclass(slots=True)
class Block:
    """A block on the wire: its CID prefix and its bytes (the CID itself is derived)."""

    prefix: bytes
    data: bytes


@dataclass(slots=True)
class Presence:
    """A block presence: the sender has (HAVE) or has not (DONT_HAVE) the CID."""

    cid: bytes
    type: int


@dataclass(slots=True)
class Message:
    """A decoded bitswap message. An empty message is valid (a keep-alive)."""

    wantlist: list[WantEntry] = field(default_factory=list)
    full: bool = False
    blocks: list[Block] = field(default_factory=list)
    presences: list[Presence] = field(default_factory=list)
    pending_bytes: int = 0

    def is_empty(self) -> bool:
        """True when the message carries nothing (no wants, blocks or presences, not full)."""
        return not (self.wantlist or self.blocks or self.presences or self.full)


# --------------------------------------------------------------------- prefixes
def block_prefix(cid: bytes) -> bytes:
    """The CID prefix that travels with a block of ``cid`` in a 1.1+ payload."""
    parts = parse_cid(cid)
    return (
        encode_varint(parts.version)
        + encode_varint(parts.codec)
        + encode_varint(parts.mh_code)
        + encode_varint(len(parts.digest))
    )


def _prefix_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise MessageError("truncated varint in block prefix")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise MessageError("varint too long in block prefix")


def block_cid(prefix: bytes, data: bytes) -> bytes:
    """Derive a block's CID from its prefix by hashing ``data``.

    Raises MessageError for a malformed prefix, an unsupported hash function
    or CID version, or a digest length that the hash function cannot produce.
    """
    if prefix == V0_PREFIX:
        return make_multihash(SHA2_256, hash_digest(SHA2_256, data))
    version, p = _prefix_varint(prefix, 0)
    codec, p = _prefix_varint(prefix, p)
    mh_code, p = _prefix_varint(prefix, p)
    mh_len, p = _prefix_varint(prefix, p)
    if p != len(prefix):
        raise MessageError("trailing bytes after block prefix")
    if version not in (0, 1):
        raise MessageError(f"unsupported CID version {version} in block prefix")
    if version == 0 and (codec != DAG_PB or mh_code != SHA2_256 or mh_len != 32):
        raise MessageError("CIDv0 block prefix must be dag-pb, sha2-256, 32 bytes")
    try:
        digest = hash_digest(mh_code, data)
    except CidError as exc:
        raise MessageError(f"block prefix: {exc}") from None
    if mh_code != IDENTITY and mh_len != len(digest):
        raise MessageError(f"block prefix asks for a {mh_len}-byte digest of hash 0x{mh_code:x}")
    try:
        return make_cid(version, codec, make_multihash(mh_code, digest))
    except CidError as exc:
        raise MessageError(f"block prefix: {exc}") from None


# --------------------------------------------------------------------- decoding
def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Protobuf varint (up to 10 bytes, 64 bits) at ``pos``; (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise MessageError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if value >> 64:
                raise MessageError("varint exceeds 64 bits")
            return value, pos
        shift += 7
        if shift >= 70:
            raise MessageError("varint too long")


def _fields(buf: memoryview, pos: int, end: int, where: str) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) for each field in buf[pos:end].

    For wire type 0 the value is the integer; for wire type 2 it is (start, stop).
    Fixed-size fields (1, 5) are skipped after a bounds check.
    """
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number = key >> 3
        wire = key & 7
        if number == 0:
            raise MessageError(f"{where}: field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, 0, value
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if size > end - pos:
                raise MessageError(f"{where}: field {number} overruns its message")
            yield number, 2, (pos, pos + size)
            pos += size
        elif wire == 1:
            if end - pos < 8:
                raise MessageError(f"{where}: truncated fixed64 field {number}")
            pos += 8
        elif wire == 5:
            if end - pos < 4:
                raise MessageError(f"{where}: truncated fixed32 field {number}")
            pos += 4
        else:
            raise MessageError(f"{where}: unsupported wire type {wire} for field {number}")


def _int32(value: int, where: str) -> int:
    if value >= 1 << 63:
        value -= 1 << 64
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise MessageError(f"{where}: value {value} out of int32 range")
    return value


def _expect(wire: int, want: int, where: str, number: int) -> None:
    if wire != want:
        raise MessageError(f"{where}: field {number} has wire type {wire}, expected {want}")


def _check_cid(cid: bytes, where: str) -> bytes:
    if not cid:
        raise MessageError(f"{where}: missing CID")
    if len(cid) > MAX_CID_SIZE:
        raise MessageError(f"{where}: CID of {len(cid)} bytes exceeds {MAX_CID_SIZE}")
    try:
        parse_cid(cid)
    except CidError as exc:
        raise MessageError(f"{where}: invalid CID: {exc}") from None
    return cid


def _decode_entry(buf: memoryview, start: int, stop: int) -> WantEntry:
    cid = b""
    entry = WantEntry(b"", priority=0)  # proto3: an absent field is 0
    for number, wire, value in _fields(buf, start, stop, "wantlist entry"):
        if number == 1:
            _expect(wire, 2, "wantlist entry", 1)
            cid = bytes(buf[value[0] : value[1]])
        elif number == 2:
            _expect(wire, 0, "wantlist entry", 2)
            entry.priority = _int32(value, "wantlist entry priority")
        elif number == 3:
            _expect(wire, 0, "wantlist entry", 3)
            entry.cancel = bool(value)
        elif number == 4:
            _expect(wire, 0, "wantlist entry", 4)
            if value not in (WANT_BLOCK, WANT_HAVE):
                raise MessageError(f"wantlist entry: unknown want type {value}")
            entry.want_type = value
        elif number == 5:
            _expect(wire, 0, "wantlist entry", 5)
            entry.send_dont_have = bool(value)
    entry.cid = _check_cid(cid, "wantlist entry")
    return entry


def _decode_wantlist(buf: memoryview, start: int, stop: int, msg: Message) -> None:
    for number, wire, value in _fields(buf, start, stop, "wantlist"):
        if number == 1:
            _expect(wire, 2, "wantlist", 1)
            msg.wantlist.append(_decode_entry(buf, value[0], value[1]))
        elif number == 2:
            _expect(wire, 0, "wantlist", 2)
            msg.full = bool(value)


def _check_block_size(size: int) -> None:
    if size > MAX_BLOCK_SIZE:
        raise MessageError(f"block of {size} bytes exceeds the {MAX_BLOCK_SIZE}-byte limit")


def _decode_payload(buf: memoryview, start: int, stop: int) -> Block:
    prefix: bytes | None = None
    data = b""
    for number, wire, value in _fields(buf, start, stop, "block"):
        if number == 1:
            _expect(wire, 2, "block", 1)
            if value[1] - value[0] > MAX_PREFIX_SIZE:
                raise MessageError("block prefix too long")
            prefix = bytes(buf[value[0] : value[1]])
        elif number == 2:
            _expect(wire, 2, "block", 2)
            _check_block_size(value[1] - value[0])
            data = bytes(buf[value[0] : value[1]])
    if not prefix:
        raise MessageError("block without a CID prefix")
    return Block(prefix, data)


def _decode_presence(buf: memoryview, start: int, stop: int) -> Presence:
    cid = b""
    kind = HAVE
    for number, wire, value in _fields(buf, start, stop, "block presence"):
        if number == 1:
            _expect(wire, 2, "block presence", 1)
            cid = bytes(buf[value[0] : value[1]])
        elif number == 2:
            _expect(wire, 0, "block presence", 2)
            if value not in (HAVE, DONT_HAVE):
                raise MessageError(f"block presence: unknown type {value}")
            kind = value
    return Presence(_check_cid(cid, "block presence"), kind)


def decode_message(data: bytes | bytearray | memoryview) -> Message:
    """Decode one bitswap message (without its length prefix).

    Raises MessageError naming the problem for anything malformed or over the limits.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise MessageError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")
    buf = memoryview(data)
    msg = Message()
    for number, wire, value in _fields(buf, 0, len(buf), "message"):
        if number == 1:
            _expect(wire, 2, "message", 1)
            _decode_wantlist(buf, value[0], value[1], msg)
        elif number == 2:
            _expect(wire, 2, "message", 2)
            _check_block_size(value[1] - value[0])
            msg.blocks.append(Block(V0_PREFIX, bytes(buf[value[0] : value[1]])))
        elif number == 3:
            _expect(wire, 2, "message", 3)
            msg.blocks.append(_decode_payload(buf, value[0], value[1]))
        elif number == 4:
            _expect(wire, 2, "message", 4)
            msg.presences.append(_decode_presence(buf, value[0], value[1]))
        elif number == 5:
            _expect(wire, 0, "message", 5)
            msg.pending_bytes = _int32(value, "pendingBytes")
    return msg


# --------------------------------------------------------------------- encoding
def _key(number: int, wire: int) -> bytes:
    return bytes(((number << 3) | wire,))


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + encode_varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    return _key(number, 0) + encode_varint(value)


def _encode_entry(entry: WantEntry, v12: bool) -> bytes:
    out = [_len_field(1, entry.cid)]
    if entry.priority:
        out.append(_int_field(2, entry.priority))
    if entry.cancel:
        out.append(b"\x18\x01")
    if v12:
        if entry.want_type != WANT_BLOCK:
            out.append(_int_field(4, entry.want_type))
        if entry.send_dont_have:
            out.append(b"\x28\x01")
    return b"".join(out)


def encode_message(msg: Message, protocol: str = "/ipfs/bitswap/1.2.0") -> bytes:
    """Encode ``msg`` for a peer speaking ``protocol``.

    1.0.0 (and the bare ``/ipfs/bitswap``) peers get blocks in the ``blocks``
    field and no presences or want-have entries (they cannot express them);
    1.1.0 gets payload blocks without presences; 1.2.0 gets everything.
    Raises MessageError if the result would exceed MAX_MESSAGE_SIZE.
    """
    v12 = protocol.endswith("1.2.0")
    v10 = protocol.endswith("1.0.0") or protocol == "/ipfs/bitswap"
    parts: list[bytes] = []
    if msg.wantlist or msg.full:
        entries = [
            _len_field(1, _encode_entry(e, v12)) for e in msg.wantlist if v12 or e.want_type == WANT_BLOCK or e.cancel
        ]
        if msg.full:
            entries.append(b"\x10\x01")
        parts.append(_len_field(1, b"".join(entries)))
    for block in msg.blocks:
        if v10:
            parts.append(_len_field(2, block.data))
        else:
            parts.append(_len_field(3, _len_field(1, block.prefix) + _len_field(2, block.data)))
    if v12:
        for pres in msg.presences:
            body = _len_field(1, pres.cid)
            if pres.type:
                body += _int_field(2, pres.type)
            parts.append(_len_field(4, body))
    if msg.pending_bytes:
        parts.append(_int_field(5, msg.pending_bytes))
    out = b"".join(parts)
    if len(out) > MAX_MESSAGE_SIZE:
        raise MessageError(f"encoded message of {len(out)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")
    return out
