"""CAR (Content Addressable aRchive) v1/v2 reading and v1 writing.

The reader is a sans-I/O incremental parser, :class:`CarParser`: feed it the
bytes of a CAR in pieces of any size (from a file, an HTTP body, an asyncio
stream) and it returns events, :class:`CarHeader` once and then one
:class:`CarBlock` per section, each block already checked against its CID.
:class:`CarReader` is the thin synchronous shell over anything with
``read(n)``. Memory is bounded by the largest section, whatever the CAR size.

Policies (each checked against the go-car and IPLD spec fixtures listed in
``tests/fixtures/README.md``):

- limits: header <= 32 MiB and section <= 8 MiB (go-car's), optionally
  block <= ``max_block_size``; a length over a limit is refused as soon as its
  varint is read, before anything is allocated;
- empty roots are accepted (as kubo ``dag import`` does): the blocks import
  and nothing is pinned; a header without a ``roots`` list is refused;
- a zero-length section is an error by default; with
  ``zero_length_as_eof=True`` it ends the data (what follows is padding);
- CARv2: the pragma, the 40-byte header, ``data_offset``/``data_size`` are
  checked and the inner CARv1 is read; bytes between the header and the
  payload and everything after it (the index) are skipped unread;
- every block is verified (sha2-256, sha2-512, blake2b-256, identity); any other
  multihash is refused, as is a block that does not match its CID.

Every error is a :class:`CarError` naming the problem and the byte offset in
the stream where it was found.

Why one module of over 500 lines: the CAR v1/v2 reader, the sans-I/O streaming parser and the
writer share the header and section codecs; each is a small class.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, NoReturn

import libipld

from .cid import BLAKE2B_256, IDENTITY, SHA2_256, SHA2_512, CidError, cid_to_str, encode_varint, hash_digest, parse_cid, read_cid
from .links import LinksError, scan_cbor_cids
from .errors import InvalidData

__all__ = [
    "CarError",
    "CarHeader",
    "CarBlock",
    "CarParser",
    "CarReader",
    "MAX_HEADER_SIZE",
    "MAX_SECTION_SIZE",
    "PRAGMA_V2",
    "encode_header",
    "encode_section",
    "write_car",
]

#: largest header accepted (go-car's limit)
MAX_HEADER_SIZE = 32 * 1024 * 1024
#: largest section (CID + block) accepted (go-car's limit)
MAX_SECTION_SIZE = 8 * 1024 * 1024
#: the 11 bytes that open every CARv2: varint(10) + DAG-CBOR ``{"version": 2}``
PRAGMA_V2 = bytes.fromhex("0aa16776657273696f6e02")
_V2_HEADER_SIZE = 40
_V2_MIN_DATA_OFFSET = len(PRAGMA_V2) + _V2_HEADER_SIZE
_U64 = 1 << 64
#: longest binary CID the parser can meet: version, codec, hash code and length varints plus a 128-byte digest
_MAX_CID_LEN = 1 + 9 + 9 + 2 + 128
_HASH_NAMES = {SHA2_256: "sha2-256", SHA2_512: "sha2-512", BLAKE2B_256: "blake2b-256", IDENTITY: "identity"}

# parser states
_HEADER_LEN, _HEADER, _V2_HEADER, _SKIP, _SECTION_LEN, _SECTION, _DONE = range(7)


class CarError(InvalidData):
    """A malformed or rejected CAR; ``offset`` is the byte offset in the stream where the problem is."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte offset {offset})")
        self.problem = message
        self.offset = offset


class CarHeader(NamedTuple):
    """The header of a CAR: container version (1 or 2), roots, and for v2 the payload placement."""

    version: int
    roots: list[bytes]
    data_offset: int = 0
    data_size: int | None = None
    index_offset: int = 0


class CarBlock(NamedTuple):
    """One verified block of a CAR and the stream offset of its section."""

    cid: bytes
    data: bytes
    offset: int


def _name(cid: bytes) -> str:
    """The CID as a string for an error message (hex when it cannot be written as a CID string)."""
    try:
        return cid_to_str(cid)
    except ValueError:
        return "0x" + cid.hex()[:96]


def _verify(cid: bytes, data: memoryview, offset: int) -> None:
    """Raise CarError unless ``data`` hashes to the digest in ``cid``."""
    if len(cid) == 34 and cid[0] == 0x12 and cid[1] == 0x20:  # CIDv0: sha2-256, 32 bytes
        if hashlib.sha256(data).digest() != cid[2:]:
            raise CarError(f"block {_name(cid)} does not match its CID (sha2-256 digest differs)", offset)
        return
    parts = parse_cid(cid)
    code = parts.mh_code
    try:
        ok = (bytes(data) if code == IDENTITY else hash_digest(code, data)) == parts.digest
    except CidError:
        raise CarError(f"block {_name(cid)} uses unsupported multihash function 0x{code:x}", offset) from None
    if not ok:
        name = _HASH_NAMES.get(code, f"0x{code:x}")
        raise CarError(f"block {_name(cid)} does not match its CID ({name} digest differs)", offset)


class CarParser:
    """Incremental sans-I/O CAR v1/v2 parser: :meth:`feed` bytes, get events; :meth:`finish` at end of input.

    Events are one :class:`CarHeader` (first) and then :class:`CarBlock`\\ s in
    stream order. After an error the parser is unusable.
    """

    def __init__(
        self,
        *,
        verify: bool = True,
        max_header_size: int = MAX_HEADER_SIZE,
        max_section_size: int = MAX_SECTION_SIZE,
        max_block_size: int | None = None,
        zero_length_as_eof: bool = False,
    ) -> None:
        self._verify = verify
        self._max_header = max_header_size
        self._max_section = max_section_size
        self._max_block = max_block_size
        self._zero_eof = zero_length_as_eof
        self._buf = bytearray()
        self._base = 0  # stream offset of self._buf[0]
        self._state = _HEADER_LEN
        self._need = 0  # body length awaited in _HEADER / _SECTION
        self._item_start = 0  # stream offset where the awaited item began
        self._item_start_body = 0  # stream offset of the awaited item's body
        self._inner = False  # parsing the CARv1 inside a CARv2
        self._data_end: int | None = None  # stream offset where a v2 payload ends
        self._skip_to = 0
        self._v2: tuple[int, int, int] | None = None
        self.header: CarHeader | None = None
        self.blocks = 0
        self.block_bytes = 0
        self._failed: CarError | None = None

    @property
    def offset(self) -> int:
        """How many bytes of the stream have been fed so far."""
        return self._base + len(self._buf)

    @property
    def done(self) -> bool:
        """True once the CAR's data has ended (a v2 payload fully read, or a zero-length section as EOF)."""
        return self._state == _DONE

    def feed(self, data: bytes | bytearray | memoryview) -> list[CarHeader | CarBlock]:
        """Parse more bytes; return the events they complete (maybe none)."""
        if self._failed is not None:
            raise self._failed
        if self._state == _DONE or not data:
            return []
        self._buf += data
        events: list[CarHeader | CarBlock] = []
        try:
            pos = self._run(events)
        except CarError as exc:
            self._failed = exc
            raise
        if pos:
            del self._buf[:pos]
            self._base += pos
        if self._state == _DONE and self._buf:
            self._base += len(self._buf)
            self._buf.clear()
        return events

    def finish(self) -> None:
        """Declare the end of input; raise CarError if the CAR is incomplete."""
        if self._failed is not None:
            raise self._failed
        st = self._state
        end = self.offset
        if st == _DONE:
            return
        if st == _SECTION_LEN and not self._buf:
            if self._data_end is not None and end < self._data_end:
                self._fail(f"unexpected EOF: the CARv2 data payload ends at byte {self._data_end} but the stream ends", end)
            return
        if st == _HEADER_LEN and not self._buf and end == 0:
            self._fail("empty stream: not a CAR", 0)
        if st in (_HEADER_LEN, _HEADER):
            what = "inner CARv1 header" if self._inner else "header"
            self._fail(f"unexpected EOF in the CAR {what}", end)
        if st == _V2_HEADER:
            self._fail("unexpected EOF in the CARv2 header", end)
        if st == _SKIP:
            self._fail(f"unexpected EOF: the CARv2 data payload starts at byte {self._skip_to} but the stream ends", end)
        if st == _SECTION:
            have = end - self._item_start_body
            self._fail(f"unexpected EOF in a section: {self._need} bytes announced, {have} present", self._item_start)
        self._fail("unexpected EOF in a section length", end)

    # ------------------------------------------------------------------ internals
    def _fail(self, message: str, offset: int) -> NoReturn:
        self._failed = CarError(message, offset)
        raise self._failed

    def _varint(self, buf: bytearray, pos: int, what: str) -> tuple[int, int] | None:
        """Read a varint at ``pos``; None if more bytes are needed."""
        end = len(buf)
        if pos < end and buf[pos] < 0x80:
            return buf[pos], pos + 1
        result = 0
        shift = 0
        p = pos
        while p < end:
            b = buf[p]
            p += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                if b == 0 and p - pos > 1:
                    self._fail(f"non-minimal varint in the {what}", self._base + pos)
                return result, p
            shift += 7
            if p - pos >= 9:
                self._fail(f"{what} varint longer than 9 bytes", self._base + pos)
        return None

    def _run(self, events: list[CarHeader | CarBlock]) -> int:
        """Consume as much of the buffer as possible; return the buffer position reached."""
        buf = self._buf
        pos = 0
        while True:
            st = self._state
            if st == _SECTION_LEN:
                if self._data_end is not None and self._base + pos >= self._data_end:
                    self._state = _DONE
                    return pos
                r = self._varint(buf, pos, "section length")
                if r is None:
                    return pos
                length, p = r
                start = self._base + pos
                if length == 0:
                    if self._zero_eof:
                        self._state = _DONE
                        return p
                    self._fail("zero-length section", start)
                if length > self._max_section:
                    self._fail(f"section length {length} exceeds the {self._max_section}-byte limit", start)
                if self._max_block is not None and length > self._max_block + _MAX_CID_LEN:
                    self._fail(f"section of {length} bytes holds a block over the {self._max_block}-byte limit", start)
                if self._data_end is not None and self._base + p + length > self._data_end:
                    self._fail(
                        f"section of {length} bytes runs past the end of the CARv2 data payload at byte {self._data_end}",
                        start,
                    )
                self._item_start = start
                self._item_start_body = self._base + p
                self._need = length
                self._state = _SECTION
                pos = p
            elif st == _SECTION:
                n = self._need
                if len(buf) - pos < n:
                    return pos
                events.append(self._section(buf, pos, n))
                pos += n
                self._state = _SECTION_LEN
            elif st == _HEADER_LEN:
                r = self._varint(buf, pos, "header length")
                if r is None:
                    return pos
                length, p = r
                start = self._base + pos
                if length == 0:
                    self._fail("zero-length CAR header", start)
                if length > self._max_header:
                    self._fail(f"header length {length} exceeds the {self._max_header}-byte limit", start)
                if self._data_end is not None and self._base + p + length > self._data_end:
                    self._fail(f"inner CARv1 header runs past the end of the CARv2 data payload at byte {self._data_end}", start)
                self._item_start = start
                self._item_start_body = self._base + p
                self._need = length
                self._state = _HEADER
                pos = p
            elif st == _HEADER:
                n = self._need
                if len(buf) - pos < n:
                    return pos
                header = self._header(bytes(buf[pos : pos + n]))
                pos += n
                if header is None:  # the CARv2 pragma
                    self._state = _V2_HEADER
                else:
                    self.header = header
                    events.append(header)
                    self._state = _SECTION_LEN
            elif st == _V2_HEADER:
                if len(buf) - pos < _V2_HEADER_SIZE:
                    return pos
                self._v2_header(bytes(buf[pos : pos + _V2_HEADER_SIZE]), self._base + pos)
                pos += _V2_HEADER_SIZE
                self._state = _SKIP
            elif st == _SKIP:
                want = self._skip_to - self._base
                if want > len(buf):
                    return len(buf)
                pos = max(pos, want)
                self._inner = True
                self._state = _HEADER_LEN
            else:
                return pos

    def _header(self, raw: bytes) -> CarHeader | None:
        """Validate a DAG-CBOR CAR header; None for the CARv2 pragma."""
        at = self._item_start
        where = "inner CARv1 header" if self._inner else "CAR header"
        try:
            value: Any = libipld.decode_dag_cbor(raw)
        except ValueError as exc:
            self._fail(f"invalid {where}: not DAG-CBOR ({exc})", at)
        if not isinstance(value, dict):
            self._fail(f"invalid {where}: a {type(value).__name__}, not a map", at)
        version = value.get("version")
        if "version" not in value:
            self._fail(f"invalid {where}: no version", at)
        if not isinstance(version, int) or isinstance(version, bool):
            self._fail(f"invalid {where}: version is not an integer", at)
        if version == 2 and not self._inner and at == 0 and set(value) == {"version"}:
            return None
        if version != 1:
            if self._inner:
                self._fail(f"the CARv2 data payload is a CAR version {version}, not 1", at)
            self._fail(f"unsupported CAR version {version}", at)
        extra = set(value) - {"roots", "version"}
        if extra:
            self._fail(f"invalid {where}: unexpected key {sorted(extra)[0]!r}", at)
        roots = value.get("roots")
        if not isinstance(roots, list):
            self._fail(f"invalid {where}: roots is {'missing' if roots is None else 'not a list'}", at)
        try:
            cids = scan_cbor_cids(raw)
        except LinksError as exc:
            self._fail(f"invalid {where}: {exc}", at)
        if len(cids) != len(roots):
            self._fail(f"invalid {where}: a root is not a CID", at)
        for cid in cids:
            try:
                parse_cid(cid)
            except CidError as exc:
                self._fail(f"invalid {where}: bad root CID: {exc}", at)
        if self._v2 is not None:
            d_off, d_size, i_off = self._v2
            return CarHeader(2, cids, d_off, d_size, i_off)
        return CarHeader(1, cids)

    def _v2_header(self, raw: bytes, at: int) -> None:
        """Check the 40-byte CARv2 header and arrange to skip to the payload."""
        d_off, d_size, i_off = struct.unpack_from("<QQQ", raw, 16)
        if d_off < _V2_MIN_DATA_OFFSET:
            self._fail(f"invalid CARv2 header: data offset {d_off} is inside the header (minimum {_V2_MIN_DATA_OFFSET})", at)
        if d_size == 0:
            self._fail("invalid CARv2 header: data size is 0", at)
        if d_off + d_size >= _U64:
            self._fail(f"invalid CARv2 header: data offset {d_off} + data size {d_size} overflows 64 bits", at)
        if i_off != 0 and i_off < d_off + d_size:
            self._fail(f"invalid CARv2 header: index offset {i_off} is inside the data payload", at)
        self._v2 = (d_off, d_size, i_off)
        self._skip_to = d_off
        self._data_end = d_off + d_size

    def _section(self, buf: bytearray, pos: int, n: int) -> CarBlock:
        """Decode and verify the section body ``buf[pos:pos+n]``."""
        at = self._item_start
        with memoryview(buf) as mv:
            body = mv[pos : pos + n]
            try:
                cid, used = read_cid(body, 0)
            except CidError as exc:
                body.release()
                self._fail(f"invalid CID in section: {exc}", at)
            if used > n:
                body.release()
                self._fail("section shorter than its CID", at)
            block = body[used:]
            size = n - used
            if self._max_block is not None and size > self._max_block:
                block.release()
                body.release()
                self._fail(f"block {_name(cid)} of {size} bytes exceeds the {self._max_block}-byte limit", at)
            try:
                if self._verify:
                    _verify(cid, block, at)
                data = bytes(block)
            except CidError as exc:
                self._failed = CarError(f"block with unusable CID: {exc}", at)
                raise self._failed from None
            finally:
                block.release()
                body.release()
        self.blocks += 1
        self.block_bytes += size
        return CarBlock(cid, data, at)


class CarReader:
    """Synchronous CAR reader over a stream with ``read(n)`` (a file, an HTTP body).

    ``header`` reads as far as the header; iterating yields verified
    :class:`CarBlock`\\ s to the end and checks that the CAR is complete.
    """

    def __init__(self, stream: Any, *, read_size: int = 1 << 20, **parser_options: Any) -> None:
        self._stream = stream
        self._read_size = read_size
        self.parser = CarParser(**parser_options)
        self._pending: deque[CarHeader | CarBlock] = deque()
        self._eof = False

    def _pump(self) -> bool:
        """Read and parse one chunk; False at end of stream."""
        if self._eof:
            return False
        chunk = self._stream.read(self._read_size)
        if not chunk:
            self._eof = True
            self.parser.finish()
            return False
        self._pending.extend(self.parser.feed(chunk))
        if self.parser.done:
            self._eof = True
        return True

    @property
    def header(self) -> CarHeader:
        """The CAR's header (reads from the stream until it is complete)."""
        while self.parser.header is None:
            if not self._pump():
                raise CarError("unexpected EOF: no CAR header", self.parser.offset)
        return self.parser.header

    @property
    def roots(self) -> list[bytes]:
        """The CAR's root CIDs."""
        return self.header.roots

    def __iter__(self) -> Iterator[CarBlock]:
        while True:
            while self._pending:
                ev = self._pending.popleft()
                if isinstance(ev, CarBlock):
                    yield ev
            if not self._pump():
                return


# ---------------------------------------------------------------------- writer
def encode_header(roots: Iterable[bytes]) -> bytes:
    """The length-prefixed DAG-CBOR CARv1 header ``{"roots": [...], "version": 1}``."""
    roots = list(roots)
    parts = [b"\xa2\x65roots", _cbor_head(4, len(roots))]
    for cid in roots:
        parse_cid(cid)
        parts += (b"\xd8\x2a", _cbor_head(2, len(cid) + 1), b"\x00", cid)
    parts.append(b"\x67version\x01")
    body = b"".join(parts)
    return encode_varint(len(body)) + body


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    if n < 0x100:
        return bytes((major << 5 | 24, n))
    if n < 0x10000:
        return bytes((major << 5 | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major << 5 | 26,)) + n.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + n.to_bytes(8, "big")


def encode_section(cid: bytes, data: bytes) -> bytes:
    """One CAR section: ``varint(len(cid) + len(data)) ‖ cid ‖ data``."""
    return encode_varint(len(cid) + len(data)) + cid + data


def write_car(roots: Iterable[bytes], blocks: Iterable[tuple[bytes, bytes]], *, flush_size: int = 1 << 16) -> Iterator[bytes]:
    """Stream a CARv1: the header with ``roots``, then each (cid, data) once, in the given order.

    A CID already written is skipped. Small sections are coalesced into
    chunks of about ``flush_size`` bytes; a large block is passed through
    without being copied.
    """
    pending: list[bytes] = [encode_header(roots)]
    size = len(pending[0])
    seen: set[bytes] = set()
    for cid, data in blocks:
        if cid in seen:
            continue
        seen.add(cid)
        prefix = encode_varint(len(cid) + len(data)) + cid
        if len(data) >= flush_size:
            pending.append(prefix)
            yield b"".join(pending)
            yield data
            pending = []
            size = 0
            continue
        pending += (prefix, data)
        size += len(prefix) + len(data)
        if size >= flush_size:
            yield b"".join(pending)
            pending = []
            size = 0
    if pending:
        yield b"".join(pending)
