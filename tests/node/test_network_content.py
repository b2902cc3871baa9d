"""Two real daemons exchange content over bitswap: gateway, cat, pin add, DAG commands, CLI swarm commands."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from kubo_http import call

from blockstore.cid import RAW, cid_for, cid_to_str
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


def _tree(root: Path, seed: int) -> Path:
    """A directory of its own blocks: a 2-leaf file and a subdirectory with a small file."""
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "note.txt").write_bytes(b"tree %d " % seed + os.urandom(64))
    return root


def _tar_members(data: bytes) -> dict[str, bytes | None]:
    """name -> bytes of each member (None for a directory); headers carry a time, so only this is compared."""
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()}  # type: ignore[union-attr]


def test_dag_commands_on_content_only_a_peer_has_answer_as_on_that_peer(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """refs, dag/stat, get, ls, dag/export and dag/resolve through b of DAGs only a stores: b fetches
    what the command needs (on its event loop, node/fetching.py) and answers what a answers; a root
    nobody has is one error line of refs, the other root's refs still listed."""
    a, b = make_node("a"), make_node("b")
    _set_fetch_timeout(b, 10)
    ea = a.start()
    b.start()
    b.cli("swarm", "connect", ea["swarm"][0])
    commands = {
        "refs -r": ("refs", {"recursive": "true"}),
        "refs": ("refs", {}),
        "refs -r --unique --edges": ("refs", {"recursive": "true", "unique": "true", "edges": "true"}),
        "refs --max-depth=2": ("refs", {"recursive": "true", "max-depth": "2"}),
        "dag/stat": ("dag/stat", {}),
        "dag/export": ("dag/export", {}),
        "ls": ("ls", {}),
        "get": ("get", {}),
    }
    # one tree per command, so that each command meets a DAG b has none of
    roots = {name: a.cli("add", "-r", "-Q", str(_tree(tmp_path / f"t{i}", i))).stdout.decode().strip() for i, name in enumerate(commands)}
    for name, (command, opts) in commands.items():
        on_b = call(b.url(), command, roots[name], opts=opts)
        on_a = call(a.url(), command, roots[name], opts=opts)
        assert on_b.status == on_a.status == 200, (name, on_b.body[:300])
        if command == "get":
            assert _tar_members(on_b.body) == _tar_members(on_a.body)
        else:
            assert on_b.body == on_a.body, name

    resolved = a.cli("add", "-r", "-Q", str(_tree(tmp_path / "resolve", 99))).stdout.decode().strip()
    path = f"/ipfs/{resolved}/sub/note.txt"
    assert call(b.url(), "dag/resolve", path).json() == call(a.url(), "dag/resolve", path).json()

    # a root nobody has: its error line after the other root's refs, once b gave up on it
    kept = a.cli("add", "-r", "-Q", str(_tree(tmp_path / "kept", 100))).stdout.decode().strip()
    nobody = cid_to_str(cid_for(os.urandom(32), codec=RAW))
    on_b = call(b.url(), "refs", kept, nobody, opts={"recursive": "true"}).lines()
    assert on_b[:-1] == call(a.url(), "refs", kept, opts={"recursive": "true"}).lines()
    assert on_b[-1]["Ref"] == "" and nobody in on_b[-1]["Err"], on_b[-1]
