"""The routing config keys (node/config.py) and RoutingSettings (node/routing/settings.py)."""

from __future__ import annotations

import copy

import pytest

from node import config as cfgmod
from node.cli.config_cli import ConfigCliError, set_key
from node.routing.settings import RoutingSettings


def test_defaults_are_kubos_and_the_test_profile_stays_off_the_network() -> None:
    cfg = cfgmod.default_config()
    assert cfg["Routing"]["Type"] == "auto"
    assert "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ" in cfg["Routing"]["Bootstrap"]
    s = RoutingSettings.from_config(cfg)
    assert s.delegated_routers == ("https://cid.contact",)
    assert s.interval == 22 * 3600 and s.strategy == "all" and not s.expose_routing_api
    test = RoutingSettings.from_config(cfgmod.default_config("test"))
    assert test.routing_type == "none" and test.bootstrap == () and test.delegated_routers == ()
    delegated = copy.deepcopy(cfg)
    delegated["Routing"]["Type"] = "delegated"
    assert RoutingSettings.from_config(delegated).delegated_routers == ("https://cid.contact", "https://delegated-ipfs.dev")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("Routing.Type", "dht-ish", "Routing.Type must be one of"),
        ("Routing.Bootstrap", "/ip4/1.2.3.4/tcp/4001", "must end with /p2p/<peer ID>"),
        ("Routing.DelegatedRouters", "ftp://x", "is not an http(s) URL"),
        ("Reprovider.Strategy", "everything", "Reprovider.Strategy must be one of"),
        ("Reprovider.Interval", "49h", "at most 48h"),
        ("Reprovider.Interval", "soon", "must be a duration"),
        ("Swarm.ConnMgrLowWater", "100", "must not exceed"),
        ("Gateway.ExposeRoutingAPI", "yes", "is not valid JSON"),
        ("Gateway.ExposeRoutingAPI", "1", "must be true or false"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigCliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        set_key(cfgmod.default_config(), key, value, as_json=False)


def test_set_and_environment() -> None:
    cfg = set_key(cfgmod.default_config(), "Reprovider.Interval", "1h30m", as_json=False)
    assert RoutingSettings.from_config(cfg).interval == 5400
    cfg = set_key(cfg, "Routing.DelegatedRouters", "http://127.0.0.1:1,https://r.example", as_json=False)
    assert cfg["Routing"]["DelegatedRouters"] == ["http://127.0.0.1:1", "https://r.example"]
    env = {"PINION_ROUTING_TYPE": "dhtserver", "PINION_REPROVIDER_STRATEGY": "roots", "PINION_ROUTING_BOOTSTRAP": "[]"}
    assert sorted(cfgmod.apply_env(cfg, env)) == ["Reprovider.Strategy", "Routing.Bootstrap", "Routing.Type"]
    cfgmod.validate(cfg)
    s = RoutingSettings.from_config(cfg)
    assert (s.routing_type, s.strategy, s.bootstrap) == ("dhtserver", "roots", ())


@pytest.mark.parametrize(("text", "seconds"), [("22h", 79200.0), ("1h30m", 5400.0), ("90s", 90.0), ("0", 0.0), (600, 600.0)])
def test_durations(text: object, seconds: float) -> None:
    assert cfgmod.parse_duration(text, "X") == seconds
