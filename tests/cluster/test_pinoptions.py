"""cluster/pinoptions.py: IPFS Cluster's pin options as query parameters, and Go durations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockstore.cid import cid_for, cid_to_str
from cluster.pin import Pin
from cluster.pinoptions import PinOptionsError, check_user_options, parse_duration, pin_from_query

CID = cid_for(b"options")
PEER_A = "12D3KooWAPSB3KLNyFx1rMKSYxA5mw6kGQRb7MtnDSxK4r5nf9SD"  # Ed25519 (identity multihash)
PEER_B = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"  # RSA (sha2-256 multihash)
PEER_C = "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8"  # CIDv1 libp2p-key
NOW = 1_800_000_000 * 10**9
S = 10**9


@pytest.mark.parametrize(
    ("text", "ns"),
    [("1s", S), ("1h30m", 5400 * S), ("500ms", S // 2), ("1.5h", 5400 * S), ("2m3s", 123 * S), ("-5s", -5 * S), ("0", 0), ("10us", 10_000)],
)
def test_go_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "1d", "h", "1h 2m", "--1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(PinOptionsError, match="invalid duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["h", "m", "s", "ms"]))
def test_integer_durations(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == n * {"h": 3600 * S, "m": 60 * S, "s": S, "ms": 10**6}[unit]


def test_every_option() -> None:
    update = cid_for(b"older")
    pin, defaults = pin_from_query(
        CID,
        {
            "name": "n",
            "mode": "direct",
            "replication-min": "2",
            "replication-max": "3",
            "shard-size": "100",
            "user-allocations": f"{PEER_A}, {PEER_B},{PEER_C}",
            "expire-in": "1h",
            "meta-owner": "me",
            "meta-app": "x",
            "origins": f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER_A},/dns4/peer.example/tcp/4001/p2p/{PEER_B}",
            "pin-update": cid_to_str(update),
        },
        now_ns=NOW,
    )
    assert not defaults
    assert (pin.name, pin.max_depth, pin.replication_factor_min, pin.replication_factor_max) == ("n", 0, 2, 3)
    assert pin.user_allocations == (PEER_A, PEER_B, PEER_C) and pin.expire_at == NOW + 3600 * S
    assert pin.metadata == {"owner": "me", "app": "x"} and pin.pin_update == update and pin.timestamp == NOW
    assert pin.origins == (f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER_A}", f"/dns4/peer.example/tcp/4001/p2p/{PEER_B}")


def test_replication_shorthands_and_defaults() -> None:
    assert pin_from_query(CID, {}, now_ns=NOW)[1] is True
    pin, defaults = pin_from_query(CID, {"replication": "2"}, now_ns=NOW)
    assert (pin.replication_factor_min, pin.replication_factor_max, defaults) == (2, 2, False)
    pin, defaults = pin_from_query(CID, {"replication": "-1"}, now_ns=NOW)
    assert (pin.replication_factor_min, defaults) == (-1, False)  # everywhere, asked explicitly
    assert pin_from_query(CID, {"replication": "0"}, now_ns=NOW)[1] is True  # 0 = the cluster default
    pin, _ = pin_from_query(CID, {"replication-max": "3"}, now_ns=NOW)
    assert (pin.replication_factor_min, pin.replication_factor_max) == (1, 3)
    pin, _ = pin_from_query(CID, {"expire-at": "2030-01-01T00:00:00Z"}, now_ns=NOW)
    assert pin.expire_at == 1893456000 * S


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"mode": "sideways"}, "mode"),
        ({"replication": "two"}, "not an integer"),
        ({"replication-min": "3", "replication-max": "2"}, "replication"),
        ({"expire-in": "500ms"}, "at least 1s"),
        ({"expire-in": "soon"}, "invalid duration"),
        ({"expire-at": "yesterday"}, "expire-at"),
        ({"expire-at": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"origins": "/ip4/1.2.3.4/tcp/1"}, "/p2p/"),
        ({"pin-update": "nope"}, "pin-update"),
        ({"shard-size": "-1"}, "shard-size"),
        # garbage that every peer would keep for ever (issue 14 item 6) and numbers out of range (item 10)
        ({"user-allocations": "garbage"}, "user-allocations: 'garbage' is not a peer ID"),
        ({"user-allocations": "Qm"}, "user-allocations"),
        ({"user-allocations": cid_to_str(CID)}, "user-allocations.*not a libp2p-key"),
        ({"user-allocations": f"{PEER_A},{PEER_A}"}, "listed twice"),
        ({"user-allocations": ",".join([PEER_A] * 101)}, "more than 100"),
        ({"origins": "/garbage/p2p/x"}, "origins"),
        ({"origins": f"/p2p/{PEER_A}/ip4/1.2.3.4"}, "does not end with /p2p/"),
        ({"origins": f"/ip4/1.2.3.4/tcp/99999/p2p/{PEER_A}"}, "origins"),
        ({"origins": ",".join(f"/ip4/1.2.3.{i}/tcp/1/p2p/{PEER_A}" for i in range(21))}, "more than 20"),
        ({"expire-in": "9" * 400 + "h"}, "expire-in.*out of range"),
        ({"expire-in": "2562048h"}, "expire-in.*out of range"),
        ({"expire-in": "2562047h"}, "expire_at: out of range"),
        ({"expire-at": "9999-12-31T23:59:59Z"}, "expire_at: out of range"),
        ({"replication": "9" * 400}, "replication: .* out of range"),
        ({"replication": "9" * 5000}, "replication: .* out of range"),
        ({"replication-min": str(2**31)}, "replication-min: 2147483648 is out of range"),
        ({"replication-max": "-2"}, "replication-max: -2 is out of range"),
        ({"shard-size": str(2**63)}, "shard-size"),
        ({"name": "n" * 1021}, "name"),
    ],
)
def test_bad_options_name_the_parameter(query: dict[str, str], problem: str) -> None:
    with pytest.raises(PinOptionsError, match=problem):
        pin_from_query(CID, query, now_ns=NOW)


def test_check_user_options_guards_pins_built_elsewhere() -> None:
    """Pins from JSON (bulk import, pinning service) pass the same gate as query options."""
    check_user_options(Pin(CID, user_allocations=(PEER_A,), origins=(f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER_B}",), metadata={"k": "v"}))
    for pin, problem in (
        (Pin(CID, metadata={f"k{i}": "v" for i in range(1001)}), "more than 1000"),
        (Pin(CID, metadata={"": "v"}), "metadata"),
        (Pin(CID, metadata={"k": "v" * 4097}), "metadata"),
        (Pin(CID, max_depth=2**40), "max_depth"),
        (Pin(CID, replication_factor_min=1, replication_factor_max=2**40), "replication_factor_max"),
        (Pin(CID, user_allocations=("x",)), "user-allocations"),
    ):
        with pytest.raises(PinOptionsError, match=problem):
            check_user_options(pin)


@given(st.text(max_size=60))
def test_peer_id_check_never_crashes_and_accepts_only_peer_ids(text: str) -> None:
    """Any string is either refused with PinOptionsError or is a peer ID round-tripping through the multiaddr parser."""
    import multiaddr

    from cluster.pinoptions import check_peer_id

    try:
        check_peer_id(text, "user-allocations")
    except PinOptionsError:
        return
    assert multiaddr.Multiaddr(f"/p2p/{text}").value_for_protocol("p2p")
