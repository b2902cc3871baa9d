"""The Pin object: DAG-CBOR and REST JSON round trips, validation, index terms."""

from __future__ import annotations

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.cid import DAG_CBOR, cid_for, cid_to_str
from cluster.pin import (
    DIRECT,
    RECURSIVE,
    ZERO_TIME,
    Pin,
    PinError,
    meta_term,
    name_term,
    ns_to_rfc3339,
    pin_index_terms,
    rfc3339_to_ns,
)

CID = cid_for(b"content")
REF = cid_for(b"ref", DAG_CBOR)

text = st.text(max_size=12)
pins = st.builds(
    Pin,
    cid=st.just(CID),
    name=text,
    type=st.sampled_from(["pin", "meta-pin", "clusterdag-pin", "shard-pin"]),
    max_depth=st.integers(-1, 10),
    replication_factor_min=st.just(-1),
    replication_factor_max=st.just(-1),
    shard_size=st.integers(0, 2**40),
    user_allocations=st.lists(text, max_size=3).map(tuple),
    allocations=st.lists(text, max_size=3).map(tuple),
    expire_at=st.integers(0, 2**62),
    metadata=st.dictionaries(text, text, max_size=3),
    origins=st.lists(text, max_size=2).map(tuple),
    reference=st.none() | st.just(REF),
    timestamp=st.integers(0, 2**62),
    pin_update=st.none() | st.just(REF),
)


@settings(max_examples=200, deadline=None)
@given(pins)
def test_cbor_round_trip_and_determinism(pin: Pin) -> None:
    data = pin.to_cbor()
    assert Pin.from_cbor(data) == pin
    assert Pin.from_cbor(data).to_cbor() == data
    assert dag_cbor.encode(dag_cbor.decode(data)) == data  # canonical DAG-CBOR per the reference codec


@settings(max_examples=200, deadline=None)
@given(pins)
def test_json_round_trip(pin: Pin) -> None:
    assert Pin.from_json(pin.to_json()) == pin


def test_json_shape_matches_ipfs_cluster() -> None:
    pin = Pin(CID, name="n", max_depth=0, replication_factor_min=1, replication_factor_max=2, reference=REF)
    j = pin.to_json()
    assert j["cid"] == cid_to_str(CID) and j["reference"] == cid_to_str(REF)
    assert j["mode"] == DIRECT and j["pin_update"] is None and j["user_allocations"] is None
    assert j["expire_at"] == ZERO_TIME and j["timestamp"] == ZERO_TIME
    assert set(j) == {
        "replication_factor_min", "replication_factor_max", "name", "mode", "shard_size", "user_allocations",
        "expire_at", "metadata", "pin_update", "origins", "cid", "type", "allocations", "max_depth",
        "reference", "timestamp",
    }
    assert Pin(CID).mode == RECURSIVE


def test_json_accepts_legacy_cid_objects_and_mode() -> None:
    pin = Pin.from_json({"cid": {"/": cid_to_str(CID)}, "mode": "direct"})
    assert pin.cid == CID and pin.max_depth == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cid": b"\x05x"}, "cid is not a valid CID"),
        ({"type": "weird"}, "unknown pin type"),
        ({"max_depth": -2}, "max_depth"),
        ({"replication_factor_min": 2, "replication_factor_max": 1}, "invalid replication"),
        ({"replication_factor_min": -1, "replication_factor_max": 3}, "invalid replication"),
        ({"replication_factor_min": 0, "replication_factor_max": 0}, "invalid replication"),
        ({"metadata": {"k": 1}}, "metadata"),
    ],
)
def test_invalid_pins_rejected(kwargs: dict, message: str) -> None:
    args = {"cid": CID, **kwargs}
    with pytest.raises(PinError, match=message):
        Pin(**args)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not valid DAG-CBOR"),
        (dag_cbor.encode([1]), "must be a map"),
        (dag_cbor.encode({"name": "x"}), "no cid"),
        (dag_cbor.encode({"cid": CID, "bogus": 1}), "unknown field"),
        (dag_cbor.encode({"cid": CID, "max_depth": "1"}), "must be an integer"),
        (dag_cbor.encode({"cid": CID, "allocations": [1]}), "list of strings"),
    ],
)
def test_malformed_cbor_rejected(data: bytes, message: str) -> None:
    with pytest.raises(PinError, match=message):
        Pin.from_cbor(data)


def test_times() -> None:
    assert ns_to_rfc3339(0) == ZERO_TIME and rfc3339_to_ns(ZERO_TIME) == 0
    assert ns_to_rfc3339(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert rfc3339_to_ns("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000
    for bad in ("yesterday", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z"):
        with pytest.raises(PinError, match="time"):
            rfc3339_to_ns(bad)


def test_index_terms() -> None:
    pin = Pin(CID, name="photos", metadata={"a": "b", "c": "d"})
    assert sorted(pin_index_terms(CID, pin.to_cbor())) == sorted(
        [name_term("photos"), meta_term("a", "b"), meta_term("c", "d")]
    )
    assert meta_term("a=b", "c") != meta_term("a", "b=c")


def test_with_copies_like_replace_and_checks_what_it_must() -> None:
    """``Pin.with_`` skips the checks only when no checked field changes: the copy equals
    ``dataclasses.replace``'s; a bad checked field or an unknown field is still refused."""
    import dataclasses

    from blockstore.cid import cid_for
    from cluster.pin import PinError

    pin = Pin(cid_for(b"w"), name="a", replication_factor_min=1, replication_factor_max=2, metadata={"k": "v"})
    for changes in ({"allocations": ("p1", "p2"), "timestamp": 5}, {"name": "b"}, {"max_depth": 0}, {}):
        copy = pin.with_(**changes)
        assert copy == dataclasses.replace(pin, **changes) and copy is not pin
        assert Pin.from_cbor(copy.to_cbor()) == copy
    assert pin.allocations == () and pin.name == "a"  # the original is untouched
    with pytest.raises(PinError):
        pin.with_(replication_factor_min=3)
    with pytest.raises(PinError):
        pin.with_(cid=b"\x01\x02")
    with pytest.raises(TypeError):
        pin.with_(allocation=("p1",))


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=20),
    meta=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    origin=st.sampled_from(["", "name", "metadata", "\x64name"]),
)
def test_index_terms_skip_no_pin_that_has_some(name: str, meta: dict[str, str], origin: str) -> None:
    """The byte test that skips decoding never hides a name or metadata term (values that merely
    contain the key bytes are decoded as before)."""
    import libipld

    pin = Pin(cid_for(b"terms"), name=name, metadata=meta, origins=(origin,) if origin else ())
    value = pin.to_cbor()
    node = libipld.decode_dag_cbor(value)
    expected = ([name_term(name)] if node.get("name") else []) + [meta_term(k, v) for k, v in node.get("metadata", {}).items()]
    assert sorted(pin_index_terms(pin.cid, value)) == sorted(expected)
