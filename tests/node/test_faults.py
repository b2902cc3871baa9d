"""Faults on real daemons: a peer killed while it fetches a pin, a peer frozen (SIGSTOP) while the
cluster works, and a peer whose storage is full."""

from __future__ import annotations

import io
import os
import secrets
import signal
import urllib.request
from pathlib import Path
from typing import Any

from blockstore.car import CarReader
from node_proc import start_all
from cluster_http import add_local, cluster_addr, init_peer, request_json, multipart, request, statuses, request_stream, wait_until


def _blocks(node: Any, cid: str) -> dict[bytes, bytes]:
    return {b.cid: b.data for b in CarReader(io.BytesIO(node.cli("car", "export", cid).stdout))}


def test_kill_9_during_a_fetch_and_a_frozen_peer(make_node: Any, tmp_path: Path) -> None:
    secret = secrets.token_hex(32)
    tracker = {"PinTimeout": 600}
    nodes = [init_peer(make_node, n, secret, PinTracker=tracker) for n in ("a", "b", "c")]
    a, b, c = nodes
    a.start()
    start_all([b, c], "--bootstrap", cluster_addr(a))
    wait_until("3 peers", lambda: len(request_json(a, "GET", "/id")["cluster_peers"]) == 3, nodes)
    ids = {n.path.name: n.endpoints["cluster_peer_id"] for n in nodes}

    # content nobody has yet: every peer starts fetching it and waits for a provider
    data = os.urandom(2_000_000)
    scratch = make_node("scratch")
    cid = add_local(scratch, data, tmp_path, "later.bin")
    request_json(a, "POST", f"/pins/{cid}")
    wait_until("b fetching", lambda: request_json(b, "GET", f"/pins/{cid}?local=true")["peer_map"][ids["b"]]["status"] == "pinning", nodes)

    # b is killed in the middle of its fetch and restarted: the pin is still its job
    assert b.proc is not None
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    b.proc = None
    for name in ("api", "endpoints.json"):
        (b.path / name).unlink(missing_ok=True)
    b.start("--bootstrap", cluster_addr(a))
    assert cid not in b.cli("pin", "ls").stdout.decode()  # nothing half-done shows as pinned

    # c freezes; the content appears on a: a and b pin it, the cluster keeps answering
    assert c.proc is not None
    c.proc.send_signal(signal.SIGSTOP)
    try:
        assert add_local(a, data, tmp_path, "later.bin") == cid
        for n in (a, b):
            wait_until(f"{n.path.name} pinned", lambda n=n: request_json(n, "GET", f"/pins/{cid}?local=true")["peer_map"][ids[n.path.name]]["status"] == "pinned", nodes)
        with urllib.request.urlopen(f"{b.url('gateway')}/ipfs/{cid}", timeout=30) as resp:
            assert resp.read() == data
        assert _blocks(b, cid) == _blocks(a, cid)
    finally:
        c.proc.send_signal(signal.SIGCONT)
    # c wakes up and catches up
    wait_until("c pinned", lambda: statuses(request_json(a, "GET", f"/pins/{cid}")).get(ids["c"]) == "pinned", nodes)


def test_a_full_peer_refuses_new_content_and_keeps_what_it_has(make_node: Any, tmp_path: Path) -> None:
    node = init_peer(
        make_node,
        "full",
        secrets.token_hex(32),
        Datastore={"StorageMax": 400_000},
        Cluster={"ReplicationFactorMin": 1, "ReplicationFactorMax": 1},
    )
    node.start()
    wait_until("own metrics", lambda: len(request_json(node, "GET", "/monitor/metrics/freespace")) == 1, [node])
    first = os.urandom(250_000)
    body, ctype = multipart("file", "first.bin", first)
    status, out, _h = request(node, "POST", "/add?cid-version=1", body, {"Content-Type": ctype})
    assert status == 200, out
    first_cid = [line for line in out.decode().splitlines() if line.strip()][-1]
    # once the peer's free-space metric shows the first upload, a second one that does not fit
    # in what is left is refused with the reason
    wait_until(
        "the free-space metric after the upload",
        lambda: int(request_json(node, "GET", "/monitor/metrics/freespace")[0]["value"]) < 400_000 - 250_000 + 20_000,
        [node],
    )
    body, ctype = multipart("file", "second.bin", os.urandom(250_000))
    status, out, _h = request(node, "POST", "/add?cid-version=1", body, {"Content-Type": ctype})
    assert status == 400 and b"without room" in out, out
    # what was stored before is intact
    import json

    cid = json.loads(first_cid)["cid"]
    wait_until("the first upload pinned", lambda: statuses(request_json(node, "GET", f"/pins/{cid}"))[node.endpoints["cluster_peer_id"]] == "pinned", [node])
    with urllib.request.urlopen(f"{node.url('gateway')}/ipfs/{cid}", timeout=30) as resp:
        assert resp.read() == first


def test_kill_9_during_a_multi_gib_car_upload(make_node: Any, tmp_path: Path) -> None:
    """A 4 GiB CAR streamed to the cluster API's /add; the daemon is killed once 256 MiB went in.
    After restart the repo opens as is, what was pinned before is intact, and nothing of the
    unfinished upload is left: no pin, no block."""
    import http.client
    import json

    from blockstore.car import encode_header, encode_section
    from blockstore.cid import RAW, cid_for, cid_to_str

    node = init_peer(make_node, "upload", secrets.token_hex(32), Datastore={"StorageMax": 64 * 1024**3})
    node.start()
    kept = os.urandom(300_000)
    body, ctype = multipart("file", "kept.bin", kept)
    status, out, _h = request(node, "POST", "/add?cid-version=1", body, {"Content-Type": ctype})
    assert status == 200, out
    kept_cid = [line for line in out.decode().splitlines() if line.strip()][-1]
    kept_cid = json.loads(kept_cid)["cid"]
    me = node.endpoints["cluster_peer_id"]
    wait_until("the first upload pinned", lambda: statuses(request_json(node, "GET", f"/pins/{kept_cid}"))[me] == "pinned", [node])
    before = json.loads(node.cli("repo", "stat", "--enc", "json").stdout)

    chunk = os.urandom(1024 * 1024)
    total, sent_limit = 4 * 1024**3, 256 * 1024**2
    first = cid_for(chunk, codec=RAW)
    boundary = secrets.token_hex(12)
    host, port = node.url("cluster_api").removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/add?format=car")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()

    def send(data: bytes) -> None:
        conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    send(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.car"\r\n'.encode())
    send(b"Content-Type: application/vnd.ipld.car\r\n\r\n" + encode_header([first]))
    sent = 0
    for i in range(total // len(chunk)):
        block = i.to_bytes(8, "big") + chunk[8:]  # distinct blocks
        send(encode_section(cid_for(block, codec=RAW), block))
        sent += len(block)
        if sent >= sent_limit:
            break
    assert node.proc is not None
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    node.proc = None
    conn.close()
    for name in ("api", "endpoints.json"):
        (node.path / name).unlink(missing_ok=True)

    node.start()  # the repo opens without repair
    after = json.loads(node.cli("repo", "stat", "--enc", "json").stdout)
    assert after["NumObjects"] == before["NumObjects"]  # the unfinished import was rolled back
    pins = node.cli("pin", "ls").stdout.decode()
    assert kept_cid in pins and cid_to_str(first) not in pins
    with urllib.request.urlopen(f"{node.url('gateway')}/ipfs/{kept_cid}", timeout=30) as resp:
        assert resp.read() == kept


def test_a_physically_full_disk_refuses_writes_and_keeps_what_is_stored(tmp_path: Path) -> None:
    """The repo on a 40 MiB tmpfs: adds fail with 507 "the disk is full" once LevelDB hits ENOSPC,
    what was acknowledged stays readable; a restart on the full disk refuses with the reason;
    with space again the repo opens as is and every acknowledged add is there and pinned."""
    import json
    import subprocess

    from kubo_http import call, part
    from node_proc import PinionNode

    if os.geteuid() != 0:
        import pytest

        pytest.skip("full-disk test: needs root to mount a small tmpfs; runs when the suite runs as root (as on the build machine)")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        import pytest

        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    node = PinionNode(mnt / "repo")
    try:
        node.cli("init", "--profile", "test")
        node.start("--offline")
        stored: dict[str, bytes] = {}
        refused = None
        for i in range(8):
            data = os.urandom(8 * 1024 * 1024)
            r = call(node.url(), "add", files=[part(f"f{i}.bin", data)])
            if r.status != 200:
                refused = r
                break
            stored[json.loads(r.body.decode().splitlines()[-1])["Hash"]] = data
        assert refused is not None and stored, "the 40 MiB disk never filled"
        assert refused.status == 507 and b"the disk is full" in refused.body, refused.body
        small = call(node.url(), "add", files=[part("small.txt", b"small")])
        assert small.status == 507  # LevelDB takes no more writes until reopened
        for cid, data in stored.items():
            assert call(node.url(), "cat", cid).body == data  # reads still work
        node.stop()
        for name in ("api", "endpoints.json"):
            (node.path / name).unlink(missing_ok=True)
        try:
            node.start("--offline")
            started_full = True
        except AssertionError as exc:
            started_full = False
            assert "the disk is full" in str(exc), str(exc)[-2000:]
        if started_full:  # LevelDB could reopen without writing: writes still fail cleanly
            node.stop()
        node.proc = None
        for name in ("api", "endpoints.json"):
            (node.path / name).unlink(missing_ok=True)
        subprocess.run(["mount", "-o", "remount,size=200m", str(mnt)], check=True)
        node.start("--offline")
        pins = node.cli("pin", "ls").stdout.decode()
        for cid, data in stored.items():
            assert cid in pins
            assert call(node.url(), "cat", cid).body == data
        assert call(node.url(), "add", files=[part("small.txt", b"small")]).status == 200
    finally:
        if node.proc is not None:
            node.kill()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_gc_during_a_half_fetched_pin_keeps_what_was_fetched(make_node: Any, tmp_path: Path) -> None:
    """b fetches a pin whose provider (a) has only half of the DAG; a ``repo gc`` on b meanwhile
    keeps the blocks b already fetched; once a has the rest, b's pin completes with every block."""
    import json

    from blockstore.cid import RAW, cid_to_str, codec_of

    secret = secrets.token_hex(32)
    a = init_peer(make_node, "a", secret)
    b = init_peer(make_node, "b", secret, PinTracker={"PinTimeout": 600}, Gateway={"FetchTimeout": 600})
    a.start()
    b.start("--bootstrap", cluster_addr(a))
    wait_until("2 peers", lambda: len(request_json(a, "GET", "/id")["cluster_peers"]) == 2, [a, b])
    b_id = b.endpoints["cluster_peer_id"]

    data = os.urandom(8 * 262_144)
    (tmp_path / "half.bin").write_bytes(data)
    cid = a.cli("add", "-Q", "--cid-version", "1", "--pin", "false", str(tmp_path / "half.bin")).stdout.decode().split()[-1]
    full = _blocks(a, cid)
    leaves = sorted(cid_to_str(c) for c in full if codec_of(c) == RAW)
    assert len(leaves) == 8
    gone, present = leaves[:4], leaves[4:]
    for leaf in gone:
        a.cli("block", "rm", leaf)

    request_json(a, "POST", f"/pins/{cid}?replication-min=1&replication-max=1&user-allocations={b_id}")
    wait_until(
        "b holding the half a has",
        lambda: all(b.cli("block", "stat", c, check=False).returncode == 0 for c in [cid, *present]),
        [a, b],
    )
    assert statuses(request_json(b, "GET", f"/pins/{cid}?local=true"))[b_id] == "pinning"
    b.cli("repo", "gc")
    for c in [cid, *present]:  # a block fetched for a pin in progress survives GC
        assert b.cli("block", "stat", c, check=False).returncode == 0, f"GC removed {c} of the pin being fetched"

    (tmp_path / "again.bin").write_bytes(data)
    assert a.cli("add", "-Q", "--cid-version", "1", "--pin", "false", str(tmp_path / "again.bin")).stdout.decode().split()[-1] == cid
    wait_until("b pinned", lambda: statuses(request_json(b, "GET", f"/pins/{cid}?local=true"))[b_id] == "pinned", [a, b])
    assert _blocks(b, cid) == full
    b.cli("repo", "gc")
    assert _blocks(b, cid) == full
    assert json.loads(b.cli("repo", "stat", "--enc", "json").stdout)["NumObjects"] >= len(full)


def _pin_burst(node: Any, cids: list[str]) -> None:
    """POST /pins/{cid} for every CID, on one keep-alive connection to ``node``'s REST API."""
    import http.client

    host, port = node.url("cluster_api").removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        for cid in cids:
            conn.request("POST", f"/pins/{cid}?name=burst")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, f"{cid}: {resp.status} {body[:200]!r}"
    finally:
        conn.close()


def test_a_pin_burst_on_two_peers_with_trusted_peers_configured(make_node: Any) -> None:
    """Both peers trust exactly each other (not "*") and both pin 400 CIDs at once over the REST
    API: every pin lands in both pinsets and is pinned on both peers."""
    import json
    import threading

    from blockstore.cid import IDENTITY, RAW, make_cid, make_multihash
    from blockstore.cid import cid_to_str as to_str
    from node import config as cfgmod

    secret = secrets.token_hex(32)
    a, b = (init_peer(make_node, n, secret) for n in ("a", "b"))
    ids = [json.loads((n.path / cfgmod.CONFIG_FILE).read_text())["Cluster"]["PeerID"] for n in (a, b)]
    for n in (a, b):
        path = n.path / cfgmod.CONFIG_FILE
        cfg = json.loads(path.read_text())
        cfg["Cluster"]["TrustedPeers"] = ids
        path.write_text(json.dumps(cfg))
    a.start()
    b.start("--bootstrap", cluster_addr(a))
    wait_until("2 peers", lambda: len(request_json(a, "GET", "/id")["cluster_peers"]) == 2, [a, b])
    cids = {
        n.path.name: [to_str(make_cid(1, RAW, make_multihash(IDENTITY, b"%s burst %d" % (n.path.name.encode(), i)))) for i in range(400)]
        for n in (a, b)
    }
    errors: list[BaseException] = []

    def burst(n: Any) -> None:
        try:
            _pin_burst(n, cids[n.path.name])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=burst, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    everything = set(cids["a"]) | set(cids["b"])

    def pinned_here(n: Any) -> set[str]:
        status, data, _h = request(n, "GET", "/pins?local=true&filter=pinned")
        assert status in (200, 204), data[:300]
        return {json.loads(line)["cid"] for line in data.decode().splitlines() if line.strip()}

    for n in (a, b):
        wait_until(f"all 800 pins in {n.path.name}'s pinset", lambda n=n: {p["cid"] for p in request_stream(n, "/allocations")} == everything, [a, b], timeout=180)
        wait_until(f"all 800 pinned on {n.path.name}", lambda n=n: pinned_here(n) == everything, [a, b], timeout=180)
