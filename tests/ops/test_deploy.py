"""The container and Kubernetes files agree with the code: ports, environment names, probes, volumes.

Docker is not available on the build machine, so the Dockerfile is checked statically."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from node import config as cfgmod
from node.config import tcp_host_port

ROOT = Path(__file__).resolve().parents[2]
ENV_NAMES = {cfgmod.env_name(f"{s}.{k}") for s, keys in cfgmod.DEFAULTS.items() for k in keys}
EXTRA_ENV = {"PINION_PATH", "PINION_BOOTSTRAP_HOST", "PINION_BOOTSTRAP_API_PORT", "PINION_BOOTSTRAP_CLUSTER_PORT"}  # read by the CLI and the entrypoint, not config keys
#: APIs that can change data, and the config section whose credentials guard each
GUARDED = {"PINION_ADDRESSES_API": "API", "PINION_ADDRESSES_CLUSTERAPI": "ClusterAPI", "PINION_ADDRESSES_PINSVCAPI": "ClusterAPI"}


def _default_ports() -> dict[str, int]:
    a = cfgmod.DEFAULTS["Addresses"]
    return {
        "rpc": tcp_host_port(a["API"])[1],
        "gateway": tcp_host_port(a["Gateway"])[1],
        "metrics": tcp_host_port(a["Metrics"])[1],
        "cluster-api": tcp_host_port(a["ClusterAPI"])[1],
        "pinsvc-api": tcp_host_port(a["PinSvcAPI"])[1],
        "swarm": tcp_host_port(a["Swarm"][0])[1],
        "cluster": tcp_host_port(a["Cluster"][0])[1],
    }


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^USER pinion$", text, re.M) and "useradd" in text  # not root
    assert re.search(r"^VOLUME /data$", text, re.M) and "PINION_PATH=/data" in text
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    assert exposed == set(_default_ports().values())
    for name, value in re.findall(r"(PINION_[A-Z_]+)=(\S+)", text):
        assert name in ENV_NAMES | EXTRA_ENV, name
        if name.startswith("PINION_ADDRESSES_"):
            host, port = tcp_host_port(value)
            assert host == "0.0.0.0" and port in _default_ports().values()
    assert "9094/health" in text  # the healthcheck hits the REST API's unauthenticated /health
    assert (ROOT / "deploy" / "docker-entrypoint.sh").stat().st_mode & 0o111
    # the image serves the guarded APIs beyond loopback: the first start must give them credentials
    env = dict(re.findall(r"(PINION_[A-Z_]+)=(\S+)", text))
    cfg = json.loads(json.dumps(cfgmod.DEFAULTS))
    for name, value in env.items():
        if name.startswith("PINION_ADDRESSES_"):
            cfg["Addresses"][next(k for k in cfg["Addresses"] if cfgmod.env_name(f"Addresses.{k}") == name)] = value
    assert cfgmod.exposure_problem(cfg) is not None  # as the image is, without credentials
    entry = (ROOT / "deploy" / "docker-entrypoint.sh").read_text()
    assert re.search(r"^\s+pinion init --api-credentials$", entry, re.M)
    cfgmod.generate_credentials(cfg)
    assert cfgmod.exposure_problem(cfg) is None


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / name).read_text()) if d]


def test_kubernetes_manifests() -> None:
    docs = _docs("pinion.yaml")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("StatefulSet", "pinion"), ("Service", "pinion"), ("Service", "pinion-api")} <= kinds
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    headless = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "pinion")
    assert headless["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == "pinion"
    assert sts["spec"]["replicas"] >= 3 and sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == _default_ports()
    assert any(m["mountPath"] == "/data" for m in c["volumeMounts"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "cluster-api"}
    for env in c["env"]:
        assert env["name"] in ENV_NAMES | EXTRA_ENV, env["name"]
        if "value" in env and env["name"] != "PINION_BOOTSTRAP_HOST":
            section_key = next(f"{s}.{k}" for s, ks in cfgmod.DEFAULTS.items() for k in ks if cfgmod.env_name(f"{s}.{k}") == env["name"])
            cfg = json.loads(json.dumps(cfgmod.DEFAULTS))
            s, k = section_key.split(".")
            cfg[s][k] = cfgmod.parse_value(section_key, env["value"], cfgmod.DEFAULTS[s][k])
            cfgmod.validate(cfg)  # every literal value in the manifest is a valid config value
    secret_ref = next(e for e in c["env"] if e["name"] == "PINION_CLUSTER_SECRET")["valueFrom"]["secretKeyRef"]
    secret = _docs("secret.example.yaml")[0]
    assert secret["kind"] == "Secret" and secret_ref == {"name": secret["metadata"]["name"], "key": "secret"}
    # every peer gets the same API credentials from the secret (the bootstrap probe of /id needs them),
    # and the example's placeholders stop a peer instead of running it with a known password
    for name in ("PINION_API_BASICAUTHCREDENTIALS", "PINION_CLUSTERAPI_BASICAUTHCREDENTIALS"):
        ref = next(e for e in c["env"] if e["name"] == name)["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": "api-credentials"}
    for key, dotted in (("secret", "Cluster.Secret"), ("api-credentials", "ClusterAPI.BasicAuthCredentials")):
        cfg = json.loads(json.dumps(cfgmod.DEFAULTS))
        with pytest.raises(cfgmod.ConfigError):
            s, k = dotted.split(".")
            cfg[s][k] = cfgmod.parse_value(dotted, secret["stringData"][key], cfgmod.DEFAULTS[s][k])
            cfgmod.validate(cfg)
    # every port a Service targets is a named container port
    names = {p["name"] for p in c["ports"]}
    for svc in (d for d in docs if d["kind"] == "Service"):
        for port in svc["spec"]["ports"]:
            assert port.get("targetPort", port["name"]) in names


def test_grafana_dashboard_uses_documented_metrics() -> None:
    dash = json.loads((ROOT / "deploy" / "grafana" / "pinion-dashboard.json").read_text())
    documented = (ROOT / "docs" / "metrics.md").read_text()
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        for name in re.findall(r"\b((?:pinion|ipfscluster)_[a-z_]+)", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert base in documented, f"{name} in the dashboard is not in docs/metrics.md"
