"""kubo's Routing.Type values and the DHT settings."""

from __future__ import annotations

import pytest

from bitswap.routing.dht import DHTError, to_dht_key
from bitswap.routing.dht_config import AUTO, CLIENT, ROUTING_TYPES, SERVER, DHTConfig, is_public_ip, resolve_mode, routing_plan
from blockstore.cid import cid_for, multihash_of


@pytest.mark.parametrize(
    ("routing_type", "dht", "delegated"),
    [
        ("auto", AUTO, True),
        ("autoclient", CLIENT, True),
        ("dht", AUTO, False),
        ("dhtclient", CLIENT, False),
        ("dhtserver", SERVER, False),
        ("delegated", None, True),
        ("none", None, False),
    ],
)
def test_kubo_routing_types(routing_type: str, dht: str | None, delegated: bool) -> None:
    plan = routing_plan(routing_type)
    assert (plan.dht, plan.delegated) == (dht, delegated)


def test_every_routing_type_is_covered_and_others_are_refused() -> None:
    assert {t for t in ROUTING_TYPES if routing_plan(t)} == set(ROUTING_TYPES)
    for bad in ("", "DHT", "custom", None):
        with pytest.raises(ValueError, match="is not one of auto, autoclient, dht, dhtclient, dhtserver, delegated, none"):
            routing_plan(bad)  # type: ignore[arg-type]


def test_auto_mode_is_a_server_only_when_reachable() -> None:
    assert resolve_mode(AUTO, True) == SERVER and resolve_mode(AUTO, False) == CLIENT
    assert resolve_mode(CLIENT, True) == CLIENT and resolve_mode(SERVER, False) == SERVER
    with pytest.raises(ValueError):
        resolve_mode("dhtserver", True)


def test_config_validation_and_public_addresses() -> None:
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        DHTConfig(mode=AUTO)
    with pytest.raises(ValueError, match="at least 1"):
        DHTConfig(k=0)
    assert DHTConfig().mode == CLIENT and not DHTConfig().allow_private_addrs
    assert is_public_ip("8.8.8.8") and is_public_ip("2001:4860:4860::8888")
    for private in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.1.1", "::1", "fe80::1", "fd00::1", "x"):
        assert not is_public_ip(private)


def test_dht_keys_are_multihashes() -> None:
    cid = cid_for(b"x")
    assert to_dht_key(cid) == multihash_of(cid)
    assert to_dht_key(multihash_of(cid)) == multihash_of(cid)
    with pytest.raises(DHTError, match="not a CID or multihash"):
        to_dht_key(b"\x01\x02\x03")
