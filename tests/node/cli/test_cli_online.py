"""The CLI talks to a running daemon (through ``$PINION_PATH/api``) exactly as it works offline."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from node_proc import PinionNode

SIMPLE_CAR = Path(__file__).resolve().parents[2].joinpath("fixtures", "go-car-testdata/cmd/car/testdata/inputs/simple-unixfs.car")
SIMPLE_ROOT = "QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"


def _run_scenario(node: PinionNode, tree: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    out["add"] = node.cli("add", "-r", str(tree)).stdout
    root = out["add"].split()[-2].decode()
    out["add_stdin"] = node.cli("add", "-q", "--cid-version", "1", input=b"from stdin").stdout
    out["cat"] = node.cli("cat", f"{root}/b/big.bin", "-o", "10", "-l", "1000").stdout
    out["ls"] = node.cli("ls", root).stdout
    out["pin_ls_indirect"] = b"\n".join(sorted(node.cli("pin", "ls", "-t", "indirect").stdout.splitlines()))
    direct = node.cli("pin", "add", "-r=false", root, check=False)  # kubo's rule: no direct pin over a recursive one
    out["pin_direct_over_recursive"] = bytes([direct.returncode]) + direct.stderr
    out["car_import"] = node.cli("car", "import", "--stats", str(SIMPLE_CAR)).stdout
    out["car_export"] = node.cli("car", "export", root).stdout
    out["block_put"] = node.cli("block", "put", input=b"a block").stdout
    cid = out["block_put"].decode().strip()
    out["block_get"] = node.cli("block", "get", cid).stdout
    out["block_stat"] = node.cli("block", "stat", cid).stdout
    out["pin_add"] = node.cli("pin", "add", "--name", "my block", cid).stdout
    out["pin_ls"] = b"\n".join(sorted(node.cli("pin", "ls").stdout.splitlines()))
    out["pin_rm"] = node.cli("pin", "rm", cid).stdout
    out["gc"] = b"\n".join(sorted(node.cli("repo", "gc").stdout.splitlines()))
    out["block_rm_missing"] = node.cli("block", "get", cid, check=False).returncode.to_bytes(1, "big")
    stat = node.cli("repo", "stat").stdout.splitlines()
    out["repo_stat"] = b"\n".join(line for line in stat if line.split()[0] in (b"NumObjects:", b"DataSize:"))
    return out


def test_cli_same_online_and_offline(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree = tmp_path / "tree"
    (tree / "b").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "b" / "big.bin").write_bytes(os.urandom(700_000))
    (tree / ".hidden").write_bytes(b"not added without -H")
    offline, online = make_node("offline"), make_node("online")
    online.start("--offline")
    on = _run_scenario(online, tree)
    off = _run_scenario(offline, tree)
    assert (online.path / "api").exists()  # the daemon was used, not the repo
    for key in off:
        assert on[key] == off[key], key
    assert SIMPLE_ROOT.encode() in on["car_import"]
    assert on["pin_ls_indirect"].count(b" indirect") == 6  # a.txt, b/, big.bin and its 3 chunks
    assert on["pin_direct_over_recursive"].startswith(b"\x01Error: pin: ") and on["pin_direct_over_recursive"].count(b"\n") == 1
    assert on["cat"] == (tree / "b" / "big.bin").read_bytes()[10:1010]


def test_cli_errors_from_the_daemon_are_one_line(daemon: PinionNode) -> None:
    r = daemon.cli("cat", "QmULKig5Fxrs2sC4qt9nNduucXfb92AFYQ6Hi3YRqDmrYC", check=False)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("Error: ") and r.stderr.count(b"\n") == 1
    r = daemon.cli("pin", "rm", "QmULKig5Fxrs2sC4qt9nNduucXfb92AFYQ6Hi3YRqDmrYC", check=False)
    assert r.returncode == 1 and b"Error:" in r.stderr


def test_after_kill_9_the_cli_runs_offline_with_one_line_saying_so(pinion_node: PinionNode) -> None:
    """Issue 14 item 15: the api file a SIGKILLed daemon leaves behind made every command fail."""
    node = pinion_node
    node.start("--offline")
    cid = node.cli("add", "-Q", "--cid-version", "1", input=b"added online").stdout.decode().strip()
    assert node.proc is not None
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    node.proc = None
    assert (node.path / "api").exists() and (node.path / "endpoints.json").exists()

    r = node.cli("cat", cid, check=False)
    assert (r.returncode, r.stdout) == (0, b"added online"), r.stderr
    note = r.stderr.decode()
    assert note.count("\n") == 1 and "not running" in note and "offline" in note, note
    assert not (node.path / "api").exists() and not (node.path / "endpoints.json").exists()
    r = node.cli("pin", "ls")
    assert cid.encode() in r.stdout and r.stderr == b""  # the stale file is gone: no note again
    assert node.cli("state", "export").returncode == 0

    node.start("--offline")  # and the daemon starts again over it
    r = node.cli("cat", cid)
    assert r.stdout == b"added online" and r.stderr == b""


def test_a_stale_api_file_without_a_daemon_is_removed_even_when_garbage(pinion_node: PinionNode) -> None:
    for content in ("/ip4/127.0.0.1/tcp/1", "not a multiaddr"):
        (pinion_node.path / "api").write_text(content)
        r = pinion_node.cli("repo", "stat", check=False)
        assert r.returncode == 0 and b"NumObjects" in r.stdout, r.stderr
        assert r.stderr.count(b"\n") == 1 and b"offline" in r.stderr
        assert not (pinion_node.path / "api").exists()


def test_a_live_daemon_whose_api_does_not_answer_is_an_error_not_offline(daemon: PinionNode) -> None:
    """LevelDB's lock says a process holds the repo: the CLI must not open it, nor go offline."""
    api = daemon.path / "api"
    real = api.read_text()
    api.write_text("/ip4/127.0.0.1/tcp/1")
    try:
        for args in (("repo", "stat"), ("state", "export")):
            r = daemon.cli(*args, check=False)
            assert r.returncode == 1, r
            assert r.stderr.startswith(b"Error: ") and r.stderr.count(b"\n") == 1, r.stderr
            assert b"does not answer" in r.stderr, r.stderr
        assert api.exists()  # not ours to remove: the daemon is alive
    finally:
        api.write_text(real)
    assert daemon.cli("repo", "stat").stderr == b""
