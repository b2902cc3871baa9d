"""The HTTP APIs of a real ``pinion daemon`` against what a web page, a token thief or bad input can do.

Each test starts its own ``--profile test`` daemon (every port 0, loopback) and
talks to it with ``http.client`` (no redirect following, any method, raw
headers) or a raw socket: C, P, R and G are the REST API, the pinning service
API, the kubo RPC and the gateway.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from blockstore.cid import cid_for, cid_to_str
from node import config as cfgmod

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "fixtures" / "pinning-services-api-spec" / "ipfs-pinning-service.yaml"
EVIL = "http://evil.example"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}


def _configure(node: Any, **sections: dict[str, Any]) -> None:
    path = node.path / cfgmod.CONFIG_FILE
    cfg = json.loads(path.read_text())
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(json.dumps(cfg))


def _req(base: str, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPMessage]:
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


def _cid(text: str) -> str:
    return cid_to_str(cid_for(text.encode()))


def _allocations(c: str) -> set[str]:
    status, body, _h = _req(c, "GET", "/allocations")
    assert status in (200, 204), body
    return {json.loads(line)["cid"] for line in body.decode().splitlines() if line.strip()}


def test_cross_origin_requests_get_get_only_and_json_bodies_need_json(make_node: Any) -> None:
    node = make_node()
    node.start()
    c, p, r = node.url("cluster_api"), node.url("pinsvc_api"), node.url("rpc")
    old, new, other = _cid("old"), _cid("new"), _cid("other")
    assert _req(c, "POST", f"/pins/{old}")[0] == 200
    evil = {"Origin": EVIL}

    # the reproduction: a cross-site text/plain POST replacing a pin
    status, body, headers = _req(p, "POST", f"/pins/{old}", json.dumps({"cid": new}), {**evil, "Content-Type": "text/plain"})
    assert status == 403 and json.loads(body)["error"]["reason"] == "FORBIDDEN", body
    assert "Access-Control-Allow-Origin" not in headers
    for method, path, hdrs, data in (
        ("POST", "/pins", {"Content-Type": "application/json"}, json.dumps({"cid": new})),
        ("DELETE", f"/pins/{old}", {}, None),
    ):
        status, body, _h = _req(p, method, path, data, {**evil, **hdrs})
        assert status == 403, (method, path, status, body)
    for method, path in (("POST", f"/pins/{new}"), ("DELETE", f"/pins/{old}"), ("POST", "/pins/recover"), ("POST", "/add")):
        status, body, _h = _req(c, method, path, b"", evil)
        assert status == 403 and json.loads(body)["code"] == 403, (method, path, status, body)
    assert _req(r, "POST", "/api/v0/version", b"", evil)[0] == 403
    assert _allocations(c) == {old}  # nothing the page asked for happened

    # reads from any origin, as IPFS Cluster's defaults: "*" and never credentials
    status, body, headers = _req(c, "GET", "/id", None, evil)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*", headers
    assert "Access-Control-Allow-Credentials" not in headers and "Origin" in headers.get("Vary", "")
    status, body, headers = _req(c, "GET", "/allocations", None, evil)  # streamed answers carry them too
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    # preflights grant only configured methods
    pre = {**evil, "Access-Control-Request-Method": "POST"}
    assert _req(c, "OPTIONS", f"/pins/{new}", None, pre)[0] == 403
    assert _req(p, "OPTIONS", "/pins", None, {**pre, "Access-Control-Request-Headers": "content-type"})[0] == 403
    status, _b, headers = _req(c, "OPTIONS", "/pins", None, {**evil, "Access-Control-Request-Method": "GET"})
    assert status == 204 and headers["Access-Control-Allow-Methods"] == "GET, HEAD", headers
    assert "Access-Control-Allow-Credentials" not in headers

    # JSON bodies must say they are JSON (a plain form cannot)
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, body, _h = _req(p, "POST", "/pins", json.dumps({"cid": new}), {"Content-Type": ctype})
        assert status == 415 and json.loads(body)["error"]["reason"] == "UNSUPPORTED_MEDIA_TYPE", (ctype, body)
        status, body, _h = _req(c, "POST", "/pins", json.dumps({"cid": new}), {"Content-Type": ctype})
        assert status == 415, (ctype, status, body)
    assert _allocations(c) == {old}

    # the API's own origin and clients that send no Origin (curl, ipfs-cluster-ctl) are not cross-origin
    assert _req(c, "POST", f"/pins/{other}", b"", {"Origin": c})[0] == 200
    status, body, _h = _req(p, "POST", f"/pins/{old}", json.dumps({"cid": new}), {"Content-Type": "application/json"})
    assert status == 202, body
    assert _allocations(c) == {new, other}


def test_tokens_need_basic_credentials_and_auth_comes_before_routing(make_node: Any) -> None:
    node = make_node()
    _configure(node, API={"BasicAuthCredentials": {"admin": "s3cret"}}, ClusterAPI={"BasicAuthCredentials": {"admin": "s3cret"}, "JWTExpiry": 3600})
    node.start()
    c, p, r = node.url("cluster_api"), node.url("pinsvc_api"), node.url("rpc")

    status, body, _h = _req(c, "POST", "/token", b"", BASIC)
    assert status == 200, body
    token = json.loads(body)["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert _req(c, "GET", "/id", None, bearer)[0] == 200  # the token works...
    for base in (c, p):
        status, body, _h = _req(base, "POST", "/token", b"", bearer)  # ...but cannot buy a fresh one
        assert status == 401 and b"Basic" in body, (base, status, body)

    # the pinning service's refusals are the spec's Failure objects, 401 included
    status, body, headers = _req(p, "GET", "/pins")
    assert status == 401 and json.loads(body) == {"error": {"reason": "UNAUTHORIZED", "details": "Unauthorized: credentials required"}}
    assert headers.get_all("WWW-Authenticate")

    # nothing about the API is told before auth: no redirect, no 404 of an unknown command
    status, _b, headers = _req(c, "GET", "//evil.example/")
    assert status == 401 and "Location" not in headers
    status, _b, headers = _req(c, "GET", "//evil.example/", None, BASIC)
    assert status == 307 and headers["Location"] == "/evil.example", headers["Location"]
    status, _b, headers = _req(c, "GET", "/\\evil.example/", None, BASIC)
    assert status == 307 and headers["Location"] == "/evil.example", headers["Location"]
    status, _b, headers = _req(c, "GET", "/%2F%2Fevil.example/?a=b", None, BASIC)
    assert status == 307 and headers["Location"] == "/%2F%2Fevil.example?a=b", headers["Location"]
    assert _req(r, "POST", "/api/v0/no/such/command")[0] == 401
    assert _req(r, "POST", "/api/v0/no/such/command", b"", BASIC)[0] == 404


def test_garbage_options_and_unbounded_input_get_400_and_store_nothing(make_node: Any) -> None:
    node = make_node()
    node.start()
    c, p = node.url("cluster_api"), node.url("pinsvc_api")
    cid, gone = _cid("garbage-test"), _cid("never-pinned")
    peer = node.endpoints["cluster_peer_id"]
    nines = "9" * 400
    for query, word in (
        ("user-allocations=garbage", "user-allocations"),
        (f"user-allocations={peer},{peer}", "user-allocations"),
        ("origins=/garbage/p2p/x", "origins"),
        (f"origins=/ip4/1.2.3.4/tcp/99999/p2p/{peer}", "origins"),
        (f"pin-update={gone}", "pin-update"),
        (f"expire-in={nines}h", "expire-in"),
        ("expire-in=3000000h", "expire-in"),
        ("expire-at=9999-01-01T00:00:00Z", "expire_at"),
        (f"replication={nines}", "replication"),
        ("replication-min=99999999999", "replication-min"),
        ("shard-size=-1", "shard-size"),
        (f"shard-size={nines}", "shard-size"),
    ):
        status, body, _h = _req(c, "POST", f"/pins/{cid}?{query}")
        assert status == 400 and word in json.loads(body)["message"], (query, status, body)

    deep = "[" * 100_000 + "]" * 100_000
    status, body, _h = _req(p, "POST", "/pins", deep, {"Content-Type": "application/json"})
    assert status == 400 and "deeper" in json.loads(body)["error"]["details"], body
    status, body, _h = _req(p, "GET", "/pins?meta=" + "%5B" * 5000 + "%5D" * 5000)
    assert status in (400, 414) and json.loads(body)["error"]["reason"], body
    deep_line = "[" * 30_000 + "]" * 30_000  # under the 64 KiB line limit of a bulk import
    status, body, _h = _req(c, "POST", "/pins", deep_line + "\n", {"Content-Type": "application/x-ndjson"})
    assert status == 400 and "deeper" in json.loads(body)["message"], body
    status, body, _h = _req(c, "POST", "/pins", deep + "\n", {"Content-Type": "application/x-ndjson"})
    assert status == 400 and "longer than" in json.loads(body)["message"], body
    line = {"cid": cid, "user_allocations": [1, 2]}
    status, body, _h = _req(c, "POST", "/pins", json.dumps(line) + "\n", {"Content-Type": "application/x-ndjson"})
    assert status == 400 and "user_allocations" in json.loads(body)["message"], body
    line = {"cid": cid, "origins": ["not a multiaddr"], "name": "x" * 10}
    status, body, _h = _req(c, "POST", "/pins", json.dumps(line) + "\n", {"Content-Type": "application/x-ndjson"})
    assert status == 400 and "origins" in json.loads(body)["message"], body
    body_pin = {"cid": cid, "origins": [f"/ip4/1.2.3.4/tcp/1/p2p/{peer}"] * 2}
    assert _req(p, "POST", "/pins", json.dumps(body_pin), {"Content-Type": "application/json"})[0] == 400
    status, body, _h = _req(c, "GET", "/allocations")
    assert status == 204, body  # none of it entered the pinset
    # the same options, well-formed, are accepted
    status, body, _h = _req(c, "POST", f"/pins/{cid}?user-allocations={peer}&origins=/ip4/1.2.3.4/tcp/4001/p2p/{peer}&expire-in=2h")
    assert status == 200 and json.loads(body)["user_allocations"] == [peer], body


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_over_long_urls_get_414_and_over_long_headers_431_without_echo(make_node: Any) -> None:
    node = make_node()
    node.start("--offline")
    max_url = cfgmod.DEFAULTS["Gateway"]["MaxURLLength"]
    gw, rpc = (int(node.endpoints[k].split("/")[4]) for k in ("gateway", "rpc"))
    just_over = b"/ipfs/" + b"a" * (max_url + 1 - 6)
    cases = (
        (gw, b"GET " + just_over + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"414 ", b"URL longer than 8192 bytes"),
        (gw, b"GET /ipfs/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"414 ", b"request URL longer than"),
        (gw, b"GET /ipfs/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\nConnection: close\r\n\r\n", b"431 ", b"header field"),
        (rpc, b"POST /api/v0/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"414 ", b"request URL longer than"),
    )
    for port, request, status, message in cases:
        answer = _raw(port, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ", 1)[1].startswith(status), answer[:300]
        assert message in body and b"aaaa" not in answer and len(body) < 200, answer[:300]
    # the gateway's own limit applies exactly: one byte less is not refused for its length
    answer = _raw(gw, b"GET " + just_over[:-1] + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b" 414 " not in answer.split(b"\r\n")[0], answer[:200]


@pytest.mark.skipif(shutil.which("st", path=str(Path(sys.executable).parent)) is None, reason="schemathesis is not installed (pip install -e '.[test]')")
def test_pinning_service_api_follows_its_openapi_spec(make_node: Any, tmp_path: Path) -> None:
    """schemathesis drives every operation of the published spec (tests/fixtures) against a
    live daemon with credentials and checks every answer against it: no 5xx, documented
    status codes and content types, bodies that match the schemas, invalid input refused,
    and no answer without credentials."""
    node = make_node()
    _configure(node, ClusterAPI={"BasicAuthCredentials": {"admin": "s3cret"}})
    node.start()
    p = node.url("pinsvc_api")
    # a few pins so that listings and lookups have something to return
    for i in range(3):
        status, body, _h = _req(p, "POST", "/pins", json.dumps({"cid": _cid(f"spec-{i}"), "name": f"n{i}", "meta": {"i": str(i)}}), {**BASIC, "Content-Type": "application/json"})
        assert status == 202, body
    status, body, _h = _req(p, "GET", "/pins/0", None, BASIC)
    assert status == 404 and json.loads(body)["error"]["reason"] == "NOT_FOUND", body
    st = str(Path(sys.executable).parent / "st")
    res = subprocess.run(
        [
            st, "run", str(SPEC), "--url", p, "-H", f"Authorization: {BASIC['Authorization']}",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth",
            "--max-examples", "15", "--workers", "1", "--phases", "examples,coverage,fuzzing", "--seed", "1",
            "--request-timeout", "30", "--no-color", "--generation-database", "none",
        ],
        capture_output=True,
        timeout=600,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCHEMATHESIS_TELEMETRY": "false"},
    )
    out = res.stdout.decode(errors="replace")
    assert res.returncode == 0, out[-6000:]
