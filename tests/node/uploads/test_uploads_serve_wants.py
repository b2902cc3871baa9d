"""Blocks written through the kubo RPC (``add``, ``block/put``, ``dag/put``) and the cluster REST
``/add`` (UnixFS, and a CAR with ``?format=car``) are announced to bitswap: a connected peer that
already wants one of them is served at once.

Peer b asks its gateway for five blocks nobody has yet; b's wants reach a (connected), which
answers DONT_HAVE and keeps them. Then a stores each block through one of the five upload
endpoints. b's gateway fetches time out after 8 s, shorter than b's bitswap rebroadcast (10 s):
b gets a block only if a's upload told bitswap about it (``CoreAPI.announce``,
``CoreAPI.import_cars``), not from b asking again.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import dag_cbor
from multiformats import CID, multihash

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


def _wait(what: str, cond: Callable[[], bool], deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _post_file(url: str, data: bytes, filename: str = "f", ctype: str = "application/octet-stream") -> list[Any]:
    """POST ``data`` as one multipart file part; the NDJSON answer's lines."""
    boundary = secrets.token_hex(12)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {ctype}\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


def _raw_cid(data: bytes) -> str:
    return str(CID("base32", 1, "raw", multihash.digest(data, "sha2-256")))


def test_rpc_and_rest_uploads_serve_a_connected_peers_pending_wants(make_node: Any) -> None:
    a, b = make_node("a"), make_node("b")
    cfg_path = b.path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["Gateway"]["FetchTimeout"] = FETCH_TIMEOUT
    cfg_path.write_text(json.dumps(cfg))

    # one block each, so the wanted block is the upload's root: a raw leaf (CIDv1) under 256 KiB
    rpc_file, rest_file, raw_block, car_file = (os.urandom(n) for n in (200_000, 200_000, 1000, 200_000))
    scratch = make_node("scratch")  # offline: makes the CAR, never started
    car_root = scratch.cli("add", "-Q", "--cid-version", "1", "--pin=false", input=car_file).stdout.decode().strip()
    car = scratch.cli("car", "export", car_root).stdout
    node = {"n": secrets.token_hex(16)}
    cbor_block = dag_cbor.encode(node)
    expected = {
        "rpc add": (_raw_cid(rpc_file), rpc_file),
        "rest add": (_raw_cid(rest_file), rest_file),
        "rpc block/put": (_raw_cid(raw_block), raw_block),
        "rpc dag/put": (str(CID("base32", 1, "dag-cbor", multihash.digest(cbor_block, "sha2-256"))), cbor_block),
        "rest car add": (car_root, car_file),
    }

    ea = a.start()
    b.start()
    b.cli("swarm", "connect", ea["swarm"][0])
    answers: dict[str, tuple[int, bytes]] = {}

    def fetch(what: str, cid: str) -> None:
        answers[what] = _get(f"{b.url('gateway')}/ipfs/{cid}?format=raw", timeout=120)

    threads = [threading.Thread(target=fetch, args=(w, cid), daemon=True) for w, (cid, _) in expected.items()]
    for t in threads:
        t.start()
    _wait("b wants the five blocks", lambda: _metric(b, "pinion_bitswap_wantlist_size") >= len(expected))

    rpc = a.url("rpc") + "/api/v0"
    out = _post_file(rpc + "/add?cid-version=1&pin=false", rpc_file)
    assert out[-1]["Hash"] == expected["rpc add"][0]
    out = _post_file(a.url("cluster_api") + "/add?cid-version=1&no-pin=true", rest_file)
    assert out[-1]["cid"] == expected["rest add"][0]
    out = _post_file(rpc + "/block/put", raw_block)
    assert out[-1]["Key"] == expected["rpc block/put"][0]
    out = _post_file(rpc + "/dag/put", json.dumps(node).encode())
    assert out[-1]["Cid"]["/"] == expected["rpc dag/put"][0]
    out = _post_file(a.url("cluster_api") + "/add?format=car&no-pin=true", car, "x.car", "application/vnd.ipld.car")
    assert out[-1]["cid"] == expected["rest car add"][0]

    for t in threads:
        t.join(120)
        assert not t.is_alive()
    not_served = {w: (status, body[:200]) for w, (status, body) in answers.items() if status != 200}
    assert not not_served, f"not served before b's want rebroadcast: {not_served}"
    for what, (_cid, data) in expected.items():
        assert answers[what][1] == data, what
