"""HTTP helpers for the cluster's end-to-end tests: a peer's repo set up for a test cluster, the
REST API called with urllib, and polling until a condition holds (never a fixed sleep)."""

from __future__ import annotations

import io
import json
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from blockstore.car import CarReader
from node import config as cfgmod

WAIT = 90.0


# ---------------------------------------------------------------- helpers
def init_peer(make_node: Any, name: str, secret: str, **sections: dict[str, Any]) -> Any:
    node = make_node(name, "--secret", secret)
    path = node.path / cfgmod.CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg["Cluster"]["RebroadcastInterval"] = 0.5
    cfg["Cluster"]["Peername"] = name
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(json.dumps(cfg))
    return node


def cluster_addr(node: Any) -> str:
    ep = node.endpoints
    addr = ep["cluster"][0]
    return addr if "/p2p/" in addr else f"{addr}/p2p/{ep['cluster_peer_id']}"


def api_url(node: Any) -> str:
    return node.url("cluster_api")


def request(node: Any, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(api_url(node) + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def request_json(node: Any, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    status, data, _h = request(node, method, path, body, headers)
    assert status < 300, f"{method} {path} -> {status}: {data[:500]!r}"
    return json.loads(data) if data else None


def request_stream(node: Any, path: str) -> list[Any]:
    status, data, _h = request(node, "GET", path)
    assert status in (200, 204), f"GET {path} -> {status}: {data[:500]!r}"
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def wait_until(what: str, cond: Any, nodes: list[Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except (AssertionError, urllib.error.URLError, ConnectionError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.3)
    logs = "\n".join(f"--- {n.path.name}\n" + n.log.read_text()[-3000:] for n in nodes)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs}")


def statuses(gpi: dict[str, Any]) -> dict[str, str]:
    return {peer: info["status"] for peer, info in gpi["peer_map"].items()}


def pinned_on(node: Any, cid: str, peers: list[str]) -> bool:
    st = statuses(request_json(node, "GET", f"/pins/{cid}"))
    return all(st.get(p) == "pinned" for p in peers)


def add_local(node: Any, data: bytes, tmp: Path, name: str) -> str:
    """Add bytes to one node's blockstore through its kubo RPC (not cluster-pinned)."""
    f = tmp / name
    f.write_bytes(data)
    out = node.cli("add", "-Q", "--cid-version", "1", str(f)).stdout.decode().strip()
    return out.splitlines()[-1]


def multipart(field: str, filename: str, data: bytes, ctype: str = "application/octet-stream") -> tuple[bytes, str]:
    boundary = secrets.token_hex(12)
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
        f"Content-Type: {ctype}\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def car_blocks(data: bytes) -> dict[bytes, bytes]:
    return {block.cid: block.data for block in CarReader(io.BytesIO(data))}


# ---------------------------------------------------------------- the scenario
