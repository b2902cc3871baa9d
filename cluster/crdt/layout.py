"""Key layout of the Merkle-CRDT in the repo's LevelDB (all under ``NS_CRDT``).

Keys hold CIDs as bytes. Where a CID is followed by more bytes it is
length-prefixed (one varint), so prefix scans of one key never match another.

| key | value |
|---|---|
| ``c/v/<key>`` | current value: 8-byte big-endian priority + value bytes |
| ``c/e/<len key><key><id>`` | live element added by delta ``id``: priority + value |
| ``c/t/<len key><key><id>`` | tombstone of element (key, id) |
| ``c/i/<len term><term><key>`` | secondary index: term (e.g. ``n=<name>``) -> key |
| ``c/h/<cid>`` | head; value = 8-byte height |
| ``c/b/<cid>`` | delta processed (merged into the state) |
| ``c/k/<cid>`` | block belongs to the CRDT (kept by garbage collection) |
| ``c/q/<8-byte seq>`` | batching queue: an acknowledged, not yet committed operation |
| ``c/p/<cid>`` | received head whose branch is being applied |
| ``c/d`` | dirty flag: a branch walk or snapshot load was under way |
| ``c/s`` | root CID of the snapshot this replica was last compacted to |
| ``c/l`` | root CID of a snapshot being loaded |
| ``c/x/<len key><key><id>`` | scratch marks of a snapshot load: elements the snapshot holds |
| ``c/n/count`` ``c/n/deltas`` ``c/n/batches`` | counters, 8-byte big-endian |
"""

from __future__ import annotations

import struct

from blockstore.cid import encode_varint, read_varint
from blockstore.layout import NS_CRDT

VALUE = NS_CRDT + b"v/"
ELEMENT = NS_CRDT + b"e/"
TOMB = NS_CRDT + b"t/"
INDEX = NS_CRDT + b"i/"
HEAD = NS_CRDT + b"h/"
PROCESSED = NS_CRDT + b"b/"
BLOCK = NS_CRDT + b"k/"
QUEUE = NS_CRDT + b"q/"
PENDING = NS_CRDT + b"p/"
DIRTY = NS_CRDT + b"d"
SNAPSHOT = NS_CRDT + b"s"
LOADING = NS_CRDT + b"l"
SCRATCH = NS_CRDT + b"x/"
COUNT = NS_CRDT + b"n/count"
DELTAS = NS_CRDT + b"n/deltas"
BATCHES = NS_CRDT + b"n/batches"

_U64 = struct.Struct(">Q")


def u64(n: int) -> bytes:
    """8-byte big-endian encoding (sorts like the number)."""
    return _U64.pack(n)


def read_u64(b: bytes, pos: int = 0) -> int:
    """Inverse of :func:`u64`."""
    return _U64.unpack_from(b, pos)[0]


def keyed(prefix: bytes, key: bytes) -> bytes:
    """``prefix`` + length-prefixed ``key``: the scan prefix of everything under ``key``."""
    return prefix + encode_varint(len(key)) + key


def split_keyed(prefix: bytes, full: bytes) -> tuple[bytes, bytes]:
    """Split a :func:`keyed` key followed by a suffix into (key, suffix)."""
    n, p = read_varint(full, len(prefix))
    return full[p : p + n], full[p + n :]
