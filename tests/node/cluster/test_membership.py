"""Cluster membership on real daemons: a peer restarted after a burst is heard at once, a peer
back on a new address rejoins, and ``pinion ctl peers rm`` removes a peer.

``--profile test`` listens on port 0 everywhere, so every restart moves a daemon to new ports:
each restart below is also an address change.
"""

from __future__ import annotations

import http.client
import secrets
from typing import Any

import pytest

from blockstore.cid import IDENTITY, RAW, cid_to_str, make_cid, make_multihash
from cluster_http import cluster_addr, init_peer, request_json, request, wait_until

#: a pin announced by a peer reaches the others in about a second; py-libp2p's seen-messages
#: cache (120 s) and gossipsub back-off (60 s) are what held a restarted peer's updates before
PROMPT = 60.0


def _inline(data: bytes) -> str:
    """An identity CID: every peer holds its content at once (these tests are about membership)."""
    return cid_to_str(make_cid(1, RAW, make_multihash(IDENTITY, data)))


def _pinset(node: Any) -> set[str]:
    status, data, _h = request(node, "GET", "/allocations")
    assert status in (200, 204), data[:300]
    import json

    return {json.loads(line)["cid"] for line in data.decode().splitlines() if line.strip()}


def _burst(node: Any, cids: list[str]) -> None:
    """Pin ``cids`` through the internal pinset route, on one keep-alive connection."""
    host, port = node.url().split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        for cid in cids:
            conn.request("POST", f"/api/v0/pinset/add?arg={cid}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:200]
    finally:
        conn.close()


def _peers(node: Any) -> set[str]:
    return set(request_json(node, "GET", "/id")["cluster_peers"])


@pytest.mark.timeout(300)
def test_a_peer_restarted_after_a_burst_is_heard_at_once(make_node: Any) -> None:
    """Issue 14 item 13: after a burst and a normal restart, a new pin took 176 s to arrive
    (sequence numbers reused, and the restarted peer kept in gossipsub back-off)."""
    secret = secrets.token_hex(32)
    a, b = init_peer(make_node, "a", secret), init_peer(make_node, "b", secret)
    nodes = [a, b]
    a.start()
    b.start("--bootstrap", cluster_addr(a))
    burst = [_inline(b"burst %d" % i) for i in range(300)]
    _burst(b, burst)
    wait_until("the burst on a", lambda: _pinset(a) >= set(burst), nodes)
    b.stop()
    b.start()  # no --bootstrap: b finds a in its peer book (and b is on new ports)
    after = _inline(b"after the restart")
    request_json(b, "POST", f"/pins/{after}")
    wait_until("b's new pin on a", lambda: after in _pinset(a), nodes, timeout=PROMPT)
    back = _inline(b"from a to the restarted b")
    request_json(a, "POST", f"/pins/{back}")
    wait_until("a's new pin on b", lambda: back in _pinset(b), nodes, timeout=PROMPT)


@pytest.mark.timeout(400)
def test_a_peer_on_a_new_address_rejoins_and_peers_rm_removes_it(make_node: Any) -> None:
    """Issue 14 item 14: b never dials anyone (a bootstrapped to it); b comes back on a new
    address, then a does too: both find each other again from their peer books. Then
    ``pinion ctl peers rm`` removes b from a (also once b is gone from the peer set)."""
    secret = secrets.token_hex(32)
    a, b = init_peer(make_node, "a", secret), init_peer(make_node, "b", secret)
    nodes = [a, b]
    b.start()
    a.start("--bootstrap", cluster_addr(b))
    ids = {n.path.name: n.endpoints["cluster_peer_id"] for n in nodes}
    wait_until("2 peers", lambda: _peers(a) == set(ids.values()), nodes)
    first = _inline(b"before the moves")
    request_json(a, "POST", f"/pins/{first}")
    wait_until("the first pin on b", lambda: first in _pinset(b), nodes)

    old = cluster_addr(b)
    b.stop()
    b.start()
    assert cluster_addr(b) != old
    wait_until("b back in a's peer set", lambda: ids["b"] in _peers(a), nodes, timeout=PROMPT)
    # and now a moves too: it can only find b at the address it learnt when b came back
    a.stop()
    a.start()
    wait_until("a back in b's peer set", lambda: ids["a"] in _peers(b), nodes, timeout=PROMPT)
    for src, dst in ((a, b), (b, a)):
        cid = _inline(b"after the moves, from " + src.path.name.encode())
        request_json(src, "POST", f"/pins/{cid}")
        wait_until(f"{src.path.name}'s pin on {dst.path.name}", lambda cid=cid, dst=dst: cid in _pinset(dst), nodes, timeout=PROMPT)

    # peers rm: refused for ourselves, for a malformed ID and for a peer nobody knows
    assert request(a, "DELETE", f"/peers/{ids['a']}")[0] == 500
    assert request(a, "DELETE", "/peers/not-a-peer-id")[0] == 400
    unknown = "12D3KooWGkBnatNhBF8KSjD6tsmoGA8aX1eeSKqK2EvxwNBeodWc"
    status, body, _h = request(a, "DELETE", f"/peers/{unknown}")
    assert status == 404 and b"not a known cluster peer" in body, body
    # b is gone for good: out of a's peer set, but a still redials it; rm drops it (was a 404)
    b.stop()
    wait_until("b out of a's peer set", lambda: ids["b"] not in _peers(a), [a])
    ctl = a.cli("ctl", "--host", a.endpoints["cluster_api"], "peers", "rm", ids["b"], check=False)
    assert (ctl.returncode, ctl.stdout, ctl.stderr) == (0, b"", b""), ctl  # as ipfs-cluster-ctl: silent on success
    status, body, _h = request(a, "DELETE", f"/peers/{ids['b']}")
    assert status == 404, body  # removed: a knows it no more
    assert ids["b"] not in {p["id"] for p in _json_lines(a, "/peers")}
    assert not any(m["peer"] == ids["b"] for m in request_json(a, "GET", "/monitor/metrics/ping"))

    # a removed peer that is still running comes back only by reconnecting itself (b knows a)
    b.start()
    wait_until("b reconnecting to a", lambda: ids["b"] in _peers(a), nodes, timeout=PROMPT)


def _json_lines(node: Any, path: str) -> list[Any]:
    import json

    status, data, _h = request(node, "GET", path)
    assert status in (200, 204), data[:300]
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
