"""The daemon process: files it writes, servers it runs, clean shutdown, metrics."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest

from kubo_http import call, part
from node_proc import ROOT, PinionNode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_start_write_files_stop_and_remove_them(pinion_node: PinionNode, sig: int) -> None:
    ep = pinion_node.start()
    api = (pinion_node.path / "api").read_text()
    assert api == ep["rpc"]
    assert api.startswith("/ip4/127.0.0.1/tcp/") and not api.endswith("/0")
    assert set(ep) >= {"rpc", "metrics", "peer_id"}
    assert ep["peer_id"].startswith("12D3")
    assert call(pinion_node.url(), "version").json()["Version"]
    assert pinion_node.stop(sig) == 0
    assert not (pinion_node.path / "api").exists()
    assert not (pinion_node.path / "endpoints.json").exists()
    # LevelDB was closed cleanly: the repo opens again (offline command works).
    out = pinion_node.cli("repo", "stat", "--enc", "json")
    assert b"NumObjects" in out.stdout


def test_second_daemon_on_a_locked_repo_fails_cleanly(daemon: PinionNode) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "node.cli", "daemon"], env=daemon.env, capture_output=True, timeout=60, cwd=ROOT
    )
    assert res.returncode == 1
    assert b"Error:" in res.stderr
    # the running daemon's files are untouched
    assert (daemon.path / "api").exists()


def test_unfinished_import_is_rolled_back_on_start(pinion_node: PinionNode) -> None:
    from blockstore.cid import cid_for, cid_to_str
    from node.repo import Repo

    repo = Repo.open(pinion_node.path)
    journal = repo.store.new_journal()
    orphan = cid_for(b"left behind by a crash")
    repo.store.put(orphan, b"left behind by a crash", journal=journal)
    repo.close()
    pinion_node.start()
    log = pinion_node.log.read_text()
    assert "rolled back 1 blocks" in log
    r = call(pinion_node.url(), "block/stat", cid_to_str(orphan))
    assert r.status == 500 and "could not find" in r.json()["Message"]


def test_metrics_endpoint(daemon: PinionNode) -> None:
    base = daemon.url()
    call(base, "add", files=[part("a.txt", b"hello metrics")])
    call(base, "version", method="GET")
    text = urllib.request.urlopen(daemon.url("metrics") + "/metrics", timeout=30).read().decode()
    assert "pinion_blockstore_blocks 1.0" in text
    assert 'pinion_rpc_requests_total{endpoint="add",status="200"} 1.0' in text
    assert 'pinion_rpc_requests_total{endpoint="version",status="405"} 1.0' in text
    assert 'pinion_upload_bytes_total{endpoint="add"}' in text
    assert "pinion_http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text


def test_gateway_is_mounted_and_counted(daemon: PinionNode) -> None:
    cid = call(daemon.url(), "add", files=[part("hello.txt", b"hello gateway")]).lines()[-1]["Hash"]
    with urllib.request.urlopen(f"{daemon.url('gateway')}/ipfs/{cid}", timeout=30) as r:
        assert r.read() == b"hello gateway"
        assert r.headers["Etag"] == f'"{cid}"'
    text = urllib.request.urlopen(daemon.url("metrics") + "/metrics", timeout=30).read().decode()
    assert 'pinion_gateway_requests_total{status="200"} 1.0' in text
    assert "pinion_gateway_bytes_out_total" in text
    assert "pinion_blocks_get_total" in text


def test_offline_flag(pinion_node: PinionNode) -> None:
    ep = pinion_node.start("--offline")
    assert ep["offline"] is True
    assert "swarm" not in ep and "cluster" not in ep
    assert "offline" in pinion_node.log.read_text()
    r = call(pinion_node.url(), "swarm/peers")
    assert r.status == 500 and "offline" in r.json()["Message"]
    ident = call(pinion_node.url(), "id").json()
    assert ident["ID"] == ep["peer_id"] and ident["Addresses"] == []


def test_swarm_connect_and_peers(make_node) -> None:  # type: ignore[no-untyped-def]
    a, b = make_node("a"), make_node("b")
    ea, eb = a.start(), b.start()
    assert ea["swarm"] and ea["cluster"] and ea["cluster_peer_id"] != ea["peer_id"]
    ident = call(a.url(), "id").json()
    assert ident["ID"] == ea["peer_id"]
    assert ident["Addresses"] == ea["swarm"]
    assert call(a.url(), "swarm/peers").json() == {"Peers": None}
    r = call(a.url(), "swarm/connect", eb["swarm"][0])
    assert r.status == 200, r.body
    assert r.json() == {"Strings": [f"connect {eb['peer_id']} success"]}
    peers = call(a.url(), "swarm/peers").json()["Peers"]
    assert [p["Peer"] for p in peers] == [eb["peer_id"]]
    from node.p2p.identity import generate_identity

    nobody, _key = generate_identity()
    bad = call(a.url(), "swarm/connect", "/ip4/127.0.0.1/tcp/1/p2p/" + nobody)
    assert bad.status == 500 and "failure" in bad.json()["Message"]
    bad = call(a.url(), "swarm/connect", "not-a-multiaddr")
    assert bad.status in (400, 500) and bad.json()["Type"] == "error"


def test_sigusr1_dumps_every_task_and_the_daemon_goes_on(pinion_node: PinionNode) -> None:
    """``kill -USR1``: every asyncio task and the libp2p thread's trio tasks, with the frames
    they wait in, are written to the log (as Go's goroutine dump, without stopping)."""
    import time

    pinion_node.start()
    assert pinion_node.proc is not None
    pinion_node.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while "=== end of task dump ===" not in pinion_node.log.read_text():
        assert time.monotonic() < deadline, pinion_node.log.read_text()[-3000:]
        time.sleep(0.1)
    dump = pinion_node.log.read_text().split("=== pinion task dump: asyncio ===", 1)[1]
    asyncio_part, trio_part = dump.split("=== pinion task dump: trio (libp2p thread) ===")
    assert "asyncio task task-dump: dump_tasks" in asyncio_part
    assert "node/daemon.py:" in asyncio_part  # frames of the tasks
    assert "trio task <init>" in trio_part
    assert "HostHandle" in trio_part and "libp2p/" in trio_part  # the hosts' tasks and their frames
    assert call(pinion_node.url(), "version").json()["Version"]  # still serving
    assert pinion_node.stop() == 0
