"""The LevelDB block store: verification, totals, compression, journals, pins and GC."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blockstore.cid import DAG_PB, IDENTITY, HashMismatch, cid_for, to_v1
from blockstore.db import RepoLockedError, open_db
from blockstore.pins import DIRECT, RECURSIVE, LocalPinError, Pins, collect_garbage
from blockstore.store import BlockStore, BlockTooLarge


def _store(path: Path, **kw) -> BlockStore:
    return BlockStore(open_db(path), **kw)


def test_put_get_has_delete(tmp_path: Path) -> None:
    s = _store(tmp_path)
    data = os.urandom(3000)
    cid = cid_for(data)
    assert not s.has(cid)
    assert s.put(cid, data)
    assert not s.put(cid, data)
    assert s.get(cid) == data and s.has(cid) and s.size(cid) == 3000
    assert s.stats()["blocks"] == 1 and s.stats()["bytes"] == 3000
    assert s.delete(cid) and not s.delete(cid)
    assert s.get(cid) is None and s.stats() == {"blocks": 0, "bytes": 0, "stored_bytes": 0}


def test_v0_and_v1_share_storage(tmp_path: Path) -> None:
    s = _store(tmp_path)
    data = b"\x0a\x02\x08\x01"  # not inspected: the store only hashes
    v0 = cid_for(data, codec=DAG_PB, version=0)
    assert s.put(v0, data)
    assert s.get(to_v1(v0)) == data
    assert not s.put(to_v1(v0), data)
    assert s.stats()["blocks"] == 1


def test_verification_and_limits(tmp_path: Path) -> None:
    s = _store(tmp_path, max_block_size=1024)
    good = b"a" * 10
    with pytest.raises(HashMismatch):
        s.put(cid_for(good), b"b" * 10)
    with pytest.raises(BlockTooLarge):
        big = os.urandom(1025)
        s.put(cid_for(big), big)
    # a bad block anywhere in a batch stores nothing of the batch
    blocks = [(cid_for(b"x%d" % i), b"x%d" % i) for i in range(5)] + [(cid_for(b"y"), b"z")]
    with pytest.raises(HashMismatch):
        s.put_many(blocks)
    assert s.stats()["blocks"] == 0


def test_identity_never_stored(tmp_path: Path) -> None:
    s = _store(tmp_path)
    cid = cid_for(b"inline", mh_code=IDENTITY)
    assert not s.put(cid, b"inline")
    assert s.get(cid) == b"inline" and s.has(cid)
    assert s.stats()["blocks"] == 0
    with pytest.raises(HashMismatch):
        s.put(cid, b"other")


def test_compression_is_transparent_and_selective(tmp_path: Path) -> None:
    s = _store(tmp_path)
    text = b"hello pinion " * 10000
    rnd = os.urandom(len(text))
    s.put_many([(cid_for(text), text), (cid_for(rnd), rnd)])
    assert s.get(cid_for(text)) == text and s.get(cid_for(rnd)) == rnd
    st = s.stats()
    assert st["bytes"] == 2 * len(text)
    assert st["stored_bytes"] < len(text) + len(rnd) // 2 + 100  # text shrank, random did not
    assert s.size(cid_for(text)) == len(text)


def test_totals_survive_reopen(tmp_path: Path) -> None:
    s = _store(tmp_path)
    datas = [os.urandom(500) for _ in range(20)]
    s.put_many([(cid_for(d), d) for d in datas])
    before = s.stats()
    s.db.close()
    s2 = _store(tmp_path)
    assert s2.stats() == before and before["blocks"] == 20
    assert sorted(s2.iter_multihashes()) == sorted(cid_for(d)[2:] for d in datas)


def test_second_process_gets_clear_error(tmp_path: Path) -> None:
    db = open_db(tmp_path)
    with pytest.raises(RepoLockedError, match="in use by another process"):
        open_db(tmp_path)
    db.close()


def test_journal_rollback_keeps_preexisting_blocks(tmp_path: Path) -> None:
    s = _store(tmp_path)
    old = b"already here"
    s.put(cid_for(old), old)
    j = s.new_journal()
    new = [os.urandom(300) for _ in range(10)]
    s.put_many([(cid_for(d), d) for d in new + [old]], journal=j)
    assert s.pending_journals() == [j]
    assert s.rollback(j) == 10
    assert s.get(cid_for(old)) == old
    assert all(s.get(cid_for(d)) is None for d in new)
    assert s.pending_journals() == [] and s.stats()["blocks"] == 1


def test_journal_commit_and_crash_recovery(tmp_path: Path) -> None:
    s = _store(tmp_path)
    j1, j2 = s.new_journal(), s.new_journal()
    a, b = os.urandom(100), os.urandom(100)
    s.put(cid_for(a), a, journal=j1)
    s.put(cid_for(b), b, journal=j2)
    s.commit(j1)
    s.db.close()  # "crash" with j2 unfinished
    s2 = _store(tmp_path)
    assert s2.recover() == 1
    assert s2.get(cid_for(a)) == a and s2.get(cid_for(b)) is None


def test_pins(tmp_path: Path) -> None:
    db = open_db(tmp_path)
    pins = Pins(db)
    a, b = cid_for(b"a"), cid_for(b"b")
    pins.add(a)
    pins.add(a, DIRECT)  # does not downgrade
    pins.add_many([b], DIRECT)
    assert dict(pins) == {a: RECURSIVE, b: DIRECT}
    assert pins.remove(b) == DIRECT
    with pytest.raises(LocalPinError):
        pins.remove(b)
    with pytest.raises(LocalPinError):
        pins.add(a, "sideways")


def _tree_links(cid: bytes, data: bytes) -> list[bytes]:
    """Test DAG format: a block lists its children's CIDs, 36 bytes each after a 'T' marker."""
    if not data.startswith(b"T"):
        return []
    body = data[1:]
    return [body[i : i + 36] for i in range(0, len(body), 36)]


def test_gc_keeps_pinned_dags_and_removes_the_rest(tmp_path: Path) -> None:
    s = _store(tmp_path)
    pins = Pins(s.db)
    leaves = [b"L" + os.urandom(200) for _ in range(4)]
    leaf_cids = [cid_for(d) for d in leaves]
    root = b"T" + b"".join(leaf_cids[:2])
    direct_root = b"T" + b"".join(leaf_cids[2:3])
    loose = b"L" + os.urandom(200)
    extra = b"L" + os.urandom(50)
    s.put_many([(c, d) for c, d in zip(leaf_cids, leaves)])
    s.put_many([(cid_for(root), root), (cid_for(direct_root), direct_root), (cid_for(loose), loose), (cid_for(extra), extra)])
    pins.add(cid_for(root))
    pins.add(cid_for(direct_root), DIRECT)
    j = s.new_journal()
    inflight = b"L" + os.urandom(70)
    s.put(cid_for(inflight), inflight, journal=j)
    removed = set(collect_garbage(s, pins, _tree_links, extra_roots=[cid_for(extra)]))
    # leaf 2 is only under a direct pin, leaf 3 and `loose` under nothing
    assert removed == {cid_for(leaves[2])[2:], cid_for(leaves[3])[2:], cid_for(loose)[2:]}
    for keep in (root, direct_root, extra, inflight, leaves[0], leaves[1]):
        assert s.get(cid_for(keep)) == keep
    assert s.stats()["blocks"] == 6
    assert list(collect_garbage(s, pins, _tree_links, extra_roots=[cid_for(extra)])) == []


def test_disk_full_errors_are_told_apart() -> None:
    """LevelDB's and Python's ENOSPC become one clear message; other errors are left alone."""
    import errno

    import plyvel

    from blockstore.db import disk_full_message

    leveldb = plyvel.IOError(b"IO error: /repo/datastore/000008.ldb: No space left on device")
    assert "the disk is full" in (disk_full_message(leveldb) or "")
    assert "the disk is full" in (disk_full_message(OSError(errno.ENOSPC, "No space left on device")) or "")
    assert disk_full_message(plyvel.IOError(b"IO error: permission denied")) is None
    assert disk_full_message(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full_message(ValueError("No space left on device")) is None
