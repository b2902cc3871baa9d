"""``PinTracker.MaxPinQueueSize`` on a real daemon: a full pin queue answers 429 on the REST API,
the pinning service API and the kubo RPC's ``pin/add``; an upload still gets in (the queue's last
tenth is kept for uploads) and is pinned at once, ahead of pins of content nobody has."""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from blockstore.cid import cid_for, cid_to_str
from cluster_http import init_peer, request_json, multipart, request, statuses, wait_until

MAX = 50


def _metric(node: Any, name: str) -> float:
    with urllib.request.urlopen(f"{node.url('metrics')}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")


def _post(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, data=body if body is not None else b"", method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


@pytest.mark.timeout(300)
def test_a_full_pin_queue_answers_429_and_uploads_still_go_first(make_node: Any) -> None:
    node = init_peer(make_node, "a", secrets.token_hex(32), PinTracker={"MaxPinQueueSize": MAX, "PinTimeout": 600})
    node.start()
    me = node.endpoints["cluster_peer_id"]
    unreachable = [cid_to_str(cid_for(os.urandom(32))) for _ in range(2 * MAX + 1)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda c: request(node, "POST", f"/pins/{c}"), unreachable))
    accepted = [c for c, (status, _b, _h) in zip(unreachable, answers) if status == 200]
    refused = [(body, headers) for status, body, headers in answers if status == 429]
    assert len(accepted) + len(refused) == len(unreachable), {a[0] for a in answers}
    # at most the queue (less the uploads' tenth) plus what the 10 workers took out of it
    assert MAX - MAX // 10 <= len(accepted) <= MAX - MAX // 10 + 10, len(accepted)
    message = json.loads(refused[0][0])["message"]
    assert "pin queue is full" in message and f"MaxPinQueueSize is {MAX}" in message, message
    assert refused[0][1]["Retry-After"]
    assert _metric(node, "ipfscluster_pins_pin_queued") <= MAX
    first_refused = next(c for c in unreachable if c not in accepted)
    assert request(node, "GET", f"/allocations/{first_refused}")[0] == 404  # a refused pin is not in the pinset

    # the pinning service API and the kubo RPC say the same
    status, body, headers = _post(
        f"{node.url('pinsvc_api')}/pins", json.dumps({"cid": cid_to_str(cid_for(b"one more"))}).encode(), {"Content-Type": "application/json"}
    )
    error = json.loads(body)["error"]
    assert status == 429 and error["reason"] == "TOO_MANY_REQUESTS" and "pin queue is full" in error["details"] and headers["Retry-After"], body
    status, body, _h = _post(f"{node.url('rpc')}/api/v0/pin/add?arg={cid_to_str(cid_for(b'and another'))}")
    assert status == 429 and b"pin queue is full" in body, body

    # an upload is admitted into the reserved tenth and pinned at once, ahead of the queue
    precious = os.urandom(300_000)
    body, ctype = multipart("file", "precious.bin", precious)
    status, out, _h = request(node, "POST", "/add?cid-version=1&stream-channels=false", body, {"Content-Type": ctype})
    assert status == 200, out
    cid = json.loads(out)[-1]["cid"]
    wait_until("the upload pinned", lambda: statuses(request_json(node, "GET", f"/pins/{cid}"))[me] == "pinned", [node])
    assert statuses(request_json(node, "GET", f"/pins/{accepted[-1]}"))[me] == "pin_queued"  # the queue did not move
    # once pinned here, the upload marker goes: the local pin keeps the content from now on
    wait_until("the upload released", lambda: _metric(node, "pinion_uploads_kept") == 0, [node])
    node.cli("repo", "gc")
    assert node.cli("cat", cid).stdout == precious
