"""A new peer's snapshot load as a bulk ingest: sorted runs give the state the key-by-key merge gives,
elements out of order fall back to it, and version-1 snapshots still load."""

from __future__ import annotations

import tempfile
from pathlib import Path

import libipld
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockstore.cid import DAG_CBOR, cid_for, cid_to_str
from blockstore.db import open_db
from blockstore.layout import NS_CRDT
from cluster.crdt import layout as L
from cluster.crdt.orset import ORSet, OutOfOrder
from cluster.crdt.snapshot import build_snapshot, decode_elements

from .helpers import Peer, key


def _terms(_k: bytes, v: bytes):
    yield b"v=" + v[8:9]  # records carry the 8-byte priority first


def _dump(db) -> list[tuple[bytes, bytes]]:
    return list(db.iterator(prefix=NS_CRDT))  # every CRDT key: values, elements, index, count


element = st.tuples(st.integers(0, 6), st.integers(0, 4), st.integers(1, 3), st.binary(max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elems=st.lists(element, max_size=30, unique_by=lambda e: (e[0], e[1])), cuts=st.lists(st.integers(0, 30), max_size=5))
def test_sorted_runs_in_chunks_give_the_state_of_the_key_by_key_merge(elems, cuts) -> None:
    records = sorted(
        (L.keyed(L.ELEMENT, key(k)), key(k), cid_for(b"delta %d" % i), L.u64(p) + v) for k, i, p, v in elems
    )
    records = sorted(records, key=lambda r: (r[0], r[2]))  # element-key order: key prefix, then id
    items = [(k, i, r) for _p, k, i, r in records]
    bounds = sorted({0, len(items), *(c for c in cuts if c <= len(items))})
    with tempfile.TemporaryDirectory() as tmp:
        fast_db, slow_db = open_db(Path(tmp) / "fast"), open_db(Path(tmp) / "slow")
        try:
            fast, slow = ORSet(fast_db, _terms), ORSet(slow_db, _terms)
            carry = None
            fast_changes = {}
            for lo, hi in zip(bounds, bounds[1:]):
                with fast_db.write_batch(transaction=True) as wb:
                    changes, carry = fast.merge_sorted_into_empty(wb, items[lo:hi], carry)
                fast_changes.update((c.key, c.value) for c in changes)
            with slow_db.write_batch(transaction=True) as wb:
                slow_changes = {c.key: c.value for c in slow.merge_into_empty(wb, items)}
            assert _dump(fast_db) == _dump(slow_db)
            assert len(fast) == len(slow) == len({k for k, _i, _r in items})
            assert fast_changes == slow_changes  # the last change of each key is its value
        finally:
            fast_db.close()
            slow_db.close()


def test_out_of_order_elements_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    try:
        s = ORSet(db)
        a, b = sorted([key(1), key(2)])
        rec = L.u64(1) + b"v"
        for items, carry in (
            ([(b, key(9), rec), (a, key(9), rec)], None),  # keys descending
            ([(a, key(9), rec), (a, key(9), rec)], None),  # one element twice
            ([(a, key(9), rec)], (b, rec)),  # before the previous call's last key
        ):
            with pytest.raises(OutOfOrder):
                with db.write_batch(transaction=True) as wb:
                    s.merge_sorted_into_empty(wb, items, carry)
            assert len(s) == 0 and list(db.iterator(prefix=L.VALUE)) == []
    finally:
        db.close()


def test_a_snapshot_with_elements_out_of_order_still_loads_right(tmp_path: Path) -> None:
    """A snapshot another implementation (or a bug) wrote unsorted: the load goes key by key."""
    a, c = Peer(tmp_path / "a", trusted_peers=["*"]), Peer(tmp_path / "c", trusted_peers=["*"])
    try:
        for i in range(50):
            a.replica.put(key(i), b"v%d" % i)
        heads = a.replica.heads()
        covered = [k[len(L.PROCESSED):] for k in a.db.iterator(prefix=L.PROCESSED, include_value=False)]
        elems = []
        for k, v in a.db.iterator(prefix=L.ELEMENT):
            kk, eid = L.split_keyed(L.ELEMENT, k)
            elems.append((kk, eid, L.read_u64(v), v[8:]))
        root = b""
        for cid, data in build_snapshot(heads, covered, elems[::-1]):  # reversed: out of key order
            a.blocks.put(cid, data)
            root = cid
        assert c.replica.load_snapshot(root, a.get_block) == 50
        assert c.state() == a.state() and len(c.replica.set) == 50
        a.replica.put(key(99), b"after")
        a.send_heads(c)
        assert c.state() == a.state()
    finally:
        a.close()
        c.close()


def test_a_version_1_snapshot_still_loads(tmp_path: Path) -> None:
    a, c = Peer(tmp_path / "a", trusted_peers=["*"]), Peer(tmp_path / "c", trusted_peers=["*"])
    try:
        for i in range(30):
            a.replica.put(key(i), b"w%d" % i)
        a.replica.delete(key(3))
        covered = [cid_to_str(k[len(L.PROCESSED):]) for k in a.db.iterator(prefix=L.PROCESSED, include_value=False)]
        elems = []
        for k, v in a.db.iterator(prefix=L.ELEMENT):
            kk, eid = L.split_keyed(L.ELEMENT, k)
            elems.append([cid_to_str(kk), cid_to_str(eid), L.read_u64(v), v[8:]])
        chunks = [libipld.encode_dag_cbor({"c": covered}), libipld.encode_dag_cbor({"e": elems})]
        links = [cid_for(d, DAG_CBOR) for d in chunks]
        assert decode_elements(chunks[1]) == [
            (kk, eid, p, v) for kk, eid, p, v in ((L.split_keyed(L.ELEMENT, k) + (L.read_u64(v), v[8:])) for k, v in a.db.iterator(prefix=L.ELEMENT))
        ]
        root_data = libipld.encode_dag_cbor(
            {
                "v": 1,
                "kind": "pinion-crdt-snapshot",
                "heads": [[cid_to_str(h), n] for h, n in a.replica.heads()],
                "count": len(elems),
                "covered": [links[0]],
                "elements": [links[1]],
            }
        )
        root = cid_for(root_data, DAG_CBOR)
        for cid, data in [(root, root_data), *zip(links, chunks)]:
            a.blocks.put(cid, data)
        assert c.replica.load_snapshot(root, a.get_block) == 29
        assert c.state() == a.state() and c.replica.heads() == a.replica.heads()
    finally:
        a.close()
        c.close()
