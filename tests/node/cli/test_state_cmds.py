"""``pinion state export|import|cleanup`` on offline repos, and GC keeping the CRDT blocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import zstandard

from blockstore.cid import cid_for, cid_to_str
from cluster.pin import Pin


def _pins(n: int) -> list[Pin]:
    return [
        Pin(
            cid=cid_for(f"content {i}".encode()),
            name=f"file-{i}",
            replication_factor_min=1,
            replication_factor_max=2,
            allocations=("12D3KooWPeerA",),
            metadata={"k": str(i)},
            timestamp=1_700_000_000_000_000_000 + i,
        )
        for i in range(n)
    ]


def _ndjson(pins: list[Pin]) -> str:
    return "".join(json.dumps(p.to_json()) + "\n" for p in pins)


def _exported(text: str) -> dict[str, dict[str, Any]]:
    out = {}
    for line in text.splitlines():
        obj = json.loads(line)
        out[obj["cid"]] = obj
    return out


def _err(res: Any) -> str:
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_export_of_an_empty_repo_is_empty(make_node: Any) -> None:
    node = make_node("a")
    res = node.cli("state", "export")
    assert res.stdout == b""


def test_import_then_export_round_trips(make_node: Any, tmp_path: Path) -> None:
    node = make_node("a")
    pins = _pins(25)
    src = tmp_path / "pins.ndjson"
    src.write_text(_ndjson(pins))
    res = node.cli("state", "import", str(src))
    assert res.stdout.decode().strip() == "imported 25 pins"
    got = _exported(node.cli("state", "export").stdout.decode())
    assert got == {cid_to_str(p.cid): p.to_json() for p in pins}
    # importing again changes nothing visible
    node.cli("state", "import", str(src))
    assert _exported(node.cli("state", "export").stdout.decode()) == got


def test_zstd_export_imports_into_another_repo(make_node: Any, tmp_path: Path) -> None:
    a, b = make_node("a"), make_node("b")
    src = tmp_path / "pins.ndjson"
    src.write_text(_ndjson(_pins(40)))
    a.cli("state", "import", str(src))
    out = tmp_path / "state.ndjson.zst"
    a.cli("state", "export", "-o", str(out))
    raw = out.read_bytes()
    assert raw[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
    assert zstandard.ZstdDecompressor().stream_reader(raw).read().decode() == a.cli("state", "export").stdout.decode()
    assert not (tmp_path / "state.ndjson.zst.part").exists()
    res = b.cli("state", "import", str(out))
    assert res.stdout.decode().strip() == "imported 40 pins"
    assert b.cli("state", "export").stdout == a.cli("state", "export").stdout


def test_plain_export_to_file(make_node: Any, tmp_path: Path) -> None:
    node = make_node("a")
    src = tmp_path / "pins.ndjson"
    src.write_text(_ndjson(_pins(3)))
    node.cli("state", "import", str(src))
    out = tmp_path / "out.ndjson"
    node.cli("state", "export", "-o", str(out))
    assert _exported(out.read_text()) == _exported(src.read_text())


def test_bad_line_is_a_one_line_error_naming_it(make_node: Any, tmp_path: Path) -> None:
    node = make_node("a")
    src = tmp_path / "bad.ndjson"
    src.write_text(_ndjson(_pins(2)) + '{"cid": "not-a-cid"}\n')
    res = node.cli("state", "import", str(src), check=False)
    assert res.returncode == 1
    msg = _err(res)
    assert msg.startswith(f"Error: {src}: line 3:")
    # the lines before the bad one are imported
    assert len(_exported(node.cli("state", "export").stdout.decode())) == 2


def test_not_json_and_missing_file_and_bad_zstd(make_node: Any, tmp_path: Path) -> None:
    node = make_node("a")
    src = tmp_path / "junk.ndjson"
    src.write_text("hello\n")
    res = node.cli("state", "import", str(src), check=False)
    assert res.returncode == 1 and "line 1" in _err(res)

    res = node.cli("state", "import", str(tmp_path / "absent.ndjson"), check=False)
    assert res.returncode == 1 and "No such file" in _err(res)

    bad = tmp_path / "bad.zst"
    bad.write_bytes(b"not zstd at all")
    res = node.cli("state", "import", str(bad), check=False)
    assert res.returncode == 1 and "zstd" in _err(res)


def test_state_refuses_a_running_daemon(make_node: Any, tmp_path: Path) -> None:
    node = make_node("a")
    node.start("--offline")
    for args in (("export",), ("import", str(tmp_path / "x")), ("cleanup", "--force")):
        res = node.cli("state", *args, check=False)
        assert res.returncode == 1
        assert "daemon is running" in _err(res)


def test_cleanup_needs_force_then_clears_and_gc_frees_deltas(make_node: Any, tmp_path: Path) -> None:
    node = make_node("a")
    src = tmp_path / "pins.ndjson"
    src.write_text(_ndjson(_pins(10)))
    node.cli("state", "import", str(src))
    # the delta blocks are the only blocks: GC keeps them while they are the pinset
    assert node.cli("repo", "gc", "-q").stdout.decode().strip() == "removed 0 blocks"
    assert len(_exported(node.cli("state", "export").stdout.decode())) == 10

    res = node.cli("state", "cleanup", check=False)
    assert res.returncode == 1 and "--force" in _err(res)
    assert len(_exported(node.cli("state", "export").stdout.decode())) == 10

    res = node.cli("state", "cleanup", "--force")
    assert res.stdout.decode().startswith("removed ")
    assert node.cli("state", "export").stdout == b""
    removed = node.cli("repo", "gc", "-q").stdout.decode().strip()
    assert removed.startswith("removed ") and removed != "removed 0 blocks"


def test_state_import_and_export_show_progress_on_a_terminal(pinion_node: Any, tmp_path: Path) -> None:
    src = tmp_path / "pins.ndjson"
    src.write_text(_ndjson(_pins(2500)))
    status, screen = pinion_node.cli_on_tty("state", "import", str(src))
    assert status == 0 and "importing" in screen, screen
    status, screen = pinion_node.cli_on_tty("state", "export", "-o", str(tmp_path / "out.ndjson"))
    assert status == 0 and "exporting" in screen, screen
    assert len(_exported((tmp_path / "out.ndjson").read_text())) == 2500
    # not a terminal: no progress output at all
    res = pinion_node.cli("state", "export", "-o", str(tmp_path / "again.ndjson"))
    assert b"exporting" not in res.stderr
