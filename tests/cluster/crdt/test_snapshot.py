"""Snapshots: bootstrap a new peer, merge into a diverged peer, compaction, crash during load."""

from __future__ import annotations

from pathlib import Path

import libipld
import pytest

from blockstore.cid import DAG_CBOR, cid_for
from cluster.crdt import DELETE, PUT, MissingBlock, SnapshotError
from cluster.crdt.snapshot import decode_root

from .helpers import Peer, key


@pytest.fixture
def peers(tmp_path: Path):
    made: list[Peer] = []

    def make(name: str, **opts) -> Peer:
        opts.setdefault("trusted_peers", ["*"])
        p = Peer(tmp_path / name, **opts)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _history(p: Peer, n: int = 40) -> None:
    for i in range(n):
        p.replica.put(key(i % 15), b"v%d" % i)
        if i % 7 == 3:
            p.replica.delete(key((i + 2) % 15))


def test_new_peer_bootstraps_from_snapshot_then_takes_only_new_deltas(peers) -> None:
    a, c = peers("a"), peers("c")
    _history(a)
    root = a.replica.create_snapshot()
    assert decode_root(a.blocks.get(root)).count == len(a.replica.set)
    fetched: list[bytes] = []

    def getter(cid: bytes) -> bytes | None:
        fetched.append(cid)
        return a.get_block(cid)

    assert c.replica.load_snapshot(root, getter) == len(a.replica.set)
    assert c.state() == a.state() and c.replica.heads() == a.replica.heads()
    assert not any(a.replica.is_processed(cid) for cid in fetched)  # no delta was fetched
    a.replica.put(key(100), b"new")
    a.replica.delete(key(1))
    assert a.send_heads(c) == 2
    assert c.state() == a.state() and c.replica.heads() == a.replica.heads()
    assert c.replica.stats()["deltas"] == a.replica.stats()["deltas"]


def test_snapshot_merges_into_a_diverged_peer(peers) -> None:
    a, b, ref = peers("a"), peers("b"), peers("ref")
    _history(a, 20)
    a.send_heads(b)
    # b keeps a key that a deletes, and makes concurrent changes of its own
    a.replica.delete(key(3))
    a.replica.put(key(4), b"from-a")
    b.replica.put(key(4), b"from-b")
    b.replica.put(key(50), b"only-b")
    b.send_heads(ref)
    a.send_heads(ref)  # ref: the normal way
    b.replica.load_snapshot(a.replica.create_snapshot(), a.get_block)
    assert b.state() == ref.state() and b.replica.heads() == ref.replica.heads()
    b.send_heads(a)
    assert a.state() == b.state() == ref.state()


def test_compaction_drops_covered_deltas(peers) -> None:
    a, late = peers("a"), peers("late")
    _history(a)
    before = a.blocks.stats()["blocks"]
    root = a.replica.create_snapshot()
    dropped = a.replica.compact(root)
    assert dropped == a.replica.stats()["deltas"] - 1  # the head is kept
    assert a.blocks.stats()["blocks"] < before
    assert set(a.replica.block_cids()) >= {root}
    assert all(a.blocks.has(c) for c in a.replica.block_cids())
    a.replica.put(key(200), b"after")
    with pytest.raises(MissingBlock):
        late.replica.receive(a.replica.heads()[0][0], "a", a.get_block)
    late.replica.load_snapshot(a.replica.latest_snapshot(), a.get_block)
    late.replica.resume(a.get_block)
    assert late.state() == a.state() and late.replica.heads() == a.replica.heads()
    assert not late.replica.is_dirty()
    # a second compaction drops the first snapshot's blocks
    root2 = a.replica.create_snapshot()
    a.replica.compact(root2)
    assert not a.blocks.has(root) and a.blocks.has(root2)


def test_compact_refuses_a_snapshot_not_merged_here(peers) -> None:
    a, b = peers("a"), peers("b")
    _history(a, 5)
    b.replica.put(key(1), b"x")
    root = a.replica.create_snapshot()
    b.blocks.put_many([(c, a.blocks.get(c)) for c in a.replica.block_cids()])
    with pytest.raises(ValueError, match="has not merged"):
        b.replica.compact(root)


def test_kill_during_load_resumes_on_open(peers, monkeypatch) -> None:
    a, c = peers("a"), peers("c")
    for i in range(3000):
        a.replica.apply_many([(PUT, key(i), b"x" * 200)] + ([(DELETE, key(i - 1), b"")] if i % 5 == 0 else []))
    root = a.replica.create_snapshot()
    assert len(decode_root(a.blocks.get(root)).elements) > 1
    calls = 0
    real = c.replica._merge_batch

    def dies(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt("killed")
        real(*args, **kwargs)

    monkeypatch.setattr(c.replica, "_merge_batch", dies)
    with pytest.raises(KeyboardInterrupt):
        c.replica.load_snapshot(root, a.get_block)
    c.reopen()
    assert not c.replica.is_dirty()
    assert c.state() == a.state() and c.replica.heads() == a.replica.heads()


def test_malformed_snapshot_root(peers) -> None:
    c = peers("c")
    data = libipld.encode_dag_cbor({"v": 1, "kind": "something-else"})
    root = cid_for(data, DAG_CBOR)
    with pytest.raises(SnapshotError, match="not a version-1 pinion-crdt-snapshot root"):
        c.replica.load_snapshot(root, lambda cid: data)
    data = libipld.encode_dag_cbor({"v": 1, "kind": "pinion-crdt-snapshot", "heads": [["x", 1]], "count": 0,
                                    "covered": [], "elements": []})
    root = cid_for(data, DAG_CBOR)
    with pytest.raises(SnapshotError, match="head is not a valid CID"):
        c.replica.load_snapshot(root, lambda cid: data)
    assert len(c.replica.set) == 0 and not c.replica.is_dirty()


def test_empty_replica_cannot_snapshot(peers) -> None:
    with pytest.raises(ValueError, match="empty"):
        peers("a").replica.create_snapshot()


def test_fresh_load_with_concurrent_values_split_across_chunks(peers, monkeypatch) -> None:
    from cluster.crdt import snapshot

    def terms(k: bytes, v: bytes):
        yield b"v=" + v

    a, b = peers("a", index_terms=terms), peers("b", index_terms=terms)
    c = peers("c", index_terms=terms)
    for i in range(20):
        a.replica.put(key(i), b"a%d" % (i % 3))
        b.replica.put(key(i), b"b%d" % (i % 2))
    a.send_heads(b)
    b.send_heads(a)
    assert all(len(a.replica.set.live_ids(key(i))) == 2 for i in range(20))
    monkeypatch.setattr(snapshot, "CHUNK_BUDGET", 1)  # one element per chunk
    root = a.replica.create_snapshot()
    assert len(decode_root(a.blocks.get(root)).elements) == 40
    c.replica.load_snapshot(root, a.get_block)
    assert c.state() == a.state() and len(c.replica.set) == 20
    for v in (b"a0", b"a1", b"a2", b"b0", b"b1"):
        assert sorted(c.replica.set.find(b"v=" + v)) == sorted(a.replica.set.find(b"v=" + v))


def test_merged_by_tells_whether_a_peers_heads_cover_a_snapshot(peers) -> None:
    """The compaction guard: a peer's announced heads have merged a snapshot when every
    snapshot head is among them or below them; a concurrent branch the peer lacks is not."""
    a, b, c = peers("a"), peers("b"), peers("c")
    _history(a, 10)
    a.send_heads(b)
    c.replica.put(key(77), b"concurrent")  # a branch b has not seen
    c.send_heads(a)
    root = a.replica.create_snapshot()  # covers a's history and c's branch
    heads_of = lambda p: [cid for cid, _h in p.replica.heads()]  # noqa: E731
    assert a.replica.merged_by(heads_of(a), root)
    assert not a.replica.merged_by(heads_of(b), root)  # b lacks c's delta
    assert not a.replica.merged_by([], root)
    b.replica.put(key(78), b"b moves on")  # b's new head sits on its old heads only
    b.send_heads(a)
    assert not a.replica.merged_by(heads_of(b), root)
    a.send_heads(b)
    b.replica.put(key(79), b"b after merging")
    b.send_heads(a)
    assert a.replica.merged_by(heads_of(b), root)  # its head now descends from both branches
    assert not a.replica.merged_by(heads_of(b), root, limit=1)  # a walk too long counts as not merged
