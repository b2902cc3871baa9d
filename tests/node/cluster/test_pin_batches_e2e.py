"""Concurrent ``POST /pins/{cid}`` on a real two-peer cluster: pins written in batches, each answer its own.

Requests that arrive together travel in one batch (node/cluster/coalesce.py): a pin that
cannot be placed or names an unpinned ``pin-update`` gets its own 400, the others are
acknowledged, and every acknowledged pin reaches the other peer's pinset."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from blockstore.cid import IDENTITY, RAW, cid_for, cid_to_str, make_cid, make_multihash
from cluster_http import cluster_addr, init_peer, request, request_stream, wait_until


def _cid(i: int) -> str:
    return cid_to_str(make_cid(1, RAW, make_multihash(IDENTITY, b"batched %d" % i)))  # held without fetching


@pytest.mark.timeout(300)
def test_concurrent_pins_each_get_their_own_answer_and_reach_the_other_peer(make_node: Any) -> None:
    secret = secrets.token_hex(32)
    p1, p2 = (init_peer(make_node, name, secret) for name in ("p1", "p2"))
    p1.start()
    p2.start("--bootstrap", cluster_addr(p1))
    wait_until("2 peers in p1's peer set", lambda: len(request_stream(p1, "/peers")) == 2, [p1, p2])
    wait_until("p1 allocating to both peers", lambda: request(p1, "POST", f"/pins/{_cid(-1)}?replication=2")[0] == 200, [p1, p2])

    unpinned = cid_to_str(cid_for(b"never pinned"))
    requests: list[tuple[str, str]] = []  # (cid, query) in submission order
    for i in range(96):
        if i % 12 == 5:
            requests.append((_cid(i), "replication=3"))  # two peers: cannot be placed
        elif i % 12 == 9:
            requests.append((_cid(i), f"pin-update={unpinned}&name=upd{i}"))
        else:
            requests.append((_cid(i), f"replication=1&name=n{i}"))
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: request(p1, "POST", f"/pins/{r[0]}?{r[1]}"), requests))

    good = set()
    for (cid, query), (status, body, _h) in zip(requests, answers):
        if query.startswith("replication=3"):
            assert status == 400 and f"not enough peers to allocate {cid}" in json.loads(body)["message"], body
        elif query.startswith("pin-update"):
            assert status == 400 and f"pin-update: {unpinned} is not pinned" in json.loads(body)["message"], body
        else:
            assert status == 200, body
            pin = json.loads(body)
            assert pin["cid"] == cid and pin["name"] == query.split("name=")[1] and len(pin["allocations"]) == 1
            good.add(cid)
    assert len(good) == 80

    def held_by(node: Any) -> set[str]:
        return {p["cid"] for p in request_stream(node, "/allocations")} - {_cid(-1)}

    wait_until("every acknowledged pin in p2's pinset", lambda: held_by(p2) == good, [p1, p2])
    assert held_by(p1) == good  # and nothing refused was written
