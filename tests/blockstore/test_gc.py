"""Garbage collection beside imports and fetches (blockstore/gc.py): nothing written, re-used or
checked for a pin while a collection runs is lost, and imports never wait for a collection."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from blockstore.cid import DAG_PB, cid_for
from blockstore.db import open_db
from blockstore.layout import NS_GC_MARK
from blockstore.gc import BlockNotFound, collect, record_pin
from blockstore.pins import RECURSIVE, Pins, collect_garbage
from blockstore.store import BlockStore
from blockstore.uploads import Uploads


def _tree_links(cid: bytes, data: bytes) -> list[bytes]:
    """Test DAG format: a block lists its children's CIDs, 36 bytes each after a 'T' marker."""
    if not data.startswith(b"T"):
        return []
    body = data[1:]
    return [body[i : i + 36] for i in range(0, len(body), 36)]


def _leaf() -> tuple[bytes, bytes]:
    data = b"L" + os.urandom(100)
    return cid_for(data), data


def _node(children: list[bytes]) -> tuple[bytes, bytes]:
    data = b"T" + b"".join(children)
    return cid_for(data, codec=DAG_PB), data  # read through _tree_links, never decoded as dag-pb


def _links_then(action: Callable[[], None]) -> Callable[[bytes, bytes], list[bytes]]:
    """The test links function that runs ``action`` once, in the middle of the marking."""
    done = []

    def links(cid: bytes, data: bytes) -> list[bytes]:
        if not done:
            done.append(True)
            action()
        return _tree_links(cid, data)

    return links


def test_writes_during_the_marking_survive_the_sweep(tmp_path: Path) -> None:
    """An import that starts while the collection marks: its new blocks and a block it re-uses
    (garbage when the collection began) are kept, and so is its pin; garbage is still removed."""
    s = BlockStore(open_db(tmp_path))
    pins = Pins(s.db)
    kept_leaf = _leaf()
    kept_root = _node([kept_leaf[0]])
    reused, garbage = _leaf(), _leaf()
    s.put_many([kept_leaf, kept_root, reused, garbage])
    pins.add(kept_root[0])
    fresh = _leaf()
    fresh_root = _node([fresh[0], reused[0]])

    def import_meanwhile() -> None:
        with s.writer():  # starts after the collection began: must not wait for it
            j = s.new_journal()
            s.put_many([fresh, reused, fresh_root], journal=j)
            pins.add(fresh_root[0])
            s.commit(j)

    removed = set(collect_garbage(s, pins, _links_then(import_meanwhile)))
    assert removed == {garbage[0][2:]}
    for cid, data in (kept_leaf, kept_root, reused, fresh, fresh_root):
        assert s.get(cid) == data
    assert list(s.db.iterator(prefix=NS_GC_MARK)) == []  # no marks left behind


def test_a_collection_waits_for_the_imports_that_started_before_it(tmp_path: Path) -> None:
    """An import that stored blocks (re-using a garbage one) before the collection began, and
    pins them after: the collection reads its roots only once that import is done."""
    s = BlockStore(open_db(tmp_path))
    pins = Pins(s.db)
    reused, garbage = _leaf(), _leaf()
    s.put_many([reused, garbage])
    root = _node([reused[0]])
    stored, release = threading.Event(), threading.Event()

    def slow_import() -> None:
        with s.writer():
            s.put_many([root, reused])  # no journal: only the pin written at the end keeps them
            stored.set()
            release.wait(30)
            pins.add(root[0], RECURSIVE)

    importer = threading.Thread(target=slow_import)
    importer.start()
    assert stored.wait(30)
    removed: list[bytes] = []
    gc = threading.Thread(target=lambda: removed.extend(collect_garbage(s, pins, _tree_links)))
    gc.start()
    gc.join(0.5)
    assert gc.is_alive()  # waiting for the import
    with s.writer():  # an import that starts now is not held up by the waiting collection
        late = _leaf()
        s.put_many([late])
        pins.add(late[0])
    release.set()
    importer.join(30)
    gc.join(30)
    assert not gc.is_alive()
    assert removed == [garbage[0][2:]]
    assert s.get(root[0]) == root[1] and s.get(reused[0]) == reused[1] and s.get(late[0]) == late[1]


def test_record_pin_keeps_what_it_checked_during_a_collection(tmp_path: Path) -> None:
    """A fetch found a block already stored (garbage when the collection began, so unmarked) and
    records its pin while the collection runs: the check marks it, the sweep keeps it."""
    s = BlockStore(open_db(tmp_path))
    pins = Pins(s.db)
    present = _leaf()
    s.put_many([present])
    fetched = _leaf()
    root = _node([fetched[0], present[0]])

    def fetch_and_pin() -> None:
        s.put_many([root, fetched])  # what the fetch stored (marked by the write barrier)
        record_pin(s, root[0], lambda: pins.add(root[0]), links=_tree_links)

    def links(cid: bytes, data: bytes) -> list[bytes]:
        return []  # nothing is pinned yet: the roots list nothing

    removed = list(collect(s, [lambda: _run_once(fetch_and_pin)], links))
    assert removed == []
    assert s.get(present[0]) == present[1]
    assert pins.get(root[0]) == RECURSIVE


def _run_once(action: Callable[[], None]) -> list[tuple[bytes, bool]]:
    action()
    return []


def test_record_pin_reports_a_block_a_collection_removed_after_the_check(tmp_path: Path) -> None:
    """The DAG is checked, then a whole collection runs before the pin is written (it cannot see
    the pin): record_pin notices the epoch moved, checks again and names the missing block."""
    s = BlockStore(open_db(tmp_path))
    pins = Pins(s.db)
    leaf = _leaf()
    root = _node([leaf[0]])
    s.put_many([leaf, root])

    def collect_then_pin() -> None:
        list(collect_garbage(s, pins, _tree_links))  # the unpinned DAG is garbage to it
        pins.add(root[0])

    with pytest.raises(BlockNotFound):
        record_pin(s, root[0], collect_then_pin, links=_tree_links)
    # without a collection in between, the same call pins
    s.put_many([leaf, root])
    record_pin(s, root[0], lambda: pins.add(root[0]), links=_tree_links)
    assert list(collect_garbage(s, pins, _tree_links)) == []


def test_uploads_are_roots_from_the_journal_commit_until_released(tmp_path: Path) -> None:
    s = BlockStore(open_db(tmp_path))
    pins = Pins(s.db)
    uploads = Uploads(s.db)
    leaf = _leaf()
    root = _node([leaf[0]])
    j = s.new_journal()
    s.put_many([leaf, root], journal=j)
    s.commit(j, uploads=[root[0]])  # the journal becomes the marker in one batch
    assert uploads.has(root[0]) and s.pending_journals() == []
    source = lambda: ((cid, True) for cid, _ts in uploads)  # noqa: E731
    assert list(collect(s, [source], _tree_links)) == []
    uploads.release([root[0]])
    assert set(collect(s, [source], _tree_links)) == {leaf[0][2:], root[0][2:]}


def test_a_second_collection_waits_and_marks_do_not_leak(tmp_path: Path) -> None:
    s = BlockStore(open_db(tmp_path))
    pins = Pins(s.db)
    garbage = [_leaf() for _ in range(3)]
    s.put_many(garbage)
    first = collect_garbage(s, pins, _tree_links, batch=1)
    assert next(first) in {g[0][2:] for g in garbage}  # the first collection is mid-sweep
    second_done = threading.Event()
    t = threading.Thread(target=lambda: (list(collect_garbage(s, pins, _tree_links)), second_done.set()))
    t.start()
    assert not second_done.wait(0.3)
    assert len(list(first)) == 2
    t.join(30)
    assert second_done.is_set()
    assert s.stats()["blocks"] == 0 and list(s.db.iterator(prefix=NS_GC_MARK)) == []


def test_the_sweep_rechecks_marks_under_the_barrier_lock(tmp_path: Path) -> None:
    """The sweep picked a block as garbage; an import re-stores it before the batch is deleted:
    delete_unmarked sees the barrier's mark and keeps it (and deletes the rest)."""
    s = BlockStore(open_db(tmp_path))
    picked, other = _leaf(), _leaf()
    s.put_many([picked, other])
    s.gc_begin()
    try:
        s.put_many([picked])  # already stored: nothing written, but marked live
        assert s.delete_unmarked([picked[0][2:], other[0][2:]]) == [other[0][2:]]
    finally:
        s.gc_end()
    assert s.get(picked[0]) == picked[1] and s.get(other[0]) is None
    assert s.stats()["blocks"] == 1


def test_upload_markers_scan_in_cid_order_from_a_cursor(tmp_path: Path) -> None:
    s = BlockStore(open_db(tmp_path))
    uploads = Uploads(s.db)
    cids = sorted(_leaf()[0] for _ in range(5))
    s.commit(s.new_journal(), uploads=cids)
    s.db.put(b"u0-just-after-the-namespace", b"")  # the first key past u/ is never read
    assert [c for c, _ts in uploads] == cids
    assert [c for c, _ts in uploads.scan(cids[1])] == cids[2:]
    assert list(uploads.scan(cids[-1])) == []
    uploads.release(cids[:2])
    assert [c for c, _ts in uploads.scan()] == cids[2:]


def test_record_pin_trusts_a_check_no_collection_interrupted(tmp_path: Path) -> None:
    """A fetch just walked the DAG: with no collection since, the pin is written without a second
    walk; once a collection ran in between, the DAG is checked again (and the hole reported)."""
    s = BlockStore(open_db(tmp_path))
    pins = Pins(s.db)
    leaf = _leaf()
    root = _node([leaf[0]])
    s.put_many([root])  # the leaf is missing: only a walk can tell
    since = s.gc_epoch
    record_pin(s, root[0], lambda: pins.add(root[0]), links=_tree_links, checked_since=since)
    assert pins.get(root[0]) == RECURSIVE  # trusted the caller's check
    pins.remove(root[0])
    list(collect_garbage(s, pins, _tree_links, extra_roots=[root[0]]))  # a collection: epoch moves
    with pytest.raises(BlockNotFound):
        record_pin(s, root[0], lambda: pins.add(root[0]), links=_tree_links, checked_since=since)
    assert pins.get(root[0]) is None
    s.put_many([leaf])
    record_pin(s, root[0], lambda: pins.add(root[0]), links=_tree_links, checked_since=since)
    assert pins.get(root[0]) == RECURSIVE
