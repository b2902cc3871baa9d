"""The Kademlia DHT message (``/ipfs/kad/1.0.0``): a strict, bounded protobuf codec written by hand.

Wire schema (proto3; the kad-dht spec, https://github.com/libp2p/specs/blob/master/kad-dht/README.md)::

    Message { MessageType type = 1; int32 clusterLevelRaw = 10; bytes key = 2;
              Record record = 3; repeated Peer closerPeers = 8; repeated Peer providerPeers = 9; }
    Peer    { bytes id = 1; repeated bytes addrs = 2; ConnectionType connection = 3; }
    Record  { bytes key = 1; bytes value = 2; string timeReceived = 5; }
    MessageType    PUT_VALUE=0 GET_VALUE=1 ADD_PROVIDER=2 GET_PROVIDERS=3 FIND_NODE=4 PING=5
    ConnectionType NOT_CONNECTED=0 CONNECTED=1 CAN_CONNECT=2 CANNOT_CONNECT=3

Each message travels as one unsigned-varint length-prefixed frame. Decoding
is strict: truncated fields, unknown wire types, wrong field types, unknown
message types, peer IDs that are not multihashes, and anything over the
limits below raise :class:`KadMessageError`. Unknown fields with a valid wire
type are skipped (py-libp2p adds ``senderRecord = 11`` and ``signedRecord = 4``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from ..errors import BadMessage

__all__ = [
    "KadMessageError",
    "PUT_VALUE",
    "GET_VALUE",
    "ADD_PROVIDER",
    "GET_PROVIDERS",
    "FIND_NODE",
    "PING",
    "MESSAGE_TYPES",
    "NOT_CONNECTED",
    "CONNECTED",
    "CAN_CONNECT",
    "CANNOT_CONNECT",
    "MAX_MESSAGE_SIZE",
    "MAX_KEY_SIZE",
    "MAX_PEERS_PER_LIST",
    "MAX_ADDRS_PER_PEER",
    "MAX_ADDR_SIZE",
    "MAX_PEER_ID_SIZE",
    "Peer",
    "Record",
    "KadMessage",
    "decode_message",
    "encode_message",
    "check_peer_id",
    "encode_peer",
    "len_field",
    "frame",
]

PUT_VALUE = 0
GET_VALUE = 1
ADD_PROVIDER = 2
GET_PROVIDERS = 3
FIND_NODE = 4
PING = 5
MESSAGE_TYPES = {PUT_VALUE: "PUT_VALUE", GET_VALUE: "GET_VALUE", ADD_PROVIDER: "ADD_PROVIDER",
                 GET_PROVIDERS: "GET_PROVIDERS", FIND_NODE: "FIND_NODE", PING: "PING"}  # fmt: skip

NOT_CONNECTED = 0
CONNECTED = 1
CAN_CONNECT = 2
CANNOT_CONNECT = 3

MAX_MESSAGE_SIZE = 4 * 1024 * 1024  #: largest frame read or written (go-libp2p-kad-dht's limit)
MAX_KEY_SIZE = 1024  #: longest Message.key / Record.key accepted
MAX_VALUE_SIZE = 64 * 1024  #: longest Record.value accepted
MAX_PEERS_PER_LIST = 1000  #: closerPeers or providerPeers entries in one message
MAX_ADDRS_PER_PEER = 64  #: multiaddrs of one Peer entry
MAX_ADDR_SIZE = 1024  #: bytes of one binary multiaddr
MAX_PEER_ID_SIZE = 128  #: bytes of a peer ID (an identity multihash of a public key, or sha2-256)

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


class KadMessageError(BadMessage):
    """A DHT message that is malformed, over a limit, or of an unknown type."""


@dataclass(slots=True)
class Peer:
    """A peer in a message: its ID (binary multihash), binary multiaddrs and connection state."""

    id: bytes
    addrs: list[bytes] = field(default_factory=list)
    connection: int = NOT_CONNECTED


@dataclass(slots=True)
class Record:
    """A value record (PUT_VALUE / GET_VALUE)."""

    key: bytes = b""
    value: bytes = b""
    time_received: str = ""


@dataclass(slots=True)
class KadMessage:
    """A decoded DHT message; which fields matter depends on ``type``."""

    type: int
    key: bytes = b""
    record: Record | None = None
    closer: list[Peer] = field(default_factory=list)
    providers: list[Peer] = field(default_factory=list)
    cluster_level: int = 0


# --------------------------------------------------------------------- decoding
def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise KadMessageError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if value >> 64:
                raise KadMessageError("varint exceeds 64 bits")
            return value, pos
        shift += 7
        if shift >= 70:
            raise KadMessageError("varint too long")


def _fields(buf: memoryview, pos: int, end: int, where: str) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) per field: an int for wire type 0, (start, stop) for 2."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number = key >> 3
        wire = key & 7
        if number == 0:
            raise KadMessageError(f"{where}: field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, 0, value
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if size > end - pos:
                raise KadMessageError(f"{where}: field {number} overruns its message")
            yield number, 2, (pos, pos + size)
            pos += size
        elif wire == 1:
            if end - pos < 8:
                raise KadMessageError(f"{where}: truncated fixed64 field {number}")
            pos += 8
        elif wire == 5:
            if end - pos < 4:
                raise KadMessageError(f"{where}: truncated fixed32 field {number}")
            pos += 4
        else:
            raise KadMessageError(f"{where}: unsupported wire type {wire} for field {number}")


def _expect(wire: int, want: int, where: str, number: int) -> None:
    if wire != want:
        raise KadMessageError(f"{where}: field {number} has wire type {wire}, expected {want}")


def _short_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise KadMessageError("peer ID: malformed multihash varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def check_peer_id(pid: bytes, where: str = "peer") -> bytes:
    """Raise KadMessageError unless ``pid`` is a well-formed multihash of at most MAX_PEER_ID_SIZE bytes.

    libp2p peer IDs are the identity multihash of a small public key (ed25519,
    secp256k1) or the sha2-256 multihash of a larger one (RSA).
    """
    if not pid:
        raise KadMessageError(f"{where}: empty peer ID")
    if len(pid) > MAX_PEER_ID_SIZE:
        raise KadMessageError(f"{where}: peer ID of {len(pid)} bytes exceeds {MAX_PEER_ID_SIZE}")
    code, p = _short_varint(pid, 0)
    size, p = _short_varint(pid, p)
    if code not in (0x00, 0x12):
        raise KadMessageError(f"{where}: peer ID multihash code 0x{code:x} is neither identity nor sha2-256")
    if len(pid) - p != size or (code == 0x12 and size != 32):
        raise KadMessageError(f"{where}: peer ID multihash length does not match its digest")
    return pid


def _decode_peer(buf: memoryview, start: int, stop: int) -> Peer:
    pid = b""
    addrs: list[bytes] = []
    conn = NOT_CONNECTED
    for number, wire, value in _fields(buf, start, stop, "peer"):
        if number == 1:
            _expect(wire, 2, "peer", 1)
            pid = bytes(buf[value[0] : value[1]])
        elif number == 2:
            _expect(wire, 2, "peer", 2)
            if value[1] - value[0] > MAX_ADDR_SIZE:
                raise KadMessageError(f"peer: multiaddr of {value[1] - value[0]} bytes exceeds {MAX_ADDR_SIZE}")
            if len(addrs) >= MAX_ADDRS_PER_PEER:
                raise KadMessageError(f"peer: more than {MAX_ADDRS_PER_PEER} multiaddrs")
            addrs.append(bytes(buf[value[0] : value[1]]))
        elif number == 3:
            _expect(wire, 0, "peer", 3)
            if value > CANNOT_CONNECT:
                raise KadMessageError(f"peer: unknown connection type {value}")
            conn = value
    return Peer(check_peer_id(pid), addrs, conn)


def _decode_record(buf: memoryview, start: int, stop: int) -> Record:
    rec = Record()
    for number, wire, value in _fields(buf, start, stop, "record"):
        if number in (1, 2, 5):
            _expect(wire, 2, "record", number)
            size = value[1] - value[0]
            if number == 1:
                if size > MAX_KEY_SIZE:
                    raise KadMessageError(f"record: key of {size} bytes exceeds {MAX_KEY_SIZE}")
                rec.key = bytes(buf[value[0] : value[1]])
            elif number == 2:
                if size > MAX_VALUE_SIZE:
                    raise KadMessageError(f"record: value of {size} bytes exceeds {MAX_VALUE_SIZE}")
                rec.value = bytes(buf[value[0] : value[1]])
            else:
                if size > 64:
                    raise KadMessageError("record: timeReceived longer than 64 bytes")
                try:
                    rec.time_received = bytes(buf[value[0] : value[1]]).decode("utf-8")
                except UnicodeDecodeError:
                    raise KadMessageError("record: timeReceived is not UTF-8") from None
    return rec


#: decoded Peer entries by their bytes: a peer that announces many keys sends the same entry
#: in every ADD_PROVIDER, and parsing it was most of the decoding time
_peer_cache: dict[bytes, Peer] = {}
_PEER_CACHE_SIZE = 4096


def decode_message(data: bytes | bytearray | memoryview) -> KadMessage:
    """Decode one DHT message (without its length prefix); KadMessageError names any problem."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise KadMessageError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")
    buf = memoryview(data)
    msg = KadMessage(PUT_VALUE)
    for number, wire, value in _fields(buf, 0, len(buf), "message"):
        if number == 1:
            _expect(wire, 0, "message", 1)
            if value not in MESSAGE_TYPES:
                raise KadMessageError(f"message: unknown type {value}")
            msg.type = value
        elif number == 2:
            _expect(wire, 2, "message", 2)
            if value[1] - value[0] > MAX_KEY_SIZE:
                raise KadMessageError(f"message: key of {value[1] - value[0]} bytes exceeds {MAX_KEY_SIZE}")
            msg.key = bytes(buf[value[0] : value[1]])
        elif number == 3:
            _expect(wire, 2, "message", 3)
            msg.record = _decode_record(buf, value[0], value[1])
        elif number in (8, 9):
            _expect(wire, 2, "message", number)
            target = msg.closer if number == 8 else msg.providers
            if len(target) >= MAX_PEERS_PER_LIST:
                name = "closerPeers" if number == 8 else "providerPeers"
                raise KadMessageError(f"message: more than {MAX_PEERS_PER_LIST} {name}")
            raw = bytes(buf[value[0] : value[1]])
            peer = _peer_cache.get(raw)
            if peer is None:
                peer = _decode_peer(memoryview(raw), 0, len(raw))
                if len(_peer_cache) >= _PEER_CACHE_SIZE:
                    _peer_cache.clear()
                _peer_cache[raw] = peer
            target.append(Peer(peer.id, list(peer.addrs), peer.connection))
        elif number == 10:
            _expect(wire, 0, "message", 10)
            if value >= 1 << 63:
                value -= 1 << 64
            if not _INT32_MIN <= value <= _INT32_MAX:
                raise KadMessageError("message: clusterLevelRaw out of int32 range")
            msg.cluster_level = value
    return msg


# --------------------------------------------------------------------- encoding
def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def len_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: key, length, payload."""
    return _uvarint(number << 3 | 2) + _uvarint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    return _uvarint(number << 3) + _uvarint(value)


def encode_peer(peer: Peer) -> bytes:
    """The protobuf bytes of one Peer entry (without its field header)."""
    parts = [len_field(1, peer.id)]
    parts.extend(len_field(2, a) for a in peer.addrs)
    if peer.connection:
        parts.append(_int_field(3, peer.connection))
    return b"".join(parts)


def encode_message(msg: KadMessage) -> bytes:
    """The protobuf bytes of ``msg`` (without a length prefix); KadMessageError if over the size limit."""
    parts: list[bytes] = []
    if msg.type:
        parts.append(_int_field(1, msg.type))
    if msg.key:
        parts.append(len_field(2, msg.key))
    if msg.record is not None:
        rec = msg.record
        body = b""
        if rec.key:
            body += len_field(1, rec.key)
        if rec.value:
            body += len_field(2, rec.value)
        if rec.time_received:
            body += len_field(5, rec.time_received.encode())
        parts.append(len_field(3, body))
    parts.extend(len_field(8, encode_peer(p)) for p in msg.closer)
    parts.extend(len_field(9, encode_peer(p)) for p in msg.providers)
    if msg.cluster_level:
        parts.append(_int_field(10, msg.cluster_level))
    out = b"".join(parts)
    if len(out) > MAX_MESSAGE_SIZE:
        raise KadMessageError(f"encoded message of {len(out)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")
    return out


def frame(payload: bytes) -> bytes:
    """``payload`` with its unsigned-varint length prefix, as it goes on a stream."""
    return _uvarint(len(payload)) + payload
