"""Two real daemons exchange content over bitswap: gateway, cat, pin add, CLI swarm commands."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from kubo_http import call
from node_proc import PinionNode
from test_state_cli import _under_tty


def _get(url: str, timeout: float = 60) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _set_fetch_timeout(node: PinionNode, seconds: int) -> None:
    cfg_path = node.path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["Gateway"]["FetchTimeout"] = seconds
    cfg_path.write_text(json.dumps(cfg))


def test_content_moves_between_daemons_over_bitswap(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = make_node("a"), make_node("b")
    _set_fetch_timeout(b, 3)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1_500_000))  # 6 leaves + a root with kubo's defaults
    small = tmp_path / "small.txt"
    small.write_bytes(b"served over bitswap\n")
    ea = a.start()
    eb = b.start()
    big_cid = a.cli("add", "-Q", str(big)).stdout.decode().strip()
    small_cid = a.cli("add", "-Q", str(small)).stdout.decode().strip()

    # CLI swarm commands go through the daemon
    out = b.cli("swarm", "connect", ea["swarm"][0]).stdout.decode()
    assert f"connect {ea['peer_id']} success" in out
    assert ea["peer_id"] in b.cli("swarm", "peers").stdout.decode()
    assert json.loads(b.cli("id").stdout)["ID"] == eb["peer_id"]

    # the gateway of b fetches what only a has
    status, body = _get(f"{b.url('gateway')}/ipfs/{small_cid}")
    assert status == 200 and body == small.read_bytes()
    # cat through b's RPC fetches the missing blocks of a multi-block file
    assert b.cli("cat", big_cid).stdout == big.read_bytes()
    # pin add on b fetches the whole DAG first, then pins it
    b.cli("pin", "add", big_cid)
    assert big_cid in b.cli("pin", "ls").stdout.decode()
    # with progress=true, kubo's stream: {"Progress": blocks} lines while fetching, then {"Pins": [...]}
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(1_200_000))
    other_cid = a.cli("add", "-Q", str(other)).stdout.decode().strip()
    req = urllib.request.Request(f"{b.url()}/api/v0/pin/add?arg={other_cid}&progress=true", method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        lines = [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]
    assert lines[-1] == {"Pins": [other_cid]}
    counts = [line["Progress"] for line in lines[:-1]]
    assert counts and counts == sorted(counts) and counts[-1] >= 5  # 5 leaves + a root
    # and the CLI shows it as a progress bar on a terminal
    third = tmp_path / "third.bin"
    third.write_bytes(os.urandom(1_100_000))
    third_cid = a.cli("add", "-Q", str(third)).stdout.decode().strip()
    status, screen = _under_tty(b, "pin", "add", third_cid)
    assert status == 0 and "fetching" in screen, screen
    assert third_cid in b.cli("pin", "ls").stdout.decode()
    a.stop()
    # b keeps serving what it pinned with a gone
    status, body = _get(f"{b.url('gateway')}/ipfs/{big_cid}")
    assert status == 200 and body == big.read_bytes()
    # content nobody has: 504 after the fetch timeout, not a hang
    nobody = a.cli("add", "-Q", "--pin=false", input=b"only a had this, and a is down").stdout
    status, body = _get(f"{b.url('gateway')}/ipfs/{nobody.decode().strip()}", timeout=30)
    assert status == 504, body
    metrics = _get(b.url("metrics") + "/metrics")[1].decode()
    assert "pinion_bitswap_blocks_received_total" in metrics


def test_swarm_commands_need_a_daemon(pinion_node: PinionNode) -> None:
    r = pinion_node.cli("swarm", "peers", check=False)
    assert r.returncode == 1 and b"online mode" in r.stderr and r.stderr.count(b"\n") == 1
    ident = json.loads(pinion_node.cli("id").stdout)
    assert ident["ID"].startswith("12D3KooW") and ident["PublicKey"].startswith("CAES")
