"""blockstore/layout.py: every key namespace of the repo database declared once, unchanged on disk, never overlapping."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import blockstore.layout as layout
from bitswap.routing import provide_queue
from bitswap.routing.providers_store import ProviderStore
from blockstore.cid import RAW, make_cid
from blockstore.db import FORMAT_VERSION, open_db
from blockstore.pins import RECURSIVE, Pins
from blockstore.store import BlockStore
from cluster import tracker
from cluster.crdt import layout as crdt_layout
from node import health
from node.p2p import peerstore, seqno

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("blockstore", "bitswap", "cluster", "node")
LAYOUT = "blockstore/layout.py"

#: the on-disk prefixes of repos written so far: changing one makes existing repos unreadable
TODAY = {
    "NS_BLOCKS": b"b/",
    "NS_META": b"m/",
    "NS_PINS": b"p/",
    "NS_JOURNAL": b"j/",
    "NS_SCRATCH": b"v/",
    "NS_UPLOADS": b"u/",
    "NS_GC_MARK": b"g/",
    "NS_ROUTING": b"r/",
    "NS_PROVIDE": b"q/",
    "NS_CRDT": b"c/",
    "NS_TRACKER": b"t/",
    "NS_NODE": b"n/",
}


def test_prefixes_are_the_bytes_repos_were_written_with() -> None:
    assert {ns.name: ns.prefix for ns in layout.NAMESPACES} == TODAY
    assert {name: getattr(layout, name) for name in TODAY} == TODAY


def test_keys_inside_the_namespaces_are_unchanged() -> None:
    assert (tracker.R, tracker.Q, tracker.LQ, tracker.U, tracker.E, tracker.P, tracker.C, tracker.SEQ) == (
        b"t/r/", b"t/q/", b"t/l/", b"t/u/", b"t/e/", b"t/p/", b"t/c/", b"t/s",
    )  # fmt: skip
    L = crdt_layout
    assert (L.VALUE, L.ELEMENT, L.TOMB, L.INDEX, L.HEAD, L.PROCESSED, L.BLOCK, L.QUEUE, L.PENDING) == (
        b"c/v/", b"c/e/", b"c/t/", b"c/i/", b"c/h/", b"c/b/", b"c/k/", b"c/q/", b"c/p/",
    )  # fmt: skip
    assert (L.DIRTY, L.SNAPSHOT, L.LOADING, L.SCRATCH, L.COUNT, L.DELTAS, L.BATCHES) == (
        b"c/d", b"c/s", b"c/l", b"c/x/", b"c/n/count", b"c/n/deltas", b"c/n/batches",
    )  # fmt: skip
    q = provide_queue
    assert (q.NEW, q.RETRY, q.STATE, q.COUNT, q.SEQ) == (b"q/n/", b"q/r/", b"q/s", b"q/c/", b"q/seq")
    assert (peerstore.PEERS_PREFIX, seqno.SEQNO_PREFIX, health.PROBE_KEY) == (
        b"n/peers/", b"n/pubsub-seqno/", b"m/health-probe",
    )  # fmt: skip


def test_a_repo_holds_its_keys_under_todays_prefixes(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    try:
        data = b"layout"
        cid = make_cid(1, RAW, bytes([0x12, 0x20]) + hashlib.sha256(data).digest())
        BlockStore(db).put(cid, data)
        Pins(db).add(cid, RECURSIVE)
        ProviderStore(db).add(b"\x12\x20" + b"\x01" * 32, b"\x00\x24" + b"\x02" * 36, [], now=1.0)
        peerstore.PeerBook(db, "swarm").remember("12D3KooWtest", "/ip4/127.0.0.1/tcp/4001")
        keys = [k for k in db.iterator(include_value=False)]
        assert db.get(b"m/format") == FORMAT_VERSION
        assert db.get(b"b/" + cid[2:]) is not None  # blocks are keyed by multihash
        assert db.get(b"p/" + cid) is not None
        assert any(k.startswith(b"r/p/") for k in keys) and any(k.startswith(b"r/e/") for k in keys)
        assert any(k.startswith(b"n/peers/swarm/") for k in keys)
        owners = [ns for k in keys for ns in layout.NAMESPACES if k.startswith(ns.prefix)]
        assert len(owners) == len(keys)  # every key is in exactly one declared namespace
    finally:
        db.close()


def test_namespaces_are_declared_once_and_never_overlap() -> None:
    names = [ns.name for ns in layout.NAMESPACES]
    prefixes = [ns.prefix for ns in layout.NAMESPACES]
    assert len(set(names)) == len(names) and len(set(prefixes)) == len(prefixes)
    for a in prefixes:
        assert a, "empty prefix"
        for b in prefixes:
            assert a == b or not b.startswith(a), f"{a!r} is a prefix of {b!r}"
    for ns in layout.NAMESPACES:
        assert ns.layer in layout.LAYERS and getattr(layout, ns.name) == ns.prefix
        for module in ns.module.split(", "):
            assert (ROOT / module).is_file(), module
    declared = {name for name in vars(layout) if name.startswith("NS_")}
    assert declared == set(names)


def _sources() -> list[tuple[str, ast.Module]]:
    out = []
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(p.relative_to(ROOT))
            out.append((rel, ast.parse(p.read_text(), rel)))
    return out


def _namespace_problems(rel: str, tree: ast.Module) -> list[str]:
    """Where ``tree`` declares or uses a key prefix that blockstore/layout.py does not declare."""
    if rel == LAYOUT:
        return []
    problems = []
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    layer = rel.split("/")[0]
    owners = {ns.name: ns.layer for ns in layout.NAMESPACES}
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        # a namespace constant bound anywhere but by an import from blockstore.layout
        if isinstance(node, ast.Name) and node.id.startswith("NS_") and isinstance(node.ctx, ast.Store):
            problems.append(f"{where}: {node.id} assigned outside {LAYOUT}")
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("NS_"):
                    module = node.module or ""
                    if module != "blockstore.layout" and not (layer == "blockstore" and module == "layout" and node.level == 1):
                        problems.append(f"{where}: {alias.name} imported from {module or '.'}, not blockstore.layout")
                    if alias.asname:
                        problems.append(f"{where}: {alias.name} renamed")
        # a namespace used by a lower layer than its owner
        if isinstance(node, ast.Name) and node.id in owners:
            if layout.LAYERS.index(layer) < layout.LAYERS.index(owners[node.id]):
                problems.append(f"{where}: {node.id} belongs to {owners[node.id]}, used by {layer}")
        # a namespace-shaped literal (b"x/") that is not a sub-prefix appended to a namespace
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes) and re.fullmatch(rb"[A-Za-z0-9]/", node.value):
            parent = parents.get(node)
            if not (isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Add) and parent.right is node):
                problems.append(f"{where}: key prefix {node.value!r} not declared in {LAYOUT}")
        # a database key that starts with a literal instead of a declared namespace
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "put", "delete", "iterator", "prefixed_db"):
                keys = list(node.args[:1]) + [k.value for k in node.keywords if k.arg in ("prefix", "start", "stop")]
                for key in keys:
                    first = key
                    while isinstance(first, ast.BinOp):
                        first = first.left
                    if isinstance(first, ast.Constant) and isinstance(first.value, bytes):
                        problems.append(f"{where}: key {ast.unparse(key)} starts with a literal, not a namespace")
    return problems


def test_every_key_prefix_in_the_code_is_declared_in_the_layout() -> None:
    problems = [p for rel, tree in _sources() for p in _namespace_problems(rel, tree)]
    assert problems == []


def test_the_source_check_catches_undeclared_prefixes() -> None:
    bad = {
        "cluster/x.py": 'NS_FOO = b"x/"',
        "bitswap/y.py": "from blockstore.db import NS_PINS",
        "node/z.py": 'db.put(b"z/" + key, b"")',
        "node/w.py": 'db.iterator(prefix=b"zz")',
        "blockstore/v.py": "from .layout import NS_CRDT\nk = NS_CRDT + cid",
        "bitswap/u.py": 'PREFIX = b"w/"',
    }
    for rel, src in bad.items():
        assert _namespace_problems(rel, ast.parse(src)), rel
    good = 'from blockstore.layout import NS_TRACKER\nR = NS_TRACKER + b"r/"\ndb.get(R + cid)'
    assert _namespace_problems("cluster/ok.py", ast.parse(good)) == []
