"""kubo's own JavaScript client (kubo-rpc-client 7.1.0, from the npm registry) drives Pinion's /api/v0.

The client is the one applications use against kubo: it adds a directory from
disk with globSource (part names like "/site/a.txt"), reads the presence of
``Error`` in block/rm lines as a failure, parses pin/ls streams, follows refs
and CAR round trips. Every answer here is what it gets from kubo for the same
calls. Skipped (with the reason) where Node >= 20 or npm is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dag_cbor
import pytest
from multiformats import CID

from blockstore.cid import DAG_CBOR, cid_for, cid_to_str

from .helia import HeliaError
from .kubo_js import install, node_problem, run_driver

from node_proc import PinionNode  # noqa: E402


@pytest.fixture(scope="session")
def kubo_client_installed() -> None:
    problem = node_problem()
    if problem is not None:
        pytest.skip(f"kubo-rpc-client interop: {problem}")
    try:
        install()
    except HeliaError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def pinion(tmp_path: Path) -> Iterator[PinionNode]:
    node = PinionNode(tmp_path / "repo")
    node.cli("init", "--profile", "test")
    try:
        node.start("--offline")
        yield node
    finally:
        node.kill()


def test_kubo_rpc_client_cannot_tell_pinion_from_kubo(kubo_client_installed: None, pinion: PinionNode, tmp_path: Path) -> None:
    tree = tmp_path / "site"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(700_000))
    offline = PinionNode(tmp_path / "offline")
    offline.cli("init", "--profile", "test")
    expected_root = offline.cli("add", "-r", "-Q", str(tree)).stdout.decode().strip()

    out = run_driver(pinion.url() + "/api/v0", "tree", str(tree))
    assert out["ok"], out
    added = {e["path"]: e["cid"] for e in out["added"]}
    assert set(added) == {"site/a.txt", "site/sub/b.bin", "site/sub", "site"}
    root = out["root"]
    assert root == expected_root  # kubo's CIDs for the tree added from disk
    assert out["cat"] == "alpha"
    assert out["ls"] == [{"name": "a.txt", "type": "file", "size": 5}, {"name": "sub", "type": "dir", "size": 0}]

    block = out["blockCid"]
    assert out["blockRm"] == [{"cid": block, "error": None}]  # no "Error" field on success
    assert out["blockRmAgain"] == [{"cid": block, "error": f"ipld: could not find {block}"}]
    assert out["blockRmPinned"] == [{"cid": root, "error": "pinned: recursive"}]

    assert [(p["type"], p["name"]) for p in out["pinLsNamed"]] == [("direct", "lonely")]
    assert out["pinLsIndirect"] == [{"cid": added["site/a.txt"], "type": f"indirect through {root}"}]
    assert set(out["pinLsTypeIndirect"]) >= {added["site/a.txt"], added["site/sub"], added["site/sub/b.bin"]}
    assert out["directOverRecursive"] == f"pin: {root} already pinned recursively"
    assert out["pinRmAgain"] == "not pinned or pinned indirectly"

    refs = out["refs"]
    assert all(r["err"] == "" for r in refs) and refs[:2] == [{"ref": added["site/a.txt"], "err": ""}, {"ref": added["site/sub"], "err": ""}]
    assert {added["site/sub/b.bin"]} <= {r["ref"] for r in refs} and len(refs) == 6  # 3 chunks of b.bin
    assert out["refsUnique"][0] == f"{root} -> {added['site/a.txt']}"
    assert out["refsLocal"] >= 7

    assert out["car"]["length"] > 700_000
    assert out["imported"] == [{"cid": root, "pinErrorMsg": ""}]

    node = {"hello": "world", "tree": CID.decode(root), "n": [1, 2, 3]}
    assert out["dagPut"] == cid_to_str(cid_for(dag_cbor.encode(node), codec=DAG_CBOR))
    assert out["dagGet"] == {"hello": "world", "tree": root, "n": [1, 2, 3]}
    assert out["dagResolve"] == {"cid": out["dagPut"], "remainderPath": "/n/1"}
    assert out["dagResolveLink"] == {"cid": added["site/a.txt"], "remainderPath": ""}
    assert out["tar"]["firstName"].rstrip("/") == root and out["tar"]["length"] > 700_000


def test_kubo_rpc_client_sees_kubos_errors(kubo_client_installed: None, pinion: PinionNode) -> None:
    """A command error is HTTP 500 with kubo's JSON: the client shows its Message (a 404 would read as
    'no such endpoint' and lose it)."""
    missing = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    out = run_driver(pinion.url() + "/api/v0", "error", missing)
    assert out["ok"], out
    assert out["status"] == 500
    assert out["caught"] == f"block was not found locally (offline): ipld: could not find {missing}"
