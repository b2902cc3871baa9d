"""How a container starts: credentials at first start, no writable API beyond loopback without them,
and the entrypoint's bootstrap probe authenticating with them.

Docker is not available on the build machine, so ``deploy/docker-entrypoint.sh`` runs directly
(``sh``) on temp repos, with the image's environment except that every address is loopback port 0.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from node import config as cfgmod

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
WAIT = 90.0


def _env(repo: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINION_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(ROOT),
        PINION_PATH=str(repo),
        PINION_ADDRESSES_API="/ip4/127.0.0.1/tcp/0",
        PINION_ADDRESSES_GATEWAY="/ip4/127.0.0.1/tcp/0",
        PINION_ADDRESSES_METRICS="/ip4/127.0.0.1/tcp/0",
        PINION_ADDRESSES_CLUSTERAPI="/ip4/127.0.0.1/tcp/0",
        PINION_ADDRESSES_PINSVCAPI="/ip4/127.0.0.1/tcp/0",
        PINION_ADDRESSES_SWARM='["/ip4/127.0.0.1/tcp/0"]',
        PINION_ADDRESSES_CLUSTER='["/ip4/127.0.0.1/tcp/0"]',
        PINION_CLUSTER_MONITORPINGINTERVAL="1",
        PINION_CLUSTER_METRICTTL="4",
    )
    env.update(extra)
    return env


def _port(maddr: str) -> int:
    return int(maddr.strip("/").split("/")[3])


def _wait(what: str, cond: Any, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a process exited ({p.returncode}) waiting for {what}: " + "\n".join(l.read_text()[-2000:] for l in logs))
        try:
            value = cond()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: " + "\n".join(l.read_text()[-2000:] for l in logs))


def _get(url: str, auth: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth or {}), timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_the_daemon_refuses_writable_apis_beyond_loopback_without_credentials(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env = _env(repo)
    subprocess.run([sys.executable, "-m", "node.cli", "init", "--profile", "test"], env=env, check=True, capture_output=True, cwd=ROOT)
    for name, key in (("PINION_ADDRESSES_CLUSTERAPI", "ClusterAPI.BasicAuthCredentials"), ("PINION_ADDRESSES_API", "API.BasicAuthCredentials")):
        res = subprocess.run(
            [sys.executable, "-m", "node.cli", "daemon", "--offline"],
            env={**env, name: "/ip4/0.0.0.0/tcp/0"},
            capture_output=True,
            timeout=120,
            cwd=ROOT,
        )
        err = res.stderr.decode().strip()
        assert res.returncode == 1 and len(err.splitlines()) == 1 and key in err and "AllowRemoteWithoutAuth" in err, err
        assert not (repo / "endpoints.json").exists()
    cfg = cfgmod.load(repo, env=False)
    cfg["Addresses"]["ClusterAPI"] = "/ip4/0.0.0.0/tcp/9094"
    assert "ClusterAPI.BasicAuthCredentials" in (cfgmod.exposure_problem(cfg) or "")
    cfg["ClusterAPI"]["AllowRemoteWithoutAuth"] = True  # the documented opt-out (behind an authenticating proxy)
    assert cfgmod.exposure_problem(cfg) is None
    cfg["Addresses"]["PinSvcAPI"] = "/dns4/pinion.example/tcp/9097"
    cfg["ClusterAPI"]["AllowRemoteWithoutAuth"] = False
    assert "Addresses.ClusterAPI" in (cfgmod.exposure_problem(cfg) or "")
    cfgmod.generate_credentials(cfg)
    assert cfgmod.exposure_problem(cfg) is None
    for loopback in ("/ip4/127.0.0.1/tcp/1", "/ip4/127.5.5.5/tcp/1", "/ip6/::1/tcp/1", "/dns/localhost/tcp/1"):
        assert cfgmod.is_loopback(loopback), loopback
    for other in ("/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/1", "/ip4/10.0.0.1/tcp/1", "/dns4/pinion-0.pinion/tcp/1"):
        assert not cfgmod.is_loopback(other), other


def test_the_entrypoint_generates_credentials_and_its_probe_uses_them(tmp_path: Path) -> None:
    secret = secrets.token_hex(32)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def entrypoint(name: str, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(["sh", str(ENTRYPOINT)], env=_env(tmp_path / name, PINION_CLUSTER_SECRET=secret, **extra), stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path)
        procs.append(proc)
        logs.append(log)
        return proc, log

    try:
        # first start: init with generated credentials, kept in the config file, readable by the owner only
        _a, log_a = entrypoint("a")
        ep_file = tmp_path / "a" / "endpoints.json"
        ep = _wait("peer a", lambda: json.loads(ep_file.read_text()) if ep_file.exists() else None, procs, logs)
        config_file = tmp_path / "a" / "config.json"
        assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
        creds = json.loads(config_file.read_text())["ClusterAPI"]["BasicAuthCredentials"]
        user, password = next(iter(creds.items()))
        assert user == "admin" and len(password) >= 24
        assert json.loads(config_file.read_text())["API"]["BasicAuthCredentials"] == creds
        out = log_a.read_text()
        assert "API credentials generated" in out and str(config_file) in out and password not in out
        api = "http://127.0.0.1:%d" % _port(ep["cluster_api"])
        auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        assert _get(api + "/id")[0] == 401
        assert _get(api + "/health")[0] == 204  # the container and Kubernetes probes need no credentials

        # a second peer with the shared credentials (a Kubernetes Secret) reads a's peer ID and joins it
        boot = dict(
            PINION_BOOTSTRAP_HOST="127.0.0.1",
            PINION_BOOTSTRAP_API_PORT=str(_port(ep["cluster_api"])),
            PINION_BOOTSTRAP_CLUSTER_PORT=str(_port(ep["cluster"][0])),
        )
        shared = json.dumps(creds)
        entrypoint("b", PINION_CLUSTERAPI_BASICAUTHCREDENTIALS=shared, PINION_API_BASICAUTHCREDENTIALS=shared, **boot)

        def two_peers() -> bool:
            status, body = _get(api + "/peers", auth)
            return status == 200 and len([l for l in body.decode().splitlines() if l.strip()]) == 2

        _wait("peer b in a's peer list", two_peers, procs, logs)

        # a peer with other credentials: the probe is refused and the entrypoint says why
        c, log_c = entrypoint("c", **boot)
        procs.remove(c)
        assert c.wait(120) != 0
        assert "refused /id (401)" in log_c.read_text() and "BasicAuthCredentials" in log_c.read_text()
    finally:
        _stop(procs)
