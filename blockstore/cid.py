"""CIDs and multihashes as bytes.

Inside Pinion a CID is its binary form: a CIDv0 is the 34-byte sha2-256
multihash, a CIDv1 is ``varint(1) varint(codec) multihash``. Strings exist only
at the edges (HTTP, CLI, logs) and are made and parsed here, with libipld on
the hot path. Nothing in this module does I/O.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

import libipld

from .errors import InvalidData

# multicodec codes used by Pinion
IDENTITY = 0x00
SHA2_256 = 0x12
SHA2_512 = 0x13
BLAKE2B_256 = 0xB220
RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
LIBP2P_KEY = 0x72

#: longest identity digest accepted (IPIP-0512)
MAX_IDENTITY_DIGEST = 128

_DIGEST_SIZES = {SHA2_256: 32, SHA2_512: 64, BLAKE2B_256: 32}


class CidError(InvalidData):
    """A CID or multihash that cannot be parsed or is not supported."""


class HashMismatch(InvalidData):
    """A block whose bytes do not hash to the digest in its CID."""


class CidParts(NamedTuple):
    """The decoded fields of a binary CID."""

    version: int
    codec: int
    mh_code: int
    digest: bytes
    multihash: bytes


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128 encoding of ``n``."""
    if n < 0:
        raise ValueError("varint must be non-negative")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode an unsigned varint at ``pos``; return (value, position after it).

    Rejects truncated varints, varints longer than 9 bytes and non-minimal
    encodings (a trailing zero byte), as the multiformats spec asks.
    """
    result = 0
    shift = 0
    start = pos
    end = len(buf)
    while True:
        if pos >= end:
            raise CidError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and pos - start > 1:
                raise CidError("non-minimal varint")
            return result, pos
        shift += 7
        if pos - start >= 9:
            raise CidError("varint too long")


def _read_multihash(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, bytes, int]:
    """Read a multihash at ``pos``; return (code, digest, end position)."""
    code, p = read_varint(buf, pos)
    size, p = read_varint(buf, p)
    if code == IDENTITY:
        if size > MAX_IDENTITY_DIGEST:
            raise CidError(f"identity digest of {size} bytes exceeds {MAX_IDENTITY_DIGEST}")
    elif code in _DIGEST_SIZES:
        if size != _DIGEST_SIZES[code]:
            raise CidError(f"multihash 0x{code:x} with digest length {size}")
    elif size > 128:
        raise CidError(f"multihash digest length {size} too large")
    if p + size > len(buf):
        raise CidError("truncated multihash digest")
    return code, bytes(buf[p : p + size]), p + size


def read_cid(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[bytes, int]:
    """Read one binary CID starting at ``pos`` in ``buf``.

    Returns (cid bytes, position after it). Used by the CAR reader and the
    dag-pb decoder, where CIDs are embedded in larger buffers.
    """
    if len(buf) - pos >= 2 and buf[pos] == 0x12 and buf[pos + 1] == 0x20:
        if len(buf) - pos < 34:
            raise CidError("truncated CIDv0")
        return bytes(buf[pos : pos + 34]), pos + 34
    version, p = read_varint(buf, pos)
    if version != 1:
        raise CidError(f"unsupported CID version {version}")
    _codec, p = read_varint(buf, p)
    _code, _digest, p = _read_multihash(buf, p)
    return bytes(buf[pos:p]), p


def parse_cid(cid: bytes) -> CidParts:
    """Decode a whole binary CID into its parts; raise CidError if malformed."""
    n = len(cid)
    if n == 34 and cid[0] == 0x12 and cid[1] == 0x20:
        return CidParts(0, DAG_PB, SHA2_256, cid[2:], cid)
    if n >= 4 and cid[0] == 1 and cid[1] < 0x80 and cid[2] < 0x80 and cid[3] < 0x80 and n == 4 + cid[3]:
        # CIDv1 whose codec, hash code and digest length are one-byte varints (nearly all):
        # the checks of the general path below, without reading varints
        code, size = cid[2], cid[3]
        if code == IDENTITY or _DIGEST_SIZES.get(code, size) == size:
            return CidParts(1, cid[1], code, cid[4:], cid[2:])
    version, p = read_varint(cid, 0)
    if version != 1:
        raise CidError(f"unsupported CID version {version}")
    codec, p = read_varint(cid, p)
    mh_start = p
    code, digest, p = _read_multihash(cid, p)
    if p != len(cid):
        raise CidError("trailing bytes after CID")
    return CidParts(1, codec, code, digest, cid[mh_start:])


def multihash_of(cid: bytes) -> bytes:
    """The multihash inside a binary CID (the blockstore key)."""
    if len(cid) == 34 and cid[0] == 0x12:
        return cid
    return parse_cid(cid).multihash


def codec_of(cid: bytes) -> int:
    """The content codec of a binary CID (dag-pb for CIDv0)."""
    if len(cid) == 34 and cid[0] == 0x12:
        return DAG_PB
    # fast path for the common single-byte varints
    if len(cid) > 2 and cid[0] == 1 and cid[1] < 0x80:
        return cid[1]
    return parse_cid(cid).codec


def is_identity(cid: bytes) -> bool:
    """True when the CID's multihash is the identity hash (data is inline)."""
    if len(cid) == 34 and cid[0] == 0x12:
        return False
    return parse_cid(cid).mh_code == IDENTITY


def make_multihash(code: int, digest: bytes) -> bytes:
    """Build a multihash from a hash function code and a digest."""
    return encode_varint(code) + encode_varint(len(digest)) + digest


def make_cid(version: int, codec: int, multihash: bytes) -> bytes:
    """Build a binary CID; CIDv0 only for dag-pb + sha2-256."""
    if version == 0:
        if codec != DAG_PB or multihash[:2] != b"\x12\x20" or len(multihash) != 34:
            raise CidError("CIDv0 requires dag-pb and a sha2-256 multihash")
        return multihash
    if version != 1:
        raise CidError(f"unsupported CID version {version}")
    return b"\x01" + encode_varint(codec) + multihash


def hash_digest(mh_code: int, data: bytes | memoryview) -> bytes:
    """Digest of ``data`` with the multihash function ``mh_code``."""
    if mh_code == SHA2_256:
        return hashlib.sha256(data).digest()
    if mh_code == BLAKE2B_256:
        return hashlib.blake2b(data, digest_size=32).digest()
    if mh_code == SHA2_512:
        return hashlib.sha512(data).digest()
    if mh_code == IDENTITY:
        if len(data) > MAX_IDENTITY_DIGEST:
            raise CidError(f"identity data of {len(data)} bytes exceeds {MAX_IDENTITY_DIGEST}")
        return bytes(data)
    raise CidError(f"unsupported multihash function 0x{mh_code:x}")


def cid_for(data: bytes | memoryview, codec: int = RAW, version: int = 1, mh_code: int = SHA2_256) -> bytes:
    """Hash ``data`` and return its binary CID."""
    return make_cid(version, codec, make_multihash(mh_code, hash_digest(mh_code, data)))


def verify(cid: bytes, data: bytes | memoryview) -> None:
    """Raise HashMismatch unless ``data`` hashes to the digest in ``cid``."""
    if len(cid) == 34 and cid[0] == 0x12 and cid[1] == 0x20:
        if hashlib.sha256(data).digest() != cid[2:]:
            raise HashMismatch(f"block does not match {cid_to_str(cid)}")
        return
    parts = parse_cid(cid)
    if hash_digest(parts.mh_code, data) != parts.digest:
        raise HashMismatch(f"block does not match {cid_to_str(cid)}")


def cid_to_str(cid: bytes) -> str:
    """Canonical string: base58btc for CIDv0, base32 lower-case for CIDv1."""
    return libipld.encode_cid(cid)


def cid_from_str(text: str) -> bytes:
    """Parse a CID string (CIDv0 base58 or any multibase CIDv1) to bytes."""
    if not isinstance(text, str) or not text:
        raise CidError("empty CID")
    try:
        d = libipld.decode_cid(text)
    except (ValueError, TypeError) as exc:
        raise CidError(f"invalid CID {text[:80]!r}: {exc}") from None
    h = d["hash"]
    code, digest, codec = h["code"], h["digest"], d["codec"]
    if d["version"] == 1 and codec < 0x80 and code < 0x80 and len(digest) < 0x80:
        cid = bytes((1, codec, code, len(digest))) + digest  # every varint is one byte
    else:
        mh = make_multihash(code, digest)
        cid = mh if d["version"] == 0 else make_cid(1, codec, mh)
    parse_cid(cid)  # apply our own limits (digest sizes, identity length)
    return cid


def to_v1(cid: bytes) -> bytes:
    """The CIDv1 form of a CID (CIDv1 input is returned unchanged)."""
    if len(cid) == 34 and cid[0] == 0x12:
        return b"\x01" + encode_varint(DAG_PB) + cid
    return cid


def multihash_to_b32(mh: bytes) -> str:
    """Upper-case unpadded base32 of a multihash (kubo's blockstore key form)."""
    return base64.b32encode(mh).decode().rstrip("=")
