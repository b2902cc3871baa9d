"""GlobalPinInfo written as JSON text from stored bytes (``GET /pins``) against the reference path.

The reference is what the listing did before: ``Pin.from_cbor`` of the stored pin,
a decorated ``PinInfo`` per peer, :func:`global_pin_info` and ``json.dumps``. The
fast path (:func:`cluster.pin.pin_fields`, :class:`cluster.status.PeerEntries`,
:func:`cluster.status.gpi_line`) must write the same bytes for any pin and any
statuses, and accept exactly the stored pins ``Pin.from_cbor`` accepts.
"""

from __future__ import annotations

import json
from typing import Any

import libipld
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.cid import DAG_CBOR, IDENTITY, RAW, SHA2_256, CidError, cid_for, make_cid, make_multihash, parse_cid
from cluster.pin import Pin, PinError, fast_cid_shape, pin_as_fields, pin_fields
from cluster.status import STATUSES, GpiText, PeerEntries, PinInfo, StatusError, decode_status, encode_status, global_pin_info, gpi_line

text = st.text(max_size=12)  # any unicode: escaping must match json.dumps' ensure_ascii
cids = st.sampled_from(
    [
        cid_for(b"a"),
        cid_for(b"b", DAG_CBOR),
        make_cid(1, RAW, make_multihash(IDENTITY, b"inline")),
        make_multihash(SHA2_256, bytes(32)),  # CIDv0
        make_cid(1, 0x300001, make_multihash(SHA2_256, bytes(32))),  # a codec that is not a one-byte varint
    ]
)
replication = st.sampled_from([(-1, -1), (1, 1), (1, 3), (2, 5)])


@st.composite
def pins(draw: Any) -> Pin:
    rmin, rmax = draw(replication)
    return Pin(
        cid=draw(cids),
        name=draw(text),
        type=draw(st.sampled_from(["pin", "pin", "meta-pin", "shard-pin"])),
        max_depth=draw(st.sampled_from([-1, -1, 0, 3])),
        replication_factor_min=rmin,
        replication_factor_max=rmax,
        allocations=tuple(draw(st.lists(text, max_size=3))),
        metadata=draw(st.dictionaries(text, text, max_size=3)),
        origins=tuple(draw(st.lists(text, max_size=2))),
        reference=draw(st.none() | cids),
        timestamp=draw(st.integers(0, 2**62)),
        expire_at=draw(st.sampled_from([0, 0, 1_700_000_000_000_000_000])),
    )


rows = st.tuples(
    st.sampled_from(sorted(STATUSES)),
    st.integers(-(2**62), 2**62) | st.just(0),
    text,
    st.integers(0, 1000),
    st.booleans(),
)
peers = st.tuples(text, text, text, st.lists(text, max_size=2))  # peer ID, name, IPFS ID ("" = none), addresses


#: one writer for every example, as one listing writes many pins
_LISTING = GpiText()


@settings(max_examples=200, deadline=None)
@given(pins(), st.lists(st.tuples(peers, rows), max_size=4, unique_by=lambda e: e[0][0]), st.integers(0, 2**62))
def test_fast_json_is_the_reference_json_byte_for_byte(pin: Pin, entries: list[Any], now: int) -> None:
    stored = pin.to_cbor()
    fields = pin_fields(stored)
    views = [(PeerEntries(peer, name, ipfs_id, addrs, now), row) for (peer, name, ipfs_id, addrs), row in entries]
    reference_infos = [
        PinInfo(pin.cid, peer, status=r[0], timestamp=r[1], error=r[2], attempt_count=r[3], priority_pin=r[4]).with_identity(
            name, ipfs_id, tuple(addrs)
        )
        for (peer, name, ipfs_id, addrs), r in entries
    ]
    reference = global_pin_info(pin.cid, Pin.from_cbor(stored), reference_infos)
    line = gpi_line(pin.cid, fields, [v.json(row) for v, row in views])
    assert line == json.dumps(reference, separators=(",", ":")) + "\n"
    assert line.isascii()
    # twice (the second time from the per-page memo) the same, and from a writer that
    # already wrote other pins (its memo of allocation lists and created times)
    assert gpi_line(pin.cid, fields, [v.json(row) for v, row in views]) == line
    assert _LISTING.line(pin.cid, fields, [v.json(row) for v, row in views]) == line
    assert json.loads(line) == reference


def _mutations() -> Any:
    """Stored pin maps as a lying peer could write them: a valid pin's map with fields changed."""
    junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), text, st.binary(max_size=40), st.lists(st.one_of(text, st.integers(-(2**63), 2**63 - 1))), st.dictionaries(text, st.one_of(text, st.integers(-3, 3)), max_size=2))
    names = st.sampled_from(["cid", "name", "allocations", "origins", "metadata", "timestamp", "rmin", "rmax", "type", "max_depth", "reference", "bogus"])
    return st.tuples(pins(), st.lists(st.tuples(names, st.one_of(junk, st.just(None))), max_size=3), st.booleans())


@settings(max_examples=300, deadline=None)
@given(_mutations())
def test_pin_fields_accepts_exactly_what_pin_from_cbor_accepts(case: Any) -> None:
    pin, changes, drop = case
    node = libipld.decode_dag_cbor(pin.to_cbor())
    for key, value in changes:
        if drop and value is None:
            node.pop(key, None)
        else:
            node[key] = value
    stored = libipld.encode_dag_cbor(node)
    try:
        reference = Pin.from_cbor(stored)
    except PinError as exc:
        with pytest.raises(PinError) as got:
            pin_fields(stored)
        assert str(got.value) == str(exc)
        return
    fields = pin_fields(stored)
    want = pin_as_fields(reference)
    assert {k: fields[k] if k in fields else _DEFAULTS[k] for k in want} == want


_DEFAULTS: dict[str, Any] = {"name": "", "allocations": [], "origins": [], "metadata": {}, "timestamp": 0}


@settings(max_examples=1000, deadline=None)
@given(st.binary(min_size=0, max_size=40) | st.builds(lambda a, b: bytes([1, a]) + b, st.integers(0, 255), st.binary(max_size=40)))
def test_fast_cid_shape_only_says_yes_to_cids_parse_cid_accepts(data: bytes) -> None:
    if fast_cid_shape(data):
        parse_cid(data)  # no CidError


def test_fast_cid_shape_knows_the_common_cids() -> None:
    assert fast_cid_shape(cid_for(b"x")) and fast_cid_shape(make_multihash(SHA2_256, bytes(32)))
    assert fast_cid_shape(make_cid(1, RAW, make_multihash(IDENTITY, b"inline")))
    assert not fast_cid_shape(make_cid(1, RAW, make_multihash(0x13, bytes(32))))  # sha2-512 with 32 bytes: parse it
    with pytest.raises(CidError):
        parse_cid(make_cid(1, RAW, make_multihash(0x13, bytes(32))))


@settings(deadline=None)
@given(cids, text, rows)
def test_status_rows_round_trip_through_the_rpc_encoding(cid: bytes, peer: str, row: Any) -> None:
    assert decode_status(encode_status(cid, peer, row)) == (cid, peer, row)
    info = PinInfo(cid, peer, status=row[0], timestamp=row[1], error=row[2], attempt_count=row[3], priority_pin=row[4])
    assert info.encode() == encode_status(cid, peer, row) and PinInfo.decode(info.encode()) == info


@pytest.mark.parametrize("ts", [2**63, -(2**63) - 1, 2**64 - 1])
def test_a_timestamp_out_of_int64_is_refused(ts: int) -> None:
    """A lying peer's timestamp that no RFC3339 time can show fails its stream, not the listing."""
    with pytest.raises(StatusError, match="timestamp"):
        decode_status(libipld.encode_dag_cbor({"c": cid_for(b"a"), "p": "x", "s": 16, "t": ts}))
