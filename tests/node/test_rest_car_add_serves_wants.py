"""A CAR added through the cluster REST API (``/add?format=car``) is announced to bitswap:
a connected peer that already wants one of its blocks is served at once.

Peer b asks its gateway for a block nobody has yet; b's want reaches a (connected), which
answers DONT_HAVE and keeps the want. Then the CAR holding that block is uploaded to a's
REST API. b's gateway fetch times out after 8 s, shorter than b's bitswap rebroadcast
(10 s): b gets the block only if a's import told bitswap about the new blocks
(:meth:`node.core.CoreAPI.import_cars`), not from b asking again.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from node_proc import PinionNode

#: b's gateway fetch timeout: under bitswap's 10 s want rebroadcast
FETCH_TIMEOUT = 8


def _get(url: str, timeout: float = 60) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _metric(node: PinionNode, name: str) -> float:
    _status, body = _get(node.url("metrics") + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _wait(what: str, cond: Any, deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_rest_car_add_serves_a_connected_peers_pending_want(make_node: Any, tmp_path: Path) -> None:
    a, b = make_node("a"), make_node("b")
    cfg_path = b.path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["Gateway"]["FetchTimeout"] = FETCH_TIMEOUT
    cfg_path.write_text(json.dumps(cfg))
    scratch = make_node("scratch")  # offline: makes the CAR, never started
    data = os.urandom(200_000)  # one raw leaf with CIDv1: the root is the wanted block
    cid = scratch.cli("add", "-Q", "--cid-version", "1", "--pin=false", input=data).stdout.decode().strip()
    car = scratch.cli("car", "export", cid).stdout

    ea = a.start()
    b.start()
    b.cli("swarm", "connect", ea["swarm"][0])
    got: dict[str, Any] = {}

    def fetch() -> None:
        got["answer"] = _get(f"{b.url('gateway')}/ipfs/{cid}?format=raw", timeout=120)

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    _wait("b wants the block", lambda: _metric(b, "pinion_bitswap_wantlist_size") >= 1)

    boundary = secrets.token_hex(12)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.car"\r\n'
        "Content-Type: application/vnd.ipld.car\r\n\r\n"
    ).encode() + car + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        a.url("cluster_api") + "/add?format=car&no-pin=true",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        out = [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]
    assert out[-1]["cid"] == cid

    t.join(120)
    assert not t.is_alive()
    status, block = got["answer"]
    assert status == 200, block[:300]
    assert block == data
