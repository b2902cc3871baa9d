"""CIDs as bytes: our fast paths against the reference `multiformats` implementation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID, multihash

from blockstore import cid as c


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_roundtrip(n: int) -> None:
    enc = c.encode_varint(n)
    assert c.read_varint(enc + b"\xff", 0) == (n, len(enc))


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\x80\x80", b"\x81\x00", b"\xff" * 10])
def test_varint_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(c.CidError):
        c.read_varint(bad, 0)


@settings(max_examples=200)
@given(
    data=st.binary(max_size=2048),
    version=st.sampled_from([0, 1]),
    codec=st.sampled_from([c.RAW, c.DAG_PB, c.DAG_CBOR]),
    mh=st.sampled_from([c.SHA2_256, c.BLAKE2B_256]),
)
def test_cid_matches_multiformats(data: bytes, version: int, codec: int, mh: int) -> None:
    if version == 0 and (codec != c.DAG_PB or mh != c.SHA2_256):
        with pytest.raises(c.CidError):
            c.cid_for(data, codec=codec, version=version, mh_code=mh)
        return
    ours = c.cid_for(data, codec=codec, version=version, mh_code=mh)
    name = {c.SHA2_256: "sha2-256", c.BLAKE2B_256: "blake2b-256"}[mh]
    codec_name = {c.RAW: "raw", c.DAG_PB: "dag-pb", c.DAG_CBOR: "dag-cbor"}[codec]
    ref = CID("base58btc" if version == 0 else "base32", version, codec_name, multihash.digest(data, name))
    assert ours == bytes(ref)
    assert c.cid_to_str(ours) == str(ref)
    assert c.cid_from_str(str(ref)) == ours
    parts = c.parse_cid(ours)
    assert (parts.version, parts.codec, parts.mh_code) == (version, codec, mh)
    assert c.read_cid(ours + b"tail", 0) == (ours, len(ours))
    c.verify(ours, data)
    with pytest.raises(c.HashMismatch):
        c.verify(ours, data + b"x")


def test_other_multibase_strings_parse() -> None:
    cid = c.cid_for(b"hello")
    ref = CID.decode(cid)
    for base in ("base58btc", "base36", "base16", "base64"):
        assert c.cid_from_str(ref.encode(base)) == cid


def test_known_strings() -> None:
    empty_dir = c.cid_from_str("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
    assert c.codec_of(empty_dir) == c.DAG_PB
    assert c.cid_to_str(c.to_v1(empty_dir)) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    assert c.multihash_of(c.to_v1(empty_dir)) == empty_dir


@pytest.mark.parametrize("text", ["", "Qm", "bafyfoo", "not a cid", "zzzz", "b" + "a" * 60])
def test_bad_strings(text: str) -> None:
    with pytest.raises(c.CidError):
        c.cid_from_str(text)


def test_identity() -> None:
    cid = c.cid_for(b"hi", mh_code=c.IDENTITY)
    assert c.is_identity(cid)
    assert c.parse_cid(cid).digest == b"hi"
    with pytest.raises(c.CidError):
        c.cid_for(b"x" * 129, mh_code=c.IDENTITY)


def test_digest_length_checked() -> None:
    bad = b"\x01\x55\x12\x10" + hashlib.sha256(b"").digest()[:16]
    with pytest.raises(c.CidError):
        c.parse_cid(bad)
    with pytest.raises(c.CidError):
        c.parse_cid(c.cid_for(b"x") + b"\x00")


# ---------------------------------------------------------------- the one-byte-varint fast paths
_CODECS = ["raw", "dag-cbor", "dag-pb", "dag-json", "libp2p-key", "git-raw", "dag-jose"]


@settings(max_examples=300, deadline=None)
@given(
    codec=st.sampled_from(_CODECS),
    hasher=st.sampled_from(["sha2-256", "identity", "sha2-512", "blake2b-256", "sha3-256"]),
    data=st.binary(max_size=140),
    base=st.sampled_from(["base32", "base58btc", "base36", "base64url", "base16"]),
)
def test_cid_from_str_and_parse_cid_equal_the_multiformats_reference(codec: str, hasher: str, data: bytes, base: str) -> None:
    """Whatever the base, codec and hash, a string parses to the reference CID's bytes and parse_cid
    agrees with the reference; identity digests over 128 bytes are refused (our limit)."""
    mh = multihash.wrap(data, "identity") if hasher == "identity" else multihash.digest(data, hasher)
    ref = CID(base, 1, codec, mh)
    if hasher == "identity" and len(data) > c.MAX_IDENTITY_DIGEST:
        with pytest.raises(c.CidError):
            c.cid_from_str(ref.encode(base))
        with pytest.raises(c.CidError):
            c.parse_cid(bytes(ref))
        return
    assert c.cid_from_str(ref.encode(base)) == bytes(ref)
    parts = c.parse_cid(bytes(ref))
    assert (parts.version, parts.codec, parts.mh_code, parts.digest) == (1, ref.codec.code, ref.hashfun.code, ref.raw_digest)
    assert parts.multihash == bytes(ref)[len(bytes(ref)) - len(mh) :]


def _general_parse(cid: bytes) -> tuple[int, int, int, bytes] | None:
    """parse_cid's rules read the slow way (varint by varint); None when they refuse ``cid``."""
    try:
        version, p = c.read_varint(cid, 0)
        codec, p = c.read_varint(cid, p)
        code, digest, p = c._read_multihash(cid, p)
    except c.CidError:
        return None
    return (version, codec, code, digest) if version == 1 and p == len(cid) else None


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=3, max_size=40), st.sampled_from([0x00, 0x12, 0x13, 0xB220, 0x55]))
def test_parse_cid_fast_path_agrees_with_the_varint_rules(tail: bytes, code: int) -> None:
    """Bytes shaped like a one-byte-varint CIDv1 (or not) are accepted exactly when the
    varint-reading rules accept them, with the same parts."""
    for cid in (b"\x01" + tail, b"\x01\x55" + c.encode_varint(code) + tail[1:]):
        expected = _general_parse(cid)
        try:
            parts = c.parse_cid(cid)
        except c.CidError:
            assert expected is None, cid
            continue
        assert expected == (parts.version, parts.codec, parts.mh_code, parts.digest), cid
