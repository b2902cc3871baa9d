"""cluster/status.py: TrackerStatus names and filters, PinInfo encoding, GlobalPinInfo and pinning-service statuses."""

from __future__ import annotations

import libipld
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockstore.cid import cid_for, cid_to_str
from cluster.pin import ZERO_TIME, Pin
from cluster.status import (
    STATUSES,
    PinInfo,
    StatusError,
    global_pin_info,
    parse_filter,
    pinsvc_status,
    status_bit,
    status_name,
)

CID = cid_for(b"status test")


def test_status_bits_are_ipfs_clusters_plus_pin_failed() -> None:
    assert STATUSES["pinned"] == 16 and STATUSES["remote"] == 256 and STATUSES["unexpectedly_unpinned"] == 4096
    assert STATUSES["pin_failed"] == 8192
    bits = [b for b in STATUSES.values() if b]
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)  # distinct single bits
    for name, bit in STATUSES.items():
        assert status_name(bit) == name and status_bit(name) == bit
    assert status_name(3) == "undefined" and status_bit("nonsense") == 0


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("", 0),
        ("pinned", 16),
        ("pinned,pin_error", 20),
        ("error", 2 | 4 | 8),
        ("queued", 512 | 1024),
        ("pinned, bogus", 16),  # unknown names are ignored, as upstream
        ("pin_failed,error", 8192 | 14),
    ],
)
def test_filters(text: str, mask: int) -> None:
    assert parse_filter(text) == mask


@pytest.mark.parametrize("text", ["bogus", "pinnedd,nope", "undefined"])
def test_a_filter_that_matches_nothing_is_refused_by_name(text: str) -> None:
    with pytest.raises(StatusError, match="invalid filter value"):
        parse_filter(text)


@given(
    st.sampled_from(sorted(STATUSES)),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.text(max_size=50),
    st.integers(min_value=0, max_value=1000),
    st.booleans(),
)
def test_pininfo_round_trips_through_the_rpc_encoding(status: str, ts: int, error: str, attempts: int, prio: bool) -> None:
    info = PinInfo(CID, "12D3KooWPeer", status=status, timestamp=ts, error=error, attempt_count=attempts, priority_pin=prio)
    assert PinInfo.decode(info.encode()) == info


@pytest.mark.parametrize(
    "obj",
    [
        [1, 2],
        {"p": "x", "s": 16},
        {"c": b"\x01\x02", "p": "x", "s": 16},
        {"c": CID, "p": 5, "s": 16},
        {"c": CID, "p": "x", "s": 3},
        {"c": CID, "p": "x", "s": 16, "t": "late"},
        {"c": CID, "p": "x", "s": 16, "a": "many"},
    ],
)
def test_malformed_pininfo_is_refused(obj: object) -> None:
    with pytest.raises(StatusError):
        PinInfo.decode(libipld.encode_dag_cbor(obj))
    with pytest.raises(StatusError):
        PinInfo.decode(b"\xff\x00garbage")


def test_global_pin_info_has_ipfs_clusters_shape() -> None:
    pin = Pin(CID, name="n", allocations=("A", "B"), metadata={"k": "v"}, origins=("/ip4/1.2.3.4/tcp/1/p2p/Q",), timestamp=1_700_000_000_123_000_000)
    infos = [
        PinInfo(CID, "A", peername="a", status="pinned", timestamp=1_700_000_001_000_000_000, ipfs_peer_id="QmA", ipfs_peer_addresses=("/ip4/1.1.1.1/tcp/4001",)),
        PinInfo(CID, "B", peername="b", status="pin_error", error="boom", attempt_count=3),
    ]
    gpi = global_pin_info(CID, pin, infos)
    assert gpi["cid"] == cid_to_str(CID) and gpi["name"] == "n" and gpi["allocations"] == ["A", "B"]
    assert gpi["created"] == "2023-11-14T22:13:20.123Z" and gpi["metadata"] == {"k": "v"}
    assert gpi["peer_map"]["A"] == {
        "peername": "a",
        "status": "pinned",
        "timestamp": "2023-11-14T22:13:21Z",
        "error": "",
        "attempt_count": 0,
        "priority_pin": False,
        "ipfs_peer_id": "QmA",
        "ipfs_peer_addresses": ["/ip4/1.1.1.1/tcp/4001"],
    }
    assert gpi["peer_map"]["B"]["error"] == "boom" and gpi["peer_map"]["B"]["timestamp"] == ZERO_TIME
    gone = global_pin_info(CID, None, [PinInfo(CID, "A", status="unpinned")])
    assert gone["name"] == "" and gone["allocations"] == [] and gone["created"] == ZERO_TIME


@pytest.mark.parametrize(
    ("statuses", "answer"),
    [
        (["pinned", "pin_error"], "failed"),
        (["pinned", "pin_failed"], "failed"),
        (["pinned", "pin_queued", "pinning"], "queued"),
        (["pinned", "pinning", "remote"], "pinning"),
        (["pinned", "remote"], "pinned"),
        (["remote", "unpinned"], None),
        ([], None),
    ],
)
def test_pinning_service_status(statuses: list[str], answer: str | None) -> None:
    assert pinsvc_status(statuses) == answer


def test_with_identity_is_replace_of_the_identity_fields() -> None:
    """The fast copy keeps every other field (a field added to PinInfo must be copied too)."""
    from dataclasses import fields, replace

    from cluster.status import PinInfo

    values = {f.name: f"v-{f.name}" for f in fields(PinInfo)}
    values.update(cid=b"\x01", timestamp=7, attempt_count=3, priority_pin=True, ipfs_peer_addresses=("/ip4/1.2.3.4",))
    info = PinInfo(**values)
    got = info.with_identity("name", "Qm", ("/ip4/5.6.7.8",))
    assert got == replace(info, peername="name", ipfs_peer_id="Qm", ipfs_peer_addresses=("/ip4/5.6.7.8",))
