"""The CAR parser and writer: every shared fixture, malformed headers and sections, splits, truncation, round-trips."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.car import (
    MAX_SECTION_SIZE,
    PRAGMA_V2,
    CarBlock,
    CarError,
    CarHeader,
    CarParser,
    CarReader,
    encode_header,
    encode_section,
    write_car,
)
from blockstore.cid import BLAKE2B_256, SHA2_512, DAG_CBOR, DAG_PB, IDENTITY, RAW, cid_for, cid_from_str, encode_varint, make_cid, verify

FIX = Path(__file__).resolve().parents[1].joinpath("fixtures")
GOCAR = FIX / "go-car-testdata"
V2 = GOCAR / "v2/testdata"
INPUTS = GOCAR / "cmd/car/testdata/inputs"
SPEC = FIX / "ipld-car-spec"

GOOD = [
    (INPUTS / "simple-unixfs.car", 1, ["QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"], 22),
    (INPUTS / "simple-unixfs-missing-blocks.car", 1, ["QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"], 17),
    (V2 / "sample-v1.car", 1, ["bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"], 1049),
    (V2 / "sample-wrapped-v2.car", 2, ["bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"], 1049),
    (V2 / "sample-v2-indexless.car", 2, ["bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"], 1049),
    (V2 / "sample-unixfs-v2.car", 2, ["bafybeiakgrehdxxgy5kca72znt6jllrj2sqkehtqeojfuxlbeuqg3vfkwq"], 3),
    (
        SPEC / "carv1-basic/carv1-basic.car",
        1,
        [
            "bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm",
            "bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm",
        ],
        8,
    ),
    (SPEC / "carv2-basic/carv2-basic.car", 2, ["QmfEoLyB5NndqeKieExd1rtJzTduQUPEV8TwAYcUiy3H5Z"], 5),
]

# (file, words the error must contain, offset of the problem)
BAD = [
    (INPUTS / "badheaderlength.car", "header length 216830324832 exceeds", 0),
    (INPUTS / "badsectionlength.car", "section length 216830324832 exceeds", 18),
    (V2 / "sample-corrupt-pragma.car", "unexpected EOF in the CAR header", 16),
    (V2 / "sample-rootless-v42.car", "unsupported CAR version 42", 0),
    (V2 / "sample-v1-tailing-corrupt-section.car", "unexpected EOF in a section", 479518),
    (V2 / "sample-v1-with-zero-len-section.car", "zero-length section", 479907),
    (V2 / "sample-v1-with-zero-len-section2.car", "zero-length section", 20819),
    (V2 / "sample-v2-corrupt-data-and-index.car", "overflows 64 bits", 11),
]


def read_all(data: bytes, **opts) -> tuple[CarHeader, list[CarBlock]]:
    r = CarReader(io.BytesIO(data), **opts)
    blocks = list(r)
    return r.header, blocks


def parse_in_pieces(data: bytes, step: int, **opts) -> list[CarHeader | CarBlock]:
    p = CarParser(**opts)
    events: list[CarHeader | CarBlock] = []
    for i in range(0, len(data), step):
        events += p.feed(data[i : i + step])
    p.finish()
    return events


def car_bytes(roots: list[bytes], blocks: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(write_car(roots, blocks))


def raw_header(obj_cbor: bytes) -> bytes:
    return encode_varint(len(obj_cbor)) + obj_cbor


@pytest.mark.parametrize("path,version,roots,count", GOOD, ids=[g[0].name for g in GOOD])
def test_good_fixtures(path: Path, version: int, roots: list[str], count: int) -> None:
    header, blocks = read_all(path.read_bytes())
    assert header.version == version
    assert header.roots == [cid_from_str(r) for r in roots]
    assert len(blocks) == count


@pytest.mark.parametrize("path,words,offset", BAD, ids=[b[0].name for b in BAD])
def test_bad_fixtures(path: Path, words: str, offset: int) -> None:
    with pytest.raises(CarError) as ei:
        read_all(path.read_bytes())
    assert words in str(ei.value)
    assert ei.value.offset == offset
    assert f"offset {offset}" in str(ei.value)


def test_zero_length_section_as_eof() -> None:
    for name, count in (("sample-v1-with-zero-len-section.car", 1049), ("sample-v1-with-zero-len-section2.car", 20)):
        _h, blocks = read_all((V2 / name).read_bytes(), zero_length_as_eof=True)
        assert len(blocks) == count


def test_carv1_basic_offsets_match_spec_json() -> None:
    doc = json.loads((SPEC / "carv1-basic/carv1-basic.json").read_text())
    _h, blocks = read_all((SPEC / "carv1-basic/carv1-basic.car").read_bytes())
    assert [b.offset for b in blocks] == [e["offset"] for e in doc["blocks"]]
    assert [len(b.data) for b in blocks] == [e["blockLength"] for e in doc["blocks"]]
    assert [b.cid for b in blocks] == [cid_from_str(e["cid"]["/"]) for e in doc["blocks"]]


def test_carv2_header_fields() -> None:
    h, _ = read_all((V2 / "sample-wrapped-v2.car").read_bytes())
    assert (h.data_offset, h.data_size, h.index_offset) == (51, 479907, 479958)


def test_writer_header_is_canonical_dag_cbor() -> None:
    data = (SPEC / "carv1-basic/carv1-basic.car").read_bytes()
    h, _ = read_all(data)
    enc = encode_header(h.roots)
    assert data.startswith(enc)


def test_writer_roundtrip_of_fixture_is_byte_identical() -> None:
    data = (V2 / "sample-v1.car").read_bytes()
    h, blocks = read_all(data)
    assert car_bytes(h.roots, [(b.cid, b.data) for b in blocks]) == data


def test_unwrapped_v2_equals_v1() -> None:
    h1, b1 = read_all((V2 / "sample-v1.car").read_bytes())
    h2, b2 = read_all((V2 / "sample-wrapped-v2.car").read_bytes())
    assert h1.roots == h2.roots and [(b.cid, b.data) for b in b1] == [(b.cid, b.data) for b in b2]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 51, 4096, 1 << 20])
def test_any_split_gives_the_same_events(step: int) -> None:
    data = (V2 / "sample-unixfs-v2.car").read_bytes() if step < 51 else (V2 / "sample-wrapped-v2.car").read_bytes()
    whole = parse_in_pieces(data, len(data))
    assert parse_in_pieces(data, step) == whole


def test_truncation_at_every_offset_is_a_clean_error() -> None:
    for path in (SPEC / "carv1-basic/carv1-basic.car", SPEC / "carv2-basic/carv2-basic.car", V2 / "sample-unixfs-v2.car"):
        data = path.read_bytes()
        h, blocks = read_all(data)
        ends = {b.offset for b in blocks}  # a v1 cut exactly between sections is a shorter valid CAR
        payload_end = h.data_offset + h.data_size if h.version == 2 else len(data)
        for cut in range(len(data)):
            if h.version == 2 and cut >= payload_end:
                # the index (after the payload) is not read; cutting it is harmless
                assert len(read_all(data[:cut])[1]) == len(blocks)
                continue
            if h.version == 1 and cut in ends:
                continue
            with pytest.raises(CarError) as ei:
                read_all(data[:cut])
            assert 0 <= ei.value.offset <= cut


def test_cut_between_sections_of_v1_reads_fewer_blocks() -> None:
    data = (SPEC / "carv1-basic/carv1-basic.car").read_bytes()
    _h, blocks = read_all(data)
    _h2, some = read_all(data[: blocks[3].offset])
    assert [b.cid for b in some] == [b.cid for b in blocks[:3]]


# ---------------------------------------------------------------- headers
def _header_case(cbor_hex: str) -> bytes:
    return raw_header(bytes.fromhex(cbor_hex))


ROOT = cid_for(b"root")
ROOT_TAG = "d82a5825" + "00" + ROOT.hex()


@pytest.mark.parametrize(
    "data,words",
    [
        (_header_case("f6"), "not a map"),  # null
        (_header_case("820180"), "not a map"),  # [1, []]
        (_header_case("a265726f6f7473806776657273696f6e6131"), "version is not an integer"),
        (_header_case("a165726f6f747380"), "no version"),
        (_header_case("a16776657273696f6e01"), "roots is missing"),
        (_header_case("a265726f6f7473f66776657273696f6e01"), "roots is missing"),  # roots: null
        (_header_case("a265726f6f7473a06776657273696f6e01"), "roots is not a list"),
        (_header_case("a364626c697001" + "65726f6f747380" + "6776657273696f6e01"), "unexpected key 'blip'"),
        (_header_case("a265726f6f7473814100" + "6776657273696f6e01"), "root is not a CID"),
        (_header_case("a16776657273696f6e02") + b"\x00" * 10, "unexpected EOF in the CARv2 header"),
        (_header_case("ff"), "not DAG-CBOR"),
        (b"\x00", "zero-length CAR header"),
        (b"", "empty stream"),
        (b"\x80", "unexpected EOF in the CAR header"),
        (b"\xff" * 12, "longer than 9 bytes"),
        (b"\x80\x00", "non-minimal varint"),
    ],
)
def test_bad_headers(data: bytes, words: str) -> None:
    with pytest.raises(CarError) as ei:
        read_all(data)
    assert words in str(ei.value)


def test_empty_roots_are_accepted() -> None:
    blk = b"hello"
    data = car_bytes([], [(cid_for(blk), blk)])
    h, blocks = read_all(data)
    assert h.roots == [] and len(blocks) == 1


def test_header_limit_is_configurable() -> None:
    data = car_bytes([ROOT], [])
    with pytest.raises(CarError, match="exceeds the 10-byte limit"):
        read_all(data, max_header_size=10)


# ---------------------------------------------------------------- sections
def _car_with_section(section: bytes) -> bytes:
    return encode_header([ROOT]) + section


def test_digest_mismatch_is_rejected_with_offset() -> None:
    good = b"good data"
    cid = cid_for(good)
    data = _car_with_section(encode_section(cid, b"evil data"))
    with pytest.raises(CarError, match="does not match its CID") as ei:
        read_all(data)
    assert ei.value.offset == len(encode_header([ROOT]))


def test_verification_can_be_switched_off() -> None:
    cid = cid_for(b"one")
    _h, blocks = read_all(_car_with_section(encode_section(cid, b"two")), verify=False)
    assert blocks[0].data == b"two"


@pytest.mark.parametrize("mh", [BLAKE2B_256, SHA2_512, IDENTITY])
def test_other_hash_functions_verify(mh: int) -> None:
    blk = b"small"
    cid = cid_for(blk, codec=RAW, mh_code=mh)
    _h, blocks = read_all(_car_with_section(encode_section(cid, blk)))
    assert blocks[0].data == blk
    with pytest.raises(CarError, match="digest differs"):
        read_all(_car_with_section(encode_section(cid, b"smalL")))


def test_unsupported_multihash_is_rejected() -> None:
    blk = b"x"
    cid = make_cid(1, RAW, bytes([0x16, 32]) + hashlib.sha3_256(blk).digest())  # sha3-256
    with pytest.raises(CarError, match="unsupported multihash function 0x16"):
        read_all(_car_with_section(encode_section(cid, blk)))


def test_unparsable_cid_and_short_section() -> None:
    with pytest.raises(CarError, match="invalid CID in section"):
        read_all(_car_with_section(encode_varint(5) + b"\x02\x55\x12\x20\x00"))
    cid = cid_for(b"abc")
    with pytest.raises(CarError, match="invalid CID in section"):
        read_all(_car_with_section(encode_varint(10) + cid[:10]))


def test_section_limit_and_block_limit() -> None:
    with pytest.raises(CarError, match="exceeds the 8388608-byte limit"):
        read_all(_car_with_section(encode_varint(MAX_SECTION_SIZE + 1)))
    blk = b"y" * 1000
    data = _car_with_section(encode_section(cid_for(blk), blk))
    with pytest.raises(CarError, match="of 1000 bytes exceeds the 999-byte limit"):
        read_all(data, max_block_size=999)
    assert len(read_all(data, max_block_size=1000)[1]) == 1
    p = CarParser(max_block_size=100)
    p.feed(encode_header([ROOT]))
    with pytest.raises(CarError, match="holds a block over the 100-byte limit"):
        p.feed(encode_varint(5000))  # refused from the length alone, before the section arrives


def test_no_allocation_before_the_limit_check() -> None:
    p = CarParser()
    p.feed(encode_header([ROOT]))
    with pytest.raises(CarError):
        p.feed(encode_varint(1 << 40))
    assert p.offset < 100
    with pytest.raises(CarError):  # a failed parser stays failed
        p.feed(b"\x00")


# ---------------------------------------------------------------- CARv2
def _v2(payload: bytes, *, data_offset: int = 51, data_size: int | None = None, index_offset: int = 0, pad: bytes = b"") -> bytes:
    size = len(payload) if data_size is None else data_size
    hdr = b"\x00" * 16 + struct.pack("<QQQ", data_offset, size, index_offset)
    return PRAGMA_V2 + hdr + pad + payload


def test_v2_with_padding_before_the_payload_and_trailing_index_bytes() -> None:
    blk = b"payload block"
    inner = car_bytes([cid_for(blk)], [(cid_for(blk), blk)])
    data = _v2(inner, data_offset=51 + 5, pad=b"\xff" * 5, index_offset=51 + 5 + len(inner)) + b"garbage index"
    h, blocks = read_all(data)
    assert h.version == 2 and h.data_offset == 56 and [b.data for b in blocks] == [blk]


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"data_offset": 50}, "inside the header"),
        ({"data_size": 0}, "data size is 0"),
        ({"index_offset": 60}, "index offset 60 is inside the data payload"),
        ({"data_size": 20}, "runs past the end of the CARv2 data payload"),
    ],
)
def test_v2_bad_headers(kw: dict, words: str) -> None:
    blk = b"payload block"
    inner = car_bytes([cid_for(blk)], [(cid_for(blk), blk)])
    with pytest.raises(CarError, match=words):
        read_all(_v2(inner, **kw))


def test_v2_section_running_past_payload_end() -> None:
    blk = b"payload block"
    inner = car_bytes([cid_for(blk)], [(cid_for(blk), blk)])
    with pytest.raises(CarError, match="section of .* runs past the end"):
        read_all(_v2(inner, data_size=len(inner) - 1))


def test_v2_payload_must_be_v1_and_complete() -> None:
    inner_v2 = raw_header(bytes.fromhex("a265726f6f7473806776657273696f6e02"))
    with pytest.raises(CarError, match="data payload is a CAR version 2"):
        read_all(_v2(inner_v2))
    inner = car_bytes([ROOT], [])
    with pytest.raises(CarError, match="payload ends at byte"):
        read_all(_v2(inner, data_size=len(inner) + 50))
    with pytest.raises(CarError, match="payload starts at byte 1000"):
        read_all(_v2(inner, data_offset=1000))


# ---------------------------------------------------------------- writer properties
block_lists = st.lists(
    st.tuples(st.binary(max_size=300), st.sampled_from([RAW, DAG_CBOR, DAG_PB]), st.sampled_from([0x12, BLAKE2B_256])),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(blocks=block_lists, nroots=st.integers(0, 3), step=st.integers(1, 200))
def test_writer_reader_roundtrip(blocks: list[tuple[bytes, int, int]], nroots: int, step: int) -> None:
    pairs = [(cid_for(d, codec=c, mh_code=m), d) for d, c, m in blocks]
    roots = [p[0] for p in pairs[:nroots]] or [ROOT] * nroots
    data = car_bytes(roots, pairs)
    events = parse_in_pieces(data, step)
    assert isinstance(events[0], CarHeader) and events[0].roots == roots
    unique: dict[bytes, bytes] = {}
    for cid, d in pairs:
        unique.setdefault(cid, d)
    assert [(e.cid, e.data) for e in events[1:]] == list(unique.items())


def test_writer_skips_duplicates_and_passes_large_blocks_through() -> None:
    big = b"z" * 200_000
    small = b"s"
    pairs = [(cid_for(big), big), (cid_for(small), small), (cid_for(big), big)]
    chunks = list(write_car([cid_for(big)], pairs))
    assert any(c is big for c in chunks)
    _h, blocks = read_all(b"".join(chunks))
    assert [b.data for b in blocks] == [big, small]


def test_writer_rejects_bad_root() -> None:
    with pytest.raises(ValueError):
        encode_header([b"\x01\x02"])


# ---------------------------------------------------------------- robustness
_SMALL_CARS = [
    (SPEC / "carv1-basic/carv1-basic.car").read_bytes(),
    (SPEC / "carv2-basic/carv2-basic.car").read_bytes(),
    (V2 / "sample-unixfs-v2.car").read_bytes(),
]


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(_SMALL_CARS) - 1),
    edits=st.lists(st.tuples(st.integers(0, 800), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"])), min_size=1, max_size=4),
    step=st.integers(1, 300),
)
def test_mutated_cars_fail_only_with_car_error(which: int, edits: list[tuple[int, int, str]], step: int) -> None:
    data = bytearray(_SMALL_CARS[which])
    for pos, value, kind in edits:
        pos %= len(data) + 1
        if kind == "insert":
            data[pos:pos] = bytes([value])
        elif pos < len(data):
            if kind == "set":
                data[pos] = value
            else:
                del data[pos]
    try:
        events = parse_in_pieces(bytes(data), step)
    except CarError as exc:
        assert 0 <= exc.offset <= len(data)
        return
    assert isinstance(events[0], CarHeader)
    for ev in events[1:]:  # whatever parsed was verified against its CID
        assert isinstance(ev, CarBlock)
        verify(ev.cid, ev.data)
