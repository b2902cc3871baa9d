"""Configuration: the generated reference, validation of every placement key, environment
overrides, and ``pinion config show|get|set`` on a real repo."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node import config as cfgmod
from node.cli.config_cli import MASK, reference

from node_proc import ROOT  # the repository root (tests/harness/node_proc.py)


def test_docs_config_md_is_the_generated_reference() -> None:
    assert (ROOT / "docs" / "config.md").read_text() == reference(), "run: python -m node.cli.config_cli > docs/config.md"


def test_every_key_is_documented() -> None:
    keys = {f"{s}.{k}" for s, keys in cfgmod.DEFAULTS.items() for k in keys}
    assert keys - set(cfgmod.DEFAULTS_DOC) == set()


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("Cluster.MetricTTL", 0, "MetricTTL"),
        ("Cluster.MonitorPingInterval", "often", "MonitorPingInterval"),
        ("Cluster.ReplicationFactorMin", 3, "ReplicationFactorMin/Max"),
        ("Cluster.DisableRepinning", "yes", "DisableRepinning"),
        ("Cluster.AllocateBy", "freespace", "AllocateBy"),
        ("Cluster.Tags", {"group": 1}, "Tags"),
        ("PinTracker.ConcurrentPins", 0, "ConcurrentPins"),
        ("PinTracker.PinTimeout", -1, "PinTimeout"),
        ("ClusterAPI.BasicAuthCredentials", {"admin": ""}, "BasicAuthCredentials"),
        ("ClusterAPI.TLSCertFile", "/cert.pem", "set together"),
        ("ClusterAPI.CORSAllowedOrigins", "*", "CORSAllowedOrigins"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key: str, value: Any, problem: str) -> None:
    cfg = copy.deepcopy(cfgmod.DEFAULTS)
    section, name = key.split(".")
    cfg[section][name] = value
    with pytest.raises(cfgmod.ConfigError, match=problem):
        cfgmod.validate(cfg)


def test_environment_overrides_are_typed_and_validated() -> None:
    cfg = copy.deepcopy(cfgmod.DEFAULTS)
    env = {
        "PINION_CLUSTER_PEERNAME": "edge-1",
        "PINION_CLUSTER_TAGS": '{"group": "eu"}',
        "PINION_CLUSTER_BOOTSTRAP": "/ip4/10.0.0.1/tcp/9096/p2p/12D3KooWa,/dns4/p0/tcp/9096/p2p/12D3KooWb",
        "PINION_PINTRACKER_CONCURRENTPINS": "4",
        "PINION_ADDRESSES_CLUSTERAPI": "/ip4/0.0.0.0/tcp/9094",
    }
    assert sorted(cfgmod.apply_env(cfg, env)) == sorted(
        ["Cluster.Peername", "Cluster.Tags", "Cluster.Bootstrap", "PinTracker.ConcurrentPins", "Addresses.ClusterAPI"]
    )
    assert cfg["Cluster"]["Peername"] == "edge-1" and cfg["Cluster"]["Tags"] == {"group": "eu"}
    assert len(cfg["Cluster"]["Bootstrap"]) == 2 and cfg["PinTracker"]["ConcurrentPins"] == 4
    with pytest.raises(cfgmod.ConfigError, match="PINION_CLUSTER_METRICTTL"):
        cfgmod.apply_env(cfg, {"PINION_CLUSTER_METRICTTL": "soon"})


def _pinion(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        env={**os.environ, "PINION_PATH": str(repo), "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_config_commands_on_a_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert _pinion(repo, "init", "--profile", "test", "--secret", "ab" * 32).returncode == 0
    shown = json.loads(_pinion(repo, "config", "show").stdout)
    assert shown["Cluster"]["Secret"] == MASK and shown["Identity"]["PrivKey"] == MASK
    assert json.loads(_pinion(repo, "config", "show", "--show-secrets").stdout)["Cluster"]["Secret"] == "ab" * 32
    assert _pinion(repo, "config", "get", "Cluster.Tags.group").stdout.strip() == "default"
    assert _pinion(repo, "config", "set", "Cluster.Tags.region", "eu").returncode == 0
    assert _pinion(repo, "config", "set", "PinTracker.ConcurrentPins", "3").returncode == 0
    assert _pinion(repo, "config", "set", "Cluster.AllocateBy", '["tag:region", "freespace"]', "--json").returncode == 0
    cfg = cfgmod.load(repo, env=False)
    assert cfg["Cluster"]["Tags"] == {"group": "default", "region": "eu"} and cfg["PinTracker"]["ConcurrentPins"] == 3
    assert cfg["Cluster"]["AllocateBy"] == ["tag:region", "freespace"]
    for args, problem in (
        (("config", "set", "Cluster.Nope", "1"), "no config key"),
        (("config", "set", "PinTracker.ConcurrentPins", "0"), "ConcurrentPins"),
        (("config", "get", "Nope.Key"), "no config key"),
    ):
        res = _pinion(repo, *args)
        assert res.returncode == 1 and problem in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert cfgmod.load(repo, env=False)["PinTracker"]["ConcurrentPins"] == 3  # a refused set changes nothing
    res = _pinion(repo, "daemon", env={"PINION_CLUSTER_SECRET": "not-hex"})
    assert res.returncode == 1 and "Cluster.Secret" in res.stderr
