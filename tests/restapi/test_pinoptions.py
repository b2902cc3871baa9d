"""cluster/pinoptions.py: IPFS Cluster's pin options as query parameters, and Go durations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockstore.cid import cid_for, cid_to_str
from cluster.pinoptions import PinOptionsError, parse_duration, pin_from_query

CID = cid_for(b"options")
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
            "user-allocations": "A, B",
            "expire-in": "1h",
            "meta-owner": "me",
            "meta-app": "x",
            "origins": "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWx",
            "pin-update": cid_to_str(update),
        },
        now_ns=NOW,
    )
    assert not defaults
    assert (pin.name, pin.max_depth, pin.replication_factor_min, pin.replication_factor_max) == ("n", 0, 2, 3)
    assert pin.user_allocations == ("A", "B") and pin.expire_at == NOW + 3600 * S
    assert pin.metadata == {"owner": "me", "app": "x"} and pin.pin_update == update and pin.timestamp == NOW
    assert pin.origins == ("/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWx",)


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
    ],
)
def test_bad_options_name_the_parameter(query: dict[str, str], problem: str) -> None:
    with pytest.raises(PinOptionsError, match=problem):
        pin_from_query(CID, query, now_ns=NOW)
