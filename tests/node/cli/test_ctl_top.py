"""``pinion ctl`` and ``pinion top`` as an operator runs them, against three real daemons."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from node_proc import ROOT, start_all
from cluster_http import cluster_addr, init_peer, wait_until


def _ctl(node: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return node.cli("ctl", "--host", node.endpoints["cluster_api"], *args, check=check)


def _lines(res: subprocess.CompletedProcess[bytes]) -> list[Any]:
    return [json.loads(line) for line in res.stdout.decode().splitlines() if line.strip()]


def _screen(node: Any, *args: str, keys: bytes = b"", wait_for: str = "", timeout: float = 60) -> tuple[int, str]:
    """Run ``pinion ARGS`` on a pseudo-terminal (stdin and stdout), send ``keys`` once ``wait_for`` shows."""
    leader, follower = pty.openpty()
    env = {**node.env, "COLUMNS": "160", "LINES": "60", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", *args], stdin=follower, stdout=follower, stderr=follower, env=env, cwd=ROOT)
    os.close(follower)
    screen = b""
    sent = not keys
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:
                    break
                if not data:
                    break
                screen += data
            if not sent and wait_for.encode() in screen:
                os.write(leader, keys)
                sent = True
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=10), screen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)


def test_ctl_and_top_on_three_peers(make_node: Any, tmp_path: Path) -> None:
    secret = secrets.token_hex(32)
    nodes = [init_peer(make_node, f"c{i}", secret, Cluster={"Tags": {"group": g}}) for i, g in enumerate("xyz")]
    nodes[0].start()
    start_all(nodes[1:], "--bootstrap", cluster_addr(nodes[0]))
    a = nodes[0]
    wait_until("3 peers", lambda: len(_lines(_ctl(a, "--enc", "json", "peers", "ls"))) == 3, nodes)

    ident = _lines(_ctl(a, "--enc", "json", "id"))[0]
    assert ident["peername"] == "c0"
    assert "Sees 2 other peers" in _ctl(a, "id").stdout.decode()

    # add a file and a directory with replication 2, wait until pinned
    f = tmp_path / "hello.txt"
    f.write_bytes(os.urandom(100_000))
    d = tmp_path / "site"
    (d / "sub").mkdir(parents=True)
    (d / "index.html").write_text("<h1>hi</h1>")
    (d / "sub" / "a.txt").write_text("a")
    added = _lines(_ctl(a, "--enc", "json", "add", "--replication", "2", "--name", "hello", "--cid-version", "1", str(f)))
    cid = added[-1]["cid"]
    assert len(added[-1]["allocations"]) == 2
    dir_added = _lines(_ctl(a, "--enc", "json", "add", "-r", "--replication", "2", str(d)))
    assert [x["name"] for x in dir_added][-1] == "site" and all(len(x["allocations"]) == 2 for x in dir_added)
    status = _lines(_ctl(a, "--enc", "json", "pin", "add", "--replication", "2", "--wait", "--wait-timeout", "90", cid))[0]
    pinned = [p for p, i in status["peer_map"].items() if i["status"] == "pinned"]
    assert sorted(pinned) == sorted(added[-1]["allocations"])

    # pin ls / status / allocations / metrics, text and json
    assert cid in _ctl(a, "pin", "ls").stdout.decode()
    assert {p["cid"] for p in _lines(_ctl(a, "--enc", "json", "pin", "ls"))} >= {cid, dir_added[-1]["cid"]}
    text = _ctl(a, "status", cid).stdout.decode()
    assert "pinned" in text and "remote" in text
    assert "freespace" in _ctl(a, "health", "metrics").stdout.decode()
    assert len(_lines(_ctl(a, "--enc", "json", "health", "metrics", "freespace"))[0]) == 3

    # pinion top: one-shot (not a terminal), then live on a pseudo-terminal, q quits
    once = a.cli("top", "--once", "--host", a.endpoints["cluster_api"], "--metrics", a.endpoints["metrics"]).stdout.decode()
    for name in ("c0", "c1", "c2", "group=x", "pinned", "CRDT height"):
        assert name in once, once
    code, screen = _screen(
        a, "top", "--host", a.endpoints["cluster_api"], "--metrics", a.endpoints["metrics"], "--interval", "0.5",
        keys=b"q", wait_for="Pins across the cluster",
    )
    assert code == 0 and "Peers" in screen and "c2" in screen, screen[-2000:]

    # state export, then import into the pinset through the bulk route
    exported = tmp_path / "pins.ndjson"
    _ctl(a, "state", "export", "-o", str(exported))
    lines = exported.read_text().splitlines()
    assert {json.loads(line)["cid"] for line in lines} == {p["cid"] for p in _lines(_ctl(a, "--enc", "json", "pin", "ls"))}
    extra = tmp_path / "more.ndjson"
    from blockstore.cid import IDENTITY, RAW, cid_to_str, make_cid, make_multihash

    new_cids = [cid_to_str(make_cid(1, RAW, make_multihash(IDENTITY, b"bulk %d" % i))) for i in range(2500)]
    extra.write_text("".join(json.dumps({"cid": c, "name": f"bulk-{i}", "replication_factor_min": 1, "replication_factor_max": 1}) + "\n" for i, c in enumerate(new_cids)))
    assert "imported 2500 pins" in _ctl(nodes[1], "state", "import", str(extra)).stdout.decode()
    # imported on c1, listed on c0 once c1's pinset delta has reached it (announced asynchronously)
    def all_listed() -> dict[str, Any] | None:
        ls = {p["cid"]: p for p in _lines(_ctl(a, "--enc", "json", "pin", "ls"))}
        return ls if set(new_cids) <= set(ls) else None

    listed = wait_until("the imported pins listed on c0", all_listed, nodes)
    assert len(listed[new_cids[7]]["allocations"]) == 1
    bad = tmp_path / "bad.ndjson"
    bad.write_text(json.dumps({"cid": new_cids[0]}) + "\n" + "{not json\n")
    res = _ctl(a, "state", "import", str(bad), check=False)
    assert res.returncode == 1 and "line 2" in res.stderr.decode()

    # unpin with --wait; errors are one line and exit 1
    _ctl(a, "pin", "rm", "--wait", "--wait-timeout", "90", cid)
    assert cid not in {p["cid"] for p in _lines(_ctl(a, "--enc", "json", "pin", "ls"))}
    res = _ctl(a, "pin", "rm", cid, check=False)
    assert res.returncode == 1 and res.stderr.decode().count("\n") == 1 and "not pinned" in res.stderr.decode()
    res = a.cli("ctl", "--host", "/ip4/127.0.0.1/tcp/1", "id", check=False)
    assert res.returncode == 1 and "cannot reach the cluster API" in res.stderr.decode()
