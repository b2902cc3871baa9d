"""Every decoder answers any input with a value or its documented error type.

Inputs are the real fixture CARs of ``tests/fixtures`` mutated by
hypothesis (byte flips, cuts, insertions, splices) plus plain random bytes.
Any other exception fails the test; pytest-timeout catches a hang.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitswap.message import MessageError, decode_message
from blockstore.car import CarError, CarParser, CarReader
from blockstore.dagpb import DagPBError, decode_pbnode
from blockstore.hamt import HamtError, bitfield_decode
from blockstore.store import BlockTooLarge, HashMismatch
from blockstore.unixfs import UnixFSError, decode_unixfs
from cluster.crdt.delta import DeltaError, decode_delta
from cluster.pin import PinError, Pin
from node.gateway.params import choose_response, parse_accept, parse_content_path, parse_entity_bytes, parse_range
from node.gateway.errors import GatewayError
from node.kuborpc.options import Options, KuboRpcError
from node.uploads.multipart import MultipartError, MultipartParser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEEDS = [p.read_bytes() for p in sorted(FIXTURES.rglob("*.car")) if p.stat().st_size < 64_000][:30]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _blocks_of(car: bytes) -> list[bytes]:
    """The block payloads of a valid fixture CAR (dag-pb, UnixFS and raw seeds)."""
    try:
        return [b.data for b in CarReader(io.BytesIO(car))]
    except (CarError, HashMismatch):
        return []


BLOCK_SEEDS = [blk for car in SEEDS for blk in _blocks_of(car)][:200] or [b""]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few random edits: flip, cut, insert, duplicate a span."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=16))
        elif op == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
    return bytes(data)


def _inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated(seeds), st.binary(max_size=512))


@pytest.mark.skipif(not SEEDS, reason="tests/fixtures holds no fixture CAR")
@FAST
@given(_inputs(SEEDS), st.integers(1, 300))
def test_car_reader_and_parser(data: bytes, chunk: int) -> None:
    try:
        for _ in CarReader(io.BytesIO(data)):
            pass
    except (CarError, HashMismatch, BlockTooLarge):
        pass
    parser = CarParser()
    try:
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
        parser.finish()
    except (CarError, HashMismatch, BlockTooLarge):
        pass


@FAST
@given(_inputs(BLOCK_SEEDS))
def test_dagpb_unixfs_and_hamt_bitfield(data: bytes) -> None:
    try:
        decode_pbnode(data)
    except DagPBError:
        pass
    try:
        decode_unixfs(data)
    except UnixFSError:
        pass
    try:
        bitfield_decode(data[:64])
    except HamtError:
        pass


@FAST
@given(st.binary(max_size=2048))
def test_bitswap_delta_and_pin_decoders(data: bytes) -> None:
    for decode, error in ((decode_message, MessageError), (decode_delta, DeltaError), (Pin.from_cbor, PinError)):
        try:
            decode(data)
        except error:
            pass


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)
PIN_KEYS = ["cid", "name", "mode", "type", "allocations", "max_depth", "replication_factor_min",
            "replication_factor_max", "metadata", "expire_at", "user_allocations", "shard_size", "origins"]


@FAST
@given(st.dictionaries(st.sampled_from(PIN_KEYS) | st.text(max_size=8), JSONISH, max_size=8))
def test_pin_from_json(obj: dict) -> None:
    try:
        Pin.from_json(obj)
    except PinError:
        pass
    try:
        Pin.from_json(json.loads(json.dumps(obj)))
    except PinError:
        pass


MULTIPART_SEED = (
    b"--fz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n"
    b"Content-Type: application/octet-stream\r\n\r\nhello\r\n--fz--\r\n"
)


@FAST
@given(_inputs([MULTIPART_SEED]), st.integers(1, 64))
def test_multipart_parser(data: bytes, chunk: int) -> None:
    parser = MultipartParser(b"fz")
    try:
        for i in range(0, len(data), chunk):
            for _ in parser.feed(data[i : i + chunk]):
                pass
        parser.close()
    except MultipartError:
        pass


@FAST
@given(st.dictionaries(st.sampled_from(["arg", "recursive", "progress", "cid-base", "n", "x"]), st.text(max_size=30)))
def test_rpc_options(query: dict[str, str]) -> None:
    opts = Options(query)
    for call in (
        lambda: opts.boolean("recursive", True),
        lambda: opts.optional_bool("progress"),
        lambda: opts.integer("n", None, minimum=0),
        lambda: opts.string("cid-base", None),
        lambda: opts.choice("x", ("a", "b"), "a"),
        lambda: opts.one_arg(),
    ):
        try:
            call()
        except KuboRpcError:
            pass


@FAST
@given(st.text(max_size=200), st.text(max_size=80), st.dictionaries(st.sampled_from(["format", "dag-scope", "car-version", "car-order", "car-dups", "entity-bytes"]), st.text(max_size=20)), st.integers(0, 1 << 40))
def test_gateway_params(path: str, header: str, query: dict[str, str], size: int) -> None:
    for call in (
        lambda: parse_content_path(path),
        lambda: parse_content_path("/ipfs/" + path),
        lambda: parse_accept(header),
        lambda: choose_response(query, header),
        lambda: parse_entity_bytes(header),
        lambda: parse_range(header, size),
        lambda: parse_range("bytes=" + header, size),
    ):
        try:
            call()
        except GatewayError:
            pass
