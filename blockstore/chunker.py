"""Fixed-size chunking of a byte stream, as kubo's ``--chunker size-N``.

Every chunk is exactly N bytes except the last, which is shorter (never
empty). A stream is read one chunk at a time, so memory stays bounded by
the chunk size whatever the stream's length. Streams that return short
reads (pipes, sockets, HTTP bodies) are handled. Each chunk is the bytes
object ``read(n)`` returned (a full read costs no extra copy: the block
store keeps that object), so no intermediate buffer is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO, Protocol
from .errors import InvalidData

__all__ = ["ChunkerError", "DEFAULT_CHUNK_SIZE", "MAX_CHUNK_SIZE", "parse_chunker", "chunk_stream", "chunk_bytes"]

#: kubo's default chunk size (``size-262144``)
DEFAULT_CHUNK_SIZE = 262144
#: largest chunk kubo accepts (2 MiB minus room for the protobuf envelope)
MAX_CHUNK_SIZE = 2 * 1024 * 1024 - 256

_SIZE_RE = re.compile(r"size-([0-9]+)")


class ChunkerError(InvalidData):
    """A chunker specification that is malformed or not supported."""


class Readable(Protocol):
    """Anything with a binary ``read(n)`` method."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; empty at end of stream."""


def parse_chunker(spec: str | None) -> int:
    """Parse ``size-N`` (or ``None`` / ``"default"`` for kubo's default) into a chunk size in bytes."""
    if spec is None or spec == "" or spec == "default":
        return DEFAULT_CHUNK_SIZE
    m = _SIZE_RE.fullmatch(spec)
    if m is None:
        if spec.startswith("rabin") or spec.startswith("buzhash"):
            raise ChunkerError(f"chunker {spec!r} is not supported (only fixed-size 'size-N')")
        raise ChunkerError(f"malformed chunker {spec!r} (expected 'size-N', e.g. 'size-262144')")
    size = int(m.group(1))
    if size <= 0:
        raise ChunkerError(f"chunker {spec!r}: the chunk size must be positive")
    if size > MAX_CHUNK_SIZE:
        raise ChunkerError(f"chunker {spec!r}: chunk size {size} exceeds the maximum of {MAX_CHUNK_SIZE}")
    return size


def check_chunk_size(size: int) -> int:
    """Return ``size`` if it is a usable chunk size, else raise :class:`ChunkerError`."""
    if not 0 < size <= MAX_CHUNK_SIZE:
        raise ChunkerError(f"chunk size {size} outside 1..{MAX_CHUNK_SIZE}")
    return size


def chunk_stream(stream: BinaryIO | Readable, size: int) -> Iterator[bytes]:
    """Yield consecutive chunks of ``size`` bytes (the last may be shorter) until EOF."""
    check_chunk_size(size)
    read = stream.read
    while True:
        data = read(size)
        if not data:
            return
        if isinstance(data, str):
            raise ChunkerError("the stream returned text; open the file in binary mode")
        if len(data) < size:
            # a short read is not necessarily EOF: keep reading until full or EOF
            buf = bytearray(data)
            while len(buf) < size:
                more = read(size - len(buf))
                if not more:
                    break
                buf += more
            data = bytes(buf)
            yield data
            if len(data) < size:
                return
            continue
        yield data if type(data) is bytes else bytes(data)


def chunk_bytes(data: bytes | memoryview, size: int) -> Iterator[bytes]:
    """Yield the fixed-size chunks of an in-memory buffer."""
    check_chunk_size(size)
    mv = memoryview(data)
    for off in range(0, len(mv), size):
        yield bytes(mv[off : off + size])
