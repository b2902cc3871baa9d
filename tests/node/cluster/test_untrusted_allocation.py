"""Allocation and trust on real daemons: a member that holds the cluster secret but is not in
``Cluster.TrustedPeers`` gets no allocations from its metrics (unless the operator opts in), and
a replication the cluster cannot reach says how many peers there are and how many are needed."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from blockstore.cid import cid_for, cid_to_str
from node import config as cfgmod
from cluster_http import cluster_addr, init_peer, request_json, request, wait_until


def _set(node: Any, section: str, **values: Any) -> None:
    path = node.path / cfgmod.CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg[section].update(values)
    path.write_text(json.dumps(cfg))


def _both_allocation_metrics(node: Any) -> bool:
    """Whether ``node`` holds both peers' metrics of every ``AllocateBy`` name (tag:group, freespace):
    a peer lacking one of them is no candidate, whatever its trust."""
    return all(len(request_json(node, "GET", f"/monitor/metrics/{name}")) == 2 for name in ("tag:group", "freespace"))


@pytest.mark.timeout(300)
def test_an_untrusted_member_with_huge_storage_gets_no_allocations(make_node: Any) -> None:
    secret = secrets.token_hex(32)
    a = init_peer(make_node, "a", secret)
    b = init_peer(make_node, "b", secret, Datastore={"StorageMax": 10**16})  # "announces" 1e16 bytes free
    a_id = json.loads((a.path / cfgmod.CONFIG_FILE).read_text())["Cluster"]["PeerID"]
    _set(a, "Cluster", TrustedPeers=[a_id])  # a trusts itself only; b trusts everyone
    a.start()
    b.start("--bootstrap", cluster_addr(a))
    nodes = [a, b]
    b_id = b.endpoints["cluster_peer_id"]
    wait_until("both peers' allocation metrics on a", lambda: _both_allocation_metrics(a), nodes)

    cid = cid_to_str(cid_for(b"replication one"))
    pin = request_json(a, "POST", f"/pins/{cid}?replication=1")
    assert pin["allocations"] == [a_id]  # not the untrusted peer, however much room it announces
    status, body, _h = request(a, "POST", f"/pins/{cid_to_str(cid_for(b'named'))}?replication=1&user-allocations={b_id}")
    assert status == 400 and b"not trusted" in body and b"AllocateToUntrustedPeers" in body, body

    # item 16: more copies than peers -> how many peers exist and how many are needed
    status, body, _h = request(a, "POST", f"/pins/{cid_to_str(cid_for(b'hundred'))}?replication=100")
    message = json.loads(body)["message"]
    assert status == 400, body
    assert "100 peers needed" in message and "the cluster has 2 peers" in message, message
    assert "1 of them untrusted" in message, message

    # the operator opts in: b's metrics count again
    a.stop()
    _set(a, "Cluster", AllocateToUntrustedPeers=True)
    a.start("--bootstrap", cluster_addr(b))  # a listens on a new port: it joins b
    wait_until("both peers' allocation metrics on a", lambda: _both_allocation_metrics(a), nodes)
    other = cid_to_str(cid_for(b"replication one, opted in"))
    assert request_json(a, "POST", f"/pins/{other}?replication=1")["allocations"] == [b_id]
