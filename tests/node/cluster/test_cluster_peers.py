"""Pin placement end to end: real ``pinion daemon`` processes on loopback driven through the REST API.

One scenario on five peers in three tag groups (the issue's list): pins with
replication 2 land on two peers of different groups; a CAR uploaded to peer 1
becomes pinned on the allocated peers with identical blocks; a killed peer
shows in the status and the alerts; recover re-pins a failed pin; expire_at
unpins; a peer added later syncs the pinset and serves the content;
asyncipfscluster's add and delete work unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cluster_http import add_local, api_url, car_blocks, cluster_addr, init_peer, multipart, pinned_on, request, request_json, request_stream, statuses, wait_until


def test_five_peers_place_pin_recover_expire_and_join(make_node: Any, tmp_path: Path) -> None:
    secret = secrets.token_hex(32)
    tracker = {"PinTimeout": 3, "RetryBackoff": 1, "MaxRetries": 2, "RecoverInterval": 3600}
    groups = {"p1": "a", "p2": "a", "p3": "b", "p4": "b", "p5": "c"}
    nodes = {
        name: init_peer(
            make_node,
            name,
            secret,
            Cluster={"Tags": {"group": g}, "StateSyncInterval": 1, "DisableRepinning": False, "RepinningGrace": 2},
            PinTracker=tracker,
        )
        for name, g in groups.items()
    }
    p1 = nodes["p1"]
    p1.start()
    boot = cluster_addr(p1)
    for name in ("p2", "p3", "p4"):
        nodes[name].start("--bootstrap", boot)
    running = [nodes[n] for n in ("p1", "p2", "p3", "p4")]
    ids = {name: n.endpoints["cluster_peer_id"] for name, n in nodes.items() if n.endpoints}
    group_of = {ids[n]: groups[n] for n in ids}

    wait_until("4 peers in p1's peer list", lambda: len(request_stream(p1, "/peers")) == 4, running)
    ident = request_json(p1, "GET", "/id")
    assert ident["id"] == ids["p1"] and ident["peername"] == "p1" and ident["ipfs"]["id"]
    assert request_json(p1, "GET", "/version")["version"]

    # -- replication 2 lands on two peers of different groups
    cid = add_local(p1, os.urandom(300_000), tmp_path, "a.bin")
    pin = request_json(p1, "POST", f"/pins/{cid}?replication=2&name=two-groups&meta-owner=test")
    allocs = pin["allocations"]
    assert len(allocs) == 2 and len({group_of[p] for p in allocs}) == 2, pin
    wait_until("the rf-2 pin pinned on its two peers", lambda: pinned_on(p1, cid, allocs), running)
    st = statuses(request_json(p1, "GET", f"/pins/{cid}"))
    assert sorted(p for p, s in st.items() if s == "remote") == sorted(set(ids[n] for n in ("p1", "p2", "p3", "p4")) - set(allocs))
    assert request_json(nodes["p3"], "GET", f"/allocations/{cid}")["name"] == "two-groups"
    assert [p["cid"] for p in request_stream(p1, "/pins?name=two-groups")] == [cid]
    assert [p["cid"] for p in request_stream(p1, "/pins?meta-owner=test")] == [cid]

    # -- a CAR uploaded to peer 1 becomes pinned on the allocated peers, blocks identical
    scratch = make_node("scratch")
    car_root = add_local(scratch, os.urandom(1_500_000), tmp_path, "car.bin")
    car = scratch.cli("car", "export", car_root).stdout
    body, ctype = multipart("file", "upload.car", car, "application/vnd.ipld.car")
    status, data, _h = request(p1, "POST", "/add?format=car&replication-min=2&replication-max=2&name=car", body, {"Content-Type": ctype})
    assert status == 200, data
    out = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    assert out[-1]["cid"] == car_root
    car_allocs = out[-1]["allocations"]
    assert len(car_allocs) == 2
    wait_until("the uploaded CAR pinned on its peers", lambda: pinned_on(p1, car_root, car_allocs), running)
    holder = next(n for n in running if n.endpoints["cluster_peer_id"] in car_allocs and n is not p1)
    assert car_blocks(holder.cli("car", "export", car_root).stdout) == car_blocks(car)

    # -- recover: a pin whose content nobody has fails, then recovers once the content exists
    lost = os.urandom(50_000)
    scratch_cid = add_local(scratch, lost, tmp_path, "lost.bin")
    request_json(p1, "POST", f"/pins/{scratch_cid}?replication=1&user-allocations={ids['p2']}")
    # pin_error comes and goes while the tracker retries (RetryBackoff 1 s); pin_failed stays
    wait_until(
        "the pin of missing content to fail",
        lambda: statuses(request_json(p1, "GET", f"/pins/{scratch_cid}"))[ids["p2"]] == "pin_failed",
        running,
    )
    failed = request_stream(p1, "/pins?filter=error,pin_failed")
    assert scratch_cid in {g["cid"] for g in failed}
    assert add_local(p1, lost, tmp_path, "lost.bin") == scratch_cid
    recovered = request_json(p1, "POST", f"/pins/{scratch_cid}/recover")
    assert recovered["cid"] == scratch_cid
    wait_until("the recovered pin", lambda: pinned_on(p1, scratch_cid, [ids["p2"]]), running)

    # -- expire_at: the pin leaves the pinset by itself
    short = add_local(p1, os.urandom(1000), tmp_path, "short.bin")
    request_json(p1, "POST", f"/pins/{short}?expire-in=2s&replication=1")
    wait_until("the expired pin to leave the pinset", lambda: request(p1, "GET", f"/allocations/{short}")[0] == 404, running)

    # -- unpin
    assert request_json(p1, "DELETE", f"/pins/{cid}")["cid"] == cid
    wait_until("the unpin on every peer", lambda: request(nodes["p4"], "GET", f"/allocations/{cid}")[0] == 404, running)
    assert request(p1, "DELETE", f"/pins/{cid}")[0] == 404

    # -- a killed peer shows in the status and in the alerts
    p4 = nodes["p4"]
    p4_id = ids["p4"]
    everywhere = add_local(p1, os.urandom(2000), tmp_path, "everywhere.bin")
    request_json(p1, "POST", f"/pins/{everywhere}")
    wait_until("the pin-everywhere pinned on 4 peers", lambda: pinned_on(p1, everywhere, list(ids.values())[:4]), running)
    on_p4 = add_local(p1, os.urandom(3000), tmp_path, "on_p4.bin")
    request_json(p1, "POST", f"/pins/{on_p4}?replication=1&user-allocations={p4_id}")
    wait_until("the pin on p4", lambda: pinned_on(p1, on_p4, [p4_id]), running)
    assert p4.proc is not None
    p4.proc.send_signal(signal.SIGKILL)
    p4.proc.wait()
    p4.proc = None
    running.remove(p4)
    wait_until("p4's ping alert", lambda: any(a["peer"] == p4_id and a["name"] == "ping" for a in request_json(p1, "GET", "/health/alerts")), running)
    # the alert list keeps older alerts (a late ping on a loaded machine): wait for the peer list too
    wait_until("p4 out of p1's peer list", lambda: p4_id not in {p["id"] for p in request_stream(p1, "/peers")}, running)
    # repinning is on here: after the grace period one peer re-allocates p4's pin, and it gets pinned there
    moved = wait_until("p4's pin re-allocated", lambda: [a for a in request_json(p1, "GET", f"/allocations/{on_p4}")["allocations"] if a != p4_id], running)
    wait_until("the re-allocated pin pinned", lambda: pinned_on(p1, on_p4, moved), running)

    # -- a peer added later syncs the pinset and serves the content
    p5 = nodes["p5"]
    p5.start("--bootstrap", boot)
    running.append(p5)
    want = {p["cid"] for p in request_stream(p1, "/allocations")}
    wait_until("p5 to sync the pinset", lambda: {p["cid"] for p in request_stream(p5, "/allocations")} == want, running)
    wait_until("p5 to pin the pin-everywhere", lambda: pinned_on(p5, everywhere, [p5.endpoints["cluster_peer_id"]]), running)
    with urllib.request.urlopen(f"{p5.url('gateway')}/ipfs/{car_root}", timeout=60) as resp:
        assert len(resp.read()) == 1_500_000

    # -- asyncipfscluster, unchanged, against peer 2
    pytest.importorskip("asyncipfscluster", reason="installed by the test extra (pip install -e '.[test]')")
    from asyncipfscluster import IPFSClient  # type: ignore[import-not-found]

    async def client_round_trip() -> str:
        async with IPFSClient(api_url(nodes["p2"])) as client:
            added = await client.add_bytes(b"asyncipfscluster says hello", "text/plain")
            await client.remove(added)
            return added

    added = asyncio.run(client_round_trip())
    assert request(nodes["p2"], "GET", f"/allocations/{added}")[0] == 404


def test_auth_is_required_when_configured(make_node: Any) -> None:
    node = init_peer(
        make_node,
        "auth",
        secrets.token_hex(32),
        ClusterAPI={"BasicAuthCredentials": {"admin": "s3cret"}},
    )
    node.start()
    status, _b, headers = request(node, "GET", "/id")
    assert status == 401
    assert status == 401 and headers.get_all("WWW-Authenticate")
    assert request(node, "GET", "/health")[0] == 204
    import base64

    basic = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
    assert request(node, "GET", "/id", headers=wrong)[0] == 401
    assert request_json(node, "GET", "/id", headers=basic)["peername"] == "auth"
    token = request_json(node, "POST", "/token", headers=basic)["token"]
    assert request_json(node, "GET", "/id", headers={"Authorization": f"Bearer {token}"})["peername"] == "auth"
    assert request(node, "GET", "/id", headers={"Authorization": f"Bearer {token}x"})[0] == 401
    # the pinning service API shares the credentials
    ps = node.url("pinsvc_api")
    try:
        urllib.request.urlopen(ps + "/pins", timeout=30)
        raise AssertionError("the pinning service answered without credentials")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401

    def svc(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(ps + path, data=data, method=method, headers={**basic, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    cid = node.cli("add", "-Q", "--cid-version", "1", "-", input=b"pinned through the pinning service").stdout.decode().strip()
    status, created = svc("POST", "/pins", {"cid": cid, "name": "svc-pin", "meta": {"app": "test"}})
    assert status == 202 and created["requestid"] == cid and created["pin"]["name"] == "svc-pin"
    assert created["status"] in ("queued", "pinning", "pinned")
    wait_until("the pin pinned (pinning service view)", lambda: svc("GET", f"/pins/{cid}")[1]["status"] == "pinned", [node])
    status, listed = svc("GET", "/pins?name=svc&match=partial")
    assert status == 200 and listed["count"] == 1 and listed["results"][0]["pin"]["meta"] == {"app": "test"}
    assert svc("GET", '/pins?meta={"app":"other"}')[1]["count"] == 0
    assert svc("GET", "/pins?status=failed")[1] == {"count": 0, "results": []}
    status, err = svc("GET", "/pins?limit=5000")
    assert status == 400 and err["error"]["reason"] == "BAD_REQUEST"
    assert svc("DELETE", f"/pins/{cid}")[0] == 202
    status, err = svc("GET", f"/pins/{cid}")
    assert status == 404 and err["error"]["reason"] == "NOT_FOUND"
