"""Replica behaviour: local writes, batching, receiving heads, trust, GC roots, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockstore.cid import DAG_CBOR, HashMismatch, cid_for, multihash_of
from cluster.crdt import DELETE, PUT, Change, DeltaError, MissingBlock, ReceiveQueueFull, decode_delta
from cluster.crdt.delta import Delta

from .helpers import Peer, key


@pytest.fixture
def peers(tmp_path: Path):
    made: list[Peer] = []

    def make(name: str, **opts) -> Peer:
        p = Peer(tmp_path / name, **opts)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_put_get_delete_without_batching(peers) -> None:
    a = peers("a")
    r = a.replica
    head = r.put(key(1), b"one")
    assert head is not None and r.heads() == [(head, 1)]
    assert r.set.get(key(1)) == b"one" and r.set.has(key(1)) and len(r.set) == 1
    head2 = r.put(key(1), b"uno")
    assert r.set.get(key(1)) == b"uno" and r.heads() == [(head2, 2)]
    assert decode_delta(a.blocks.get(head2)).links == (head,)
    r.delete(key(1))
    assert r.set.get(key(1)) is None and len(r.set) == 0 and r.height() == 3
    assert r.delete(key(2)) is None  # nothing observed: nothing published
    assert r.height() == 3


def test_put_replaces_older_elements(peers) -> None:
    r = peers("a").replica
    r.put(key(1), b"x")
    r.put(key(1), b"y")
    assert len(r.set.live_ids(key(1))) == 1


def test_bad_arguments_are_named(peers) -> None:
    r = peers("a").replica
    with pytest.raises(ValueError, match="not a valid CID"):
        r.put(b"\x05nope", b"v")
    with pytest.raises(TypeError, match="CID bytes"):
        r.put("bafy", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value must be bytes"):
        r.put(key(1), "v")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown CRDT operation"):
        r.apply_many([(9, key(1), b"")])


def test_batching_by_size_and_age(peers) -> None:
    r = peers("a", max_batch_size=3, max_batch_age=5.0).replica
    assert r.put(key(1), b"1", now=100.0) is None
    assert r.put(key(2), b"2", now=101.0) is None
    assert r.queued() == 2 and len(r.set) == 0
    assert r.next_deadline() == 105.0
    head = r.put(key(3), b"3", now=102.0)
    assert head is not None and r.queued() == 0 and len(r.set) == 3
    assert len(decode_delta(r._blocks.get(head)).elements) == 3
    r.put(key(4), b"4", now=200.0)
    assert r.tick(204.9) is None
    assert r.tick(205.0) is not None and r.set.get(key(4)) == b"4"
    assert r.stats()["batches"] == 2


def test_batch_of_put_then_delete_leaves_nothing(peers) -> None:
    r = peers("a", max_batch_size=10, max_batch_age=1.0).replica
    r.put(key(1), b"old")
    r.commit()
    r.apply_many([(PUT, key(1), b"new"), (DELETE, key(1), b""), (PUT, key(2), b"2")])
    head = r.commit()
    delta = decode_delta(r._blocks.get(head))
    assert [k for k, _ in delta.elements] == [key(2)] and [k for k, _ in delta.tombstones] == [key(1)]
    assert r.set.get(key(1)) is None and r.set.get(key(2)) == b"2"


def test_queue_full(peers) -> None:
    r = peers("a", max_batch_size=100, max_batch_age=1.0, max_queue_size=2).replica
    r.put(key(1), b"")
    r.put(key(2), b"")
    with pytest.raises(ReceiveQueueFull, match="max_queue_size"):
        r.put(key(3), b"")


def test_queued_items_survive_restart(peers) -> None:
    a = peers("a", max_batch_size=100, max_batch_age=60.0)
    for i in range(10):
        a.replica.put(key(i), b"v%d" % i, now=0.0)
    a.reopen()
    assert a.replica.queued() == 10 and len(a.replica.set) == 0
    assert a.replica.next_deadline() == float("-inf")
    assert a.replica.tick(0.0) is not None
    assert len(a.replica.set) == 10 and a.replica.queued() == 0


def test_receive_applies_missing_branch(peers) -> None:
    a, b = peers("a"), peers("b", trusted_peers=["*"])
    for i in range(5):
        a.replica.put(key(i), b"%d" % i)
    assert a.send_heads(b) == 5
    assert b.state() == a.state() and b.replica.heads() == a.replica.heads()
    assert a.send_heads(b) == 0  # duplicates are no-ops
    assert sorted(b.replica.block_cids()) == sorted(a.replica.block_cids())


def test_concurrent_writes_make_two_heads_then_merge(peers) -> None:
    a, b = peers("a", trusted_peers=["*"]), peers("b", trusted_peers=["*"])
    a.replica.put(key(1), b"a")
    b.replica.put(key(1), b"b")
    a.send_heads(b)
    b.send_heads(a)
    assert len(a.replica.heads()) == 2 and a.replica.heads() == b.replica.heads()
    # equal priority: the greater value bytes wins on both
    assert a.replica.set.get(key(1)) == b.replica.set.get(key(1)) == b"b"
    head = a.replica.put(key(2), b"x")
    assert a.replica.heads() == [(head, 2)]
    assert set(decode_delta(a.blocks.get(head)).links) == {h for h, _ in b.replica.heads()}
    a.send_heads(b)
    assert b.replica.heads() == a.replica.heads() and b.state() == a.state()


def test_add_wins_over_concurrent_remove(peers) -> None:
    a, b = peers("a", trusted_peers=["*"]), peers("b", trusted_peers=["*"])
    a.replica.put(key(1), b"v")
    a.send_heads(b)
    a.replica.delete(key(1))
    b.replica.put(key(1), b"w")
    a.send_heads(b)
    b.send_heads(a)
    assert a.replica.set.get(key(1)) == b.replica.set.get(key(1)) == b"w"


def test_untrusted_heads_are_ignored(peers) -> None:
    a, b = peers("a"), peers("b", trusted_peers=["c"])
    a.replica.put(key(1), b"v")
    res = b.replica.receive(a.replica.heads()[0][0], "a", a.get_block)
    assert res.ignored and res.applied == 0 and len(b.replica.set) == 0
    b.replica.set_trusted(["a"])
    assert b.replica.receive(a.replica.heads()[0][0], "a", a.get_block).applied == 1
    assert b.replica.is_trusted("b")  # self is always trusted


def test_missing_block_keeps_head_pending_until_available(peers) -> None:
    a, b = peers("a"), peers("b", trusted_peers=["*"])
    for i in range(4):
        a.replica.put(key(i), b"v")
    head = a.replica.heads()[0][0]
    assert b.replica.missing_blocks(head) == [head]
    with pytest.raises(MissingBlock, match="not available"):
        b.replica.receive(head, "a", None)
    assert b.replica.pending_heads() == [head] and b.replica.is_dirty()
    # the shell fetches the frontier and stores it, level by level
    while True:
        missing = b.replica.missing_blocks(head)
        if not missing:
            break
        for cid in missing:
            b.blocks.put(cid, a.blocks.get(cid))
    assert b.replica.resume() == 4
    assert b.state() == a.state() and not b.replica.is_dirty() and b.replica.pending_heads() == []


def test_walk_interrupted_resumes_after_restart(peers) -> None:
    """A crash mid-walk (modelled by a getter that dies) leaves a state that resumes."""
    a, b = peers("a"), peers("b", trusted_peers=["*"])
    for i in range(20):
        a.replica.put(key(i), b"v%d" % i)
    head = a.replica.heads()[0][0]
    served = 0

    def flaky(cid: bytes) -> bytes | None:
        nonlocal served
        served += 1
        return a.get_block(cid) if served <= 12 else None

    with pytest.raises(MissingBlock):
        b.replica.receive(head, "a", flaky)
    b.reopen()
    assert b.replica.pending_heads() == [head] and b.replica.is_dirty()
    assert b.replica.resume(a.get_block) == 20
    assert b.state() == a.state() and b.replica.heads() == a.replica.heads() and not b.replica.is_dirty()


def test_forged_block_is_rejected(peers) -> None:
    a, b = peers("a"), peers("b", trusted_peers=["*"])
    a.replica.put(key(1), b"v")
    head = a.replica.heads()[0][0]
    with pytest.raises(HashMismatch):
        b.replica.receive(head, "a", lambda cid: b"forged")
    assert b.replica.pending_heads() == [] and len(b.replica.set) == 0 and not b.blocks.has(head)


def test_malformed_delta_names_the_block(peers) -> None:
    b = peers("b", trusted_peers=["*"])
    data = b"\xa1av\x02"
    bad = cid_for(data, DAG_CBOR)
    with pytest.raises(DeltaError, match="CRDT delta bafy.*format version"):
        b.replica.receive(bad, "a", lambda cid: data)
    assert b.replica.pending_heads() == [] and not b.replica.is_dirty()


def test_on_change_hook_and_index(peers, tmp_path: Path) -> None:
    seen: list[Change] = []

    def terms(k: bytes, v: bytes):
        yield b"first=" + v[:1]

    a = peers("a", index_terms=terms, on_change=seen.append)
    a.replica.put(key(1), b"xa")
    a.replica.put(key(2), b"xb")
    a.replica.put(key(3), b"yc")
    assert sorted(a.replica.set.find(b"first=x")) == sorted([key(1), key(2)])
    a.replica.put(key(1), b"yy")
    assert list(a.replica.set.find(b"first=x")) == [key(2)]
    a.replica.delete(key(2))
    assert list(a.replica.set.find(b"first=x")) == []
    assert [c.value for c in seen] == [b"xa", b"xb", b"yc", b"yy", None]


def test_on_changes_hook_gets_the_changes_of_one_delta_at_once(peers) -> None:
    """The batch hook (the pin tracker's: one write batch per delta) sees each write's changes
    together, in the order the per-change hook sees them, also for deltas received from a peer."""
    batches: list[list[Change]] = []
    single: list[Change] = []
    a = peers("a", on_changes=batches.append, on_change=single.append)
    b = peers("b", trusted_peers=["*"], on_changes=batches.append)
    a.replica.apply_many([(PUT, key(i), b"v%d" % i) for i in range(3)])
    a.replica.delete(key(1))
    assert [sorted(c.value or b"" for c in batch) for batch in batches] == [[b"v0", b"v1", b"v2"], [b""]]
    assert [c for batch in batches for c in batch] == single
    batches.clear()
    b.replica.receive(a.replica.heads()[0][0], "a", a.get_block)
    last = {c.key: c.value for batch in batches for c in batch}
    assert batches and {k: v for k, v in last.items() if v is not None} == {key(0): b"v0", key(2): b"v2"}


def test_gc_roots_cover_every_delta(peers) -> None:
    a = peers("a")
    heads = [a.replica.put(key(i), b"v") for i in range(5)]
    assert set(a.replica.block_cids()) == set(heads)


def test_items_from_start_key_and_stats(peers) -> None:
    a = peers("a")
    keys = sorted(key(i) for i in range(10))
    a.replica.apply_many([(PUT, k, b"v") for k in keys])
    assert [k for k, _ in a.replica.set.items(start=keys[4])] == keys[4:]
    assert list(a.replica.set.keys()) == keys
    st = a.replica.stats()
    assert st["pins"] == 10 and st["heads"] == 1 and st["height"] == 1 and st["deltas"] == 1


def test_received_delta_with_own_tombstoned_element(peers) -> None:
    """An element whose (key, id) is already tombstoned is not resurrected."""
    b = peers("b", trusted_peers=["*"])
    first = Delta(1, (), ((key(1), b"v"),))
    cid1, data1 = first.block()
    second = Delta(2, (cid1,), (), ((key(1), cid1),))
    cid2, data2 = second.block()
    blocks = {cid1: data1, cid2: data2}
    b.replica.receive(cid2, "a", blocks.get)
    assert len(b.replica.set) == 0 and b.replica.set.is_tombstoned(key(1), cid1)
    assert b.replica.heads() == [(cid2, 2)]


def test_garbage_collection_keeps_crdt_blocks(peers) -> None:
    """The lead's GC, given block_cids() as extra roots, removes other blocks only."""
    from blockstore.links import iter_links
    from blockstore.pins import Pins, collect_garbage

    a = peers("a")
    for i in range(5):
        a.replica.put(key(i), b"v")
    root = a.replica.create_snapshot()
    stray = cid_for(b"unpinned content")
    a.blocks.put(stray, b"unpinned content")
    removed = list(collect_garbage(a.blocks, Pins(a.db), iter_links, extra_roots=a.replica.block_cids()))
    assert removed == [multihash_of(stray)]
    assert all(a.blocks.has(c) for c in a.replica.block_cids()) and a.blocks.has(root)
    a.reopen()
    assert len(a.replica.set) == 5


def test_missing_blocks_respects_limit_and_frontier(peers) -> None:
    a, b, c = peers("a", trusted_peers=["*"]), peers("b", trusted_peers=["*"]), peers("c", trusted_peers=["*"])
    a.replica.put(key(1), b"a")
    b.replica.put(key(2), b"b")
    b.send_heads(a)
    head = a.replica.put(key(3), b"merge")  # links both branches
    c.blocks.put(head, a.blocks.get(head))
    frontier = c.replica.missing_blocks(head)
    assert sorted(frontier) == sorted(decode_delta(a.blocks.get(head)).links)
    assert len(c.replica.missing_blocks(head, limit=1)) == 1


def test_large_batch_is_cut_into_several_deltas(peers) -> None:
    r = peers("a", max_batch_size=10, max_batch_age=1.0).replica
    head = r.apply_many([(PUT, key(i), b"v") for i in range(25)], now=0.0)
    assert head is not None and r.queued() == 5 and r.stats()["batches"] == 2
    r.commit()
    assert len(r.set) == 25 and r.height() == 3


def test_queued_deletes_replayed_after_restart(peers) -> None:
    a = peers("a", max_batch_size=100, max_batch_age=60.0)
    a.replica.put(key(1), b"v")
    a.replica.commit()
    a.replica.delete(key(1))
    a.reopen()
    a.replica.tick(0.0)
    assert a.replica.set.get(key(1)) is None and a.replica.queued() == 0


def test_local_writes_and_receives_from_several_threads(peers) -> None:
    import threading

    a, b = peers("a", trusted_peers=["*"]), peers("b", trusted_peers=["*"])
    for i in range(50):
        b.replica.put(key(1000 + i), b"b")
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            for i in range(100):
                a.replica.put(key(base + i), b"a")
        except BaseException as exc:  # reported below
            errors.append(exc)

    def receiver() -> None:
        try:
            b.send_heads(a)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n * 100,)) for n in range(3)] + [threading.Thread(target=receiver)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(a.replica.set) == 350 and 1 <= len(a.replica.heads()) <= 2
    a.send_heads(b)
    assert b.state() == a.state()


def test_head_that_is_not_dag_cbor_is_refused(peers) -> None:
    b = peers("b", trusted_peers=["*"])
    raw = cid_for(b"just bytes")
    with pytest.raises(DeltaError, match="not a dag-cbor CID"):
        b.replica.receive(raw, "a", lambda cid: b"just bytes")
    assert not b.blocks.has(raw) and not b.replica.is_dirty()


def test_transient_getter_error_keeps_head_pending(peers) -> None:
    a, b = peers("a"), peers("b", trusted_peers=["*"])
    a.replica.put(key(1), b"v")
    head = a.replica.heads()[0][0]

    def broken(cid: bytes) -> bytes | None:
        raise OSError("connection reset")

    with pytest.raises(OSError):
        b.replica.receive(head, "a", broken)
    assert b.replica.pending_heads() == [head] and b.replica.is_dirty()
    assert b.replica.resume(a.get_block) == 1 and not b.replica.is_dirty()


def test_branch_lists_the_stored_deltas_above_a_height(peers) -> None:
    """``branch`` is what a peer far behind fetches in one go; listing it lets b apply it in one walk."""
    a, b = peers("a", trusted_peers=["*"]), peers("b", trusted_peers=["*"])
    a.replica.put(key(0), b"v")
    a.send_heads(b)  # b is at height 1
    for i in range(1, 30):
        a.replica.put(key(i), b"v")
    head, height = a.replica.heads()[0]
    listed, absent = a.replica.branch(head, b.replica.height())
    assert len(listed) == height - 1 == 29 and listed[0] == head and absent == []
    assert [decode_delta(a.blocks.get(c)).priority for c in listed] == list(range(30, 1, -1))
    assert a.replica.branch(head, height) == ([], []) and len(a.replica.branch(head, 0, limit=5)[0]) == 5
    for cid in listed:
        b.blocks.put(cid, a.blocks.get(cid))
    assert b.replica.missing_blocks(head) == []
    assert b.replica.receive(head, "a", None).applied == 29 and b.state() == a.state()
    # blocks it does not hold (compacted deltas: a snapshot covers them) are named as such
    first = listed[-1]
    oldest = decode_delta(a.blocks.get(first)).links[0]
    b.blocks.delete(oldest)
    assert b.replica.branch(head, 0) == (listed, [oldest])
    nowhere = cid_for(b"not stored", codec=DAG_CBOR)
    assert b.replica.branch(nowhere, 0) == ([], [nowhere])


def test_failed_commit_keeps_the_queue_and_the_next_commit_takes_it(peers, monkeypatch) -> None:
    """Commits take their items from the queue held in memory: a commit whose write fails
    leaves them queued (in memory and on disk), the next commit writes them once, in order."""
    a = peers("a", max_batch_size=100, max_batch_age=60.0)
    r = a.replica
    r.apply_many([(PUT, key(i), b"v%d" % i) for i in range(5)], now=0.0)
    real = r._blocks.put

    def full(*_a, **_k):
        raise OSError("No space left on device")

    monkeypatch.setattr(r._blocks, "put", full)
    with pytest.raises(OSError):
        r.commit()
    assert r.queued() == 5 and len(r.set) == 0
    monkeypatch.setattr(r._blocks, "put", real)
    r.put(key(1), b"newer", now=0.0)  # queued after: wins over the first value of key 1
    head = r.commit()
    assert head is not None and r.queued() == 0
    assert [r.set.get(key(i)) for i in range(5)] == [b"v0", b"newer", b"v2", b"v3", b"v4"]
    assert len(decode_delta(r._blocks.get(head)).elements) == 5
    a.reopen()
    assert a.replica.queued() == 0 and a.replica.commit() is None  # nothing replayed twice


def test_a_replaced_key_is_tombstoned_and_a_new_key_is_not(peers) -> None:
    """A key without a value has no live elements (no scan): only replaced keys get tombstones."""
    r = peers("a").replica
    first = r.put(key(1), b"one")
    head = r.apply_many([(PUT, key(1), b"uno"), (PUT, key(2), b"two")])
    delta = decode_delta(r._blocks.get(head))
    assert delta.tombstones == ((key(1), first),)
    assert r.set.live_ids(key(1)) == [head] and r.set.live_ids(key(2)) == [head] and r.set.live_ids(key(3)) == []
    head = r.delete(key(2))
    assert r.set.live_ids(key(2)) == [] and r.set.get(key(2)) is None
    head = r.put(key(2), b"back")
    assert decode_delta(r._blocks.get(head)).tombstones == () and r.set.get(key(2)) == b"back"


def test_update_many_builds_from_the_values_it_read(peers) -> None:
    r = peers("a").replica
    r.put(key(1), b"one")
    seen: list[list[bytes | None]] = []

    def build(values: list[bytes | None]) -> list[tuple[int, bytes, bytes]]:
        seen.append(values)
        return [(PUT, key(i), (v or b"") + b"+") for i, v in zip((1, 2), values)]

    assert r.update_many([key(1), key(2)], build) is not None
    assert seen == [[b"one", None]]
    assert r.set.get(key(1)) == b"one+" and r.set.get(key(2)) == b"+"

    def refuse(_values: list[bytes | None]) -> list[tuple[int, bytes, bytes]]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        r.update_many([key(3)], refuse)
    assert r.set.get(key(3)) is None and r.queued() == 0
