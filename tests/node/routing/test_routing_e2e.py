"""Content routing end to end (issue 16): real ``pinion`` daemons forming a DHT on loopback.

Three daemons, no cluster: B is a DHT server; A (holds a file) and C are DHT clients that
bootstrap from B only. C pins the CID without any ``swarm connect`` to A and without being
connected to it: routing finds A (the record A announced to B through the provide queue),
C dials it and fetches over bitswap; the bytes match.
A CID nobody provides fails with the no-provider message. ``Routing.Type none`` (the test
profile) starts no routing at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.request
from typing import Any

from blockstore.cid import RAW, cid_to_str, make_cid

DEADLINE = 120.0


def sha256_multihash(data: bytes) -> bytes:
    return b"\x12\x20" + hashlib.sha256(data).digest()


def _wait(cond: Any, what: str, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(node: Any, name: str) -> float:
    with urllib.request.urlopen(f"{node.url('metrics')}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else -1.0


def _dht_node(make_node: Any, name: str, mode: str, bootstrap: list[str], **extra: str) -> Any:
    node = make_node(name)
    node.cli("config", "set", "Routing.Type", mode)
    node.cli("config", "set", "--json", "Routing.Bootstrap", json.dumps(bootstrap))
    for key, value in extra.items():
        node.cli("config", "set", key.replace("_", "."), value)
    node.start()
    return node


def _swarm_addr(node: Any) -> str:
    return next(a for a in node.endpoints["swarm"] if "/ip4/127.0.0.1/" in a)


def test_pin_found_through_the_dht_without_connecting_to_the_holder(make_node: Any, tmp_path: Any) -> None:
    # B is the DHT server; A and C are DHT clients (never in a routing table, so no lookup
    # ever dials them): C reaches A only through the provider search of its fetch
    b = _dht_node(make_node, "b", "dhtserver", [])
    a = _dht_node(make_node, "a", "dhtclient", [_swarm_addr(b)])
    c = _dht_node(make_node, "c", "dhtclient", [_swarm_addr(b)], Gateway_FetchTimeout="8")
    a_id = a.endpoints["peer_id"]
    for node in (a, c):
        _wait(lambda n=node: _metric(n, "pinion_routing_table_size") >= 1, f"{node.path.name}'s DHT table")

    data = os.urandom(300_000)  # several blocks
    src = tmp_path / "file.bin"
    src.write_bytes(data)
    cid = a.cli("add", "-Q", str(src)).stdout.decode().strip()
    # the pin enqueued every block of the file; the reprovider announced them
    _wait(lambda: json.loads(a.cli("stats", "provide", "--enc", "json").stdout)["provided_total"] >= 1, "A's announcement")

    # C was never told about A (no swarm connect, not in its bootstrap list): the DHT finds it
    assert a_id not in c.cli("swarm", "peers").stdout.decode()
    found = c.cli("routing", "findprovs", cid, timeout=60).stdout.decode().split()
    assert a_id in found

    c.cli("pin", "add", cid, timeout=180)
    assert c.cli("cat", cid).stdout == data
    # the provider search dialled A; that connection shows in swarm peers
    assert a_id in c.cli("swarm", "peers").stdout.decode()
    assert _metric(c, "pinion_routing_provider_dials_total") >= 1

    # nobody provides this CID: the fetch ends with the no-provider message
    missing_cid = cid_to_str(make_cid(1, RAW, sha256_multihash(os.urandom(1000))))
    res = c.cli("pin", "add", missing_cid, check=False, timeout=180)
    assert res.returncode == 1
    assert "no provider was found" in res.stderr.decode(), res.stderr.decode()
    assert _metric(c, "pinion_routing_searches_without_provider_total") >= 1

    # the cluster pin tracker: its fetch falls back to routing, and the pin's error says why
    other = cid_to_str(make_cid(1, RAW, sha256_multihash(os.urandom(1000))))
    api = c.url("cluster_api")
    urllib.request.urlopen(urllib.request.Request(f"{api}/pins/{other}", method="POST"), timeout=30).close()

    def tracker_error() -> str:
        with urllib.request.urlopen(f"{api}/pins/{other}?local=true", timeout=30) as resp:
            info = json.loads(resp.read())
        return next((p["error"] for p in info["peer_map"].values() if p.get("error")), "")

    assert "no provider was found" in _wait(tracker_error, "the pin tracker's error")


def test_routing_none_makes_no_routing(make_node: Any) -> None:
    node = make_node("none")
    assert node.cli("config", "get", "Routing.Type").stdout.decode().strip() == "none"
    assert node.cli("bootstrap", "list").stdout.decode().strip() == ""
    node.start()
    assert _metric(node, "pinion_routing_active") == 0
    res = node.cli("routing", "findprovs", "bafkqaaa", check=False)
    assert res.returncode == 1 and "Routing.Type is none" in res.stderr.decode()
    ident = json.loads(node.cli("id").stdout)
    assert "/ipfs/kad/1.0.0" not in ident["Protocols"]
    assert node.cli("swarm", "peers").stdout.decode().strip() == ""
