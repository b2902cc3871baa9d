"""The LevelDB provider store and the server core: limits, expiry with an injected clock,
validation of ADD_PROVIDER, answers to FIND_NODE / GET_PROVIDERS / GET_VALUE / PUT_VALUE."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitswap.routing.kad_keyspace import kad_point
from bitswap.routing.kad_message import (
    ADD_PROVIDER,
    FIND_NODE,
    GET_PROVIDERS,
    GET_VALUE,
    PING,
    PUT_VALUE,
    KadMessage,
    Peer,
    Record,
)
from bitswap.routing.kad_server import KadRequestError, KadServer
from bitswap.routing.kad_table import RoutingTable
from bitswap.routing.providers_store import FULL, KEY_FULL, PEER_FULL, RENEWED, STORED, ProviderStore
from blockstore.db import open_db

H = 3600.0
ADDR = b"\x04\x7f\x00\x00\x01\x06\x0f\xa1"


def mh(i: int) -> bytes:
    return b"\x12\x20" + hashlib.sha256(b"key%d" % i).digest()


def pid(i: int) -> bytes:
    return b"\x12\x20" + hashlib.sha256(b"peer%d" % i).digest()


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = open_db(tmp_path / "db")
    yield d
    d.close()


def test_records_expire_after_48_hours_and_the_sweeper_deletes_them(db) -> None:  # type: ignore[no-untyped-def]
    store = ProviderStore(db)
    assert store.add(mh(1), pid(1), [ADDR], now=1000.0) == STORED
    assert store.add(mh(1), pid(2), [ADDR], now=1000.0 + 10 * H) == STORED
    assert sorted(r.peer for r in store.providers(mh(1), 1000.0 + 47 * H)) == sorted([pid(1), pid(2)])
    assert [r.peer for r in store.providers(mh(1), 1000.0 + 48 * H)] == [pid(2)]  # expired, not yet swept
    assert store.count() == 2
    assert store.sweep(1000.0 + 48 * H) == 1
    assert store.count() == 1 and store.count_for_key(mh(1)) == 1 and store.count_for_peer(pid(1)) == 0
    assert store.sweep(1000.0 + 59 * H) == 1
    assert store.count() == 0 and store.providers(mh(1), 0.0) == []
    assert list(db.iterator(prefix=b"r/", include_value=False)) == [b"r/t"]  # nothing left behind


def test_renewing_moves_the_expiry_and_keeps_counts(db) -> None:  # type: ignore[no-untyped-def]
    store = ProviderStore(db)
    store.add(mh(1), pid(1), [ADDR], now=0.0)
    assert store.add(mh(1), pid(1), [ADDR, ADDR + b"x"], now=40 * H) == RENEWED
    assert store.count() == 1 and store.count_for_peer(pid(1)) == 1
    assert store.sweep(50 * H) == 0  # the old expiry index entry is gone
    (rec,) = store.providers(mh(1), 50 * H)
    assert rec.addrs == [ADDR, ADDR + b"x"] and rec.expires == 88 * H
    # the same record twice in one batch counts once
    assert store.add_many([(mh(2), pid(1), [ADDR]), (mh(2), pid(1), [ADDR])], 0.0) == [STORED, RENEWED]
    assert store.count() == 2 and store.sweep(100 * H) == 2 and store.count() == 0


def test_limits_total_per_key_and_per_peer(db) -> None:  # type: ignore[no-untyped-def]
    store = ProviderStore(db, max_records=10, max_per_key=3, max_per_peer=4)
    assert store.add_many([(mh(1), pid(i), [ADDR]) for i in range(5)], 0.0) == [STORED] * 3 + [KEY_FULL] * 2
    assert store.add_many([(mh(i), pid(9), [ADDR]) for i in range(10, 16)], 0.0) == [STORED] * 4 + [PEER_FULL] * 2
    assert store.add_many([(mh(i), pid(i), [ADDR]) for i in range(20, 25)], 0.0) == [STORED] * 3 + [FULL] * 2
    assert store.count() == 10
    assert store.add(mh(1), pid(0), [ADDR], 1.0) == RENEWED  # renewals still pass when full
    # the total survives a reopen (kept in LevelDB with the records)
    assert ProviderStore(db).count() == 10


def test_a_flood_from_one_peer_is_bounded_on_disk_and_in_memory(db) -> None:  # type: ignore[no-untyped-def]
    store = ProviderStore(db, max_per_peer=1000)
    outcomes = store.add_many([(mh(i), pid(1), [ADDR] * 40) for i in range(5000)], 0.0)
    assert outcomes.count(STORED) == 1000 and outcomes.count(PEER_FULL) == 4000
    assert store.count() == 1000
    (rec,) = store.providers(mh(1), 0.0)
    assert len(rec.addrs) == 16  # max_addrs


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 8), st.integers(0, 100)), max_size=60), st.integers(0, 200))
@settings(max_examples=40, deadline=None)
def test_counts_always_match_the_records(tmp_path_factory, ops, sweep_at) -> None:  # type: ignore[no-untyped-def]
    d = open_db(tmp_path_factory.mktemp("p"))
    try:
        store = ProviderStore(d, validity=50.0, max_per_key=5, max_per_peer=7, max_records=40)
        for k, p, t in ops:
            store.add(mh(k), pid(p), [ADDR], float(t))
        store.sweep(float(sweep_at))
        rows = list(d.iterator(prefix=b"r/p/", include_value=False))
        assert store.count() == len(rows) <= 40
        for k in range(21):
            assert store.count_for_key(mh(k)) == sum(1 for r in rows if r.startswith(b"r/p/" + mh(k))) <= 5
        for p in range(9):
            assert store.count_for_peer(pid(p)) == sum(1 for r in rows if r.endswith(pid(p))) <= 7
    finally:
        d.close()


# --------------------------------------------------------------------- server core
def server(db, peers: int = 30) -> KadServer:  # type: ignore[no-untyped-def]
    table = RoutingTable(pid(0))
    for i in range(1, peers):
        table.add(pid(i), 0.0)
    known = {pid(i): ([ADDR], i % 2 == 0) for i in range(0, peers)}
    return KadServer(pid(0), table, ProviderStore(db), lambda p: known.get(p, ([], False)))


def test_add_provider_is_stored_only_for_the_sender_with_addresses(db) -> None:  # type: ignore[no-untyped-def]
    srv = server(db)
    sender = pid(5)
    msg = KadMessage(ADD_PROVIDER, key=mh(1), providers=[Peer(pid(6), [ADDR]), Peer(sender, []), Peer(sender, [ADDR])])
    assert srv.handle(sender, msg, 0.0) is None
    recs = srv.store.providers(mh(1), 0.0)
    assert [(r.peer, r.addrs) for r in recs] == [(sender, [ADDR])]
    assert srv.stats.providers_rejected == 2 and srv.stats.records_stored == 1
    # someone else announcing for sender: nothing stored
    srv.handle(pid(7), KadMessage(ADD_PROVIDER, key=mh(2), providers=[Peer(sender, [ADDR])]), 0.0)
    assert srv.store.providers(mh(2), 0.0) == []


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        (KadMessage(ADD_PROVIDER, key=b""), "missing key"),
        (KadMessage(ADD_PROVIDER, key=b"\x12\x20abc"), "not a multihash"),
        (KadMessage(GET_PROVIDERS, key=b"\x12\x20" + bytes(32) + b"x"), "not a multihash"),
        (KadMessage(GET_PROVIDERS, key=b"\x12\x51" + bytes(81)), "exceeds 80"),
        (KadMessage(FIND_NODE, key=b""), "FIND_NODE without a key"),
        (KadMessage(PUT_VALUE, key=b"/ipns/x", record=Record(b"/ipns/x", b"v")), "PUT_VALUE is not supported"),
    ],
)
def test_bad_requests_raise(db, msg: KadMessage, error: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KadRequestError, match=error):
        server(db).handle(pid(3), msg, 0.0)


def test_a_bad_request_in_a_batch_keeps_what_came_before(db) -> None:  # type: ignore[no-untyped-def]
    srv = server(db)
    good = KadMessage(ADD_PROVIDER, key=mh(1), providers=[Peer(pid(3), [ADDR])])
    with pytest.raises(KadRequestError):
        srv.handle_batch(pid(3), [good, KadMessage(ADD_PROVIDER, key=b"")], 0.0)
    assert srv.store.count() == 1 and srv.stats.bad_requests == 1


def test_find_node_get_providers_get_value_and_ping_answers(db) -> None:  # type: ignore[no-untyped-def]
    srv = server(db)
    target = pid(100)
    ans = srv.handle(pid(3), KadMessage(FIND_NODE, key=target), 0.0)
    assert ans is not None and ans.type == FIND_NODE
    ids = [p.id for p in ans.closer]
    assert pid(3) not in ids and len(ids) == 20
    assert ids == sorted(ids, key=lambda p: kad_point(p) ^ kad_point(target))
    assert all(p.addrs == [ADDR] for p in ans.closer)
    # asking for a peer we know: it comes first; asking for us: we come first
    ans = srv.handle(pid(3), KadMessage(FIND_NODE, key=pid(7)), 0.0)
    assert ans is not None and ans.closer[0].id == pid(7) and len(ans.closer) == 20
    ans = srv.handle(pid(3), KadMessage(FIND_NODE, key=pid(0)), 0.0)
    assert ans is not None and ans.closer[0].id == pid(0)
    srv.handle(pid(8), KadMessage(ADD_PROVIDER, key=mh(1), providers=[Peer(pid(8), [ADDR])]), 0.0)
    ans = srv.handle(pid(3), KadMessage(GET_PROVIDERS, key=mh(1)), 0.0)
    assert ans is not None and [(p.id, p.addrs) for p in ans.providers] == [(pid(8), [ADDR])] and ans.key == mh(1)
    assert len(ans.closer) == 20
    ans = srv.handle(pid(3), KadMessage(GET_VALUE, key=b"/ipns/abc"), 0.0)
    assert ans is not None and ans.record is None and len(ans.closer) == 20
    assert srv.handle(pid(3), KadMessage(PING), 0.0) == KadMessage(PING)
