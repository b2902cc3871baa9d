"""PeerBook: known peer addresses in LevelDB, per host, most recent first, bounded."""

from __future__ import annotations

import plyvel
import pytest

from blockstore.layout import NS_NODE
from node.p2p.peerstore import MAX_ADDRS_PER_PEER, PeerBook


@pytest.fixture
def db(tmp_path):
    d = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    yield d
    d.close()


def test_remember_orders_dedupes_bounds_and_persists(db, tmp_path) -> None:
    book = PeerBook(db, "swarm")
    for port in range(MAX_ADDRS_PER_PEER + 3):
        book.remember("12D3KooWpeer", f"/ip4/10.0.0.1/tcp/{port}")
    book.remember("12D3KooWpeer", "/ip4/10.0.0.1/tcp/5")  # seen again: moves to the front
    addrs = book.addrs("12D3KooWpeer")
    assert addrs[0] == "/ip4/10.0.0.1/tcp/5" and len(addrs) == MAX_ADDRS_PER_PEER and len(set(addrs)) == len(addrs)
    assert addrs[1] == f"/ip4/10.0.0.1/tcp/{MAX_ADDRS_PER_PEER + 2}"
    assert all(k.startswith(NS_NODE + b"peers/swarm/") for k, _ in db.iterator(prefix=NS_NODE))


def test_hosts_have_separate_books_and_forget(db) -> None:
    swarm, cluster = PeerBook(db, "swarm"), PeerBook(db, "cluster")
    swarm.remember("A", "/ip4/1.2.3.4/tcp/4001")
    cluster.remember("B", "/ip4/1.2.3.4/tcp/9096")
    assert swarm.known() == {"A": ["/ip4/1.2.3.4/tcp/4001"]}
    assert cluster.known() == {"B": ["/ip4/1.2.3.4/tcp/9096"]}
    swarm.forget("A")
    swarm.forget("A")
    assert swarm.known() == {} and swarm.addrs("A") == []
    assert PeerBook(db, "cluster").known() == {"B": ["/ip4/1.2.3.4/tcp/9096"]}


@pytest.mark.parametrize("peer, addr", [("", "/ip4/1.1.1.1/tcp/1"), ("a/b", "/ip4/1.1.1.1/tcp/1"), ("A", "1.1.1.1:1"), ("A", "/ip4/1\n/x")])
def test_bad_entries_are_refused(db, peer: str, addr: str) -> None:
    with pytest.raises(ValueError):
        PeerBook(db, "swarm").remember(peer, addr)


def test_bad_host_name_is_refused(db) -> None:
    with pytest.raises(ValueError, match="host name"):
        PeerBook(db, "a/b")


def test_seqno_floor_per_host_round_trips_and_ignores_garbage(db) -> None:
    from node.p2p.seqno import SEQNO_PREFIX, SeqnoFloor

    floor = SeqnoFloor(db, "cluster")
    assert floor.get() == 0
    floor.set(1_800_000_000_000_000_000)
    assert SeqnoFloor(db, "cluster").get() == 1_800_000_000_000_000_000
    assert SeqnoFloor(db, "swarm").get() == 0
    db.put(SEQNO_PREFIX + b"cluster", b"not a number")
    assert floor.get() == 0
    with pytest.raises(ValueError):
        SeqnoFloor(db, "a/b")


def test_learn_replaces_known_peers_and_adds_new_ones_only_when_asked(db, monkeypatch) -> None:
    import node.p2p.peerstore as ps

    book = PeerBook(db, "cluster")
    book.remember("12D3KooWknown", "/ip4/10.0.0.1/tcp/9096")
    # what a known peer announces replaces what we had (it moved)
    assert book.learn("12D3KooWknown", ["/ip4/10.0.0.9/tcp/9096", "/ip4/10.0.0.9/tcp/9096", "/ip4/127.0.0.1/tcp/9096"])
    assert book.addrs("12D3KooWknown") == ["/ip4/10.0.0.9/tcp/9096", "/ip4/127.0.0.1/tcp/9096"]
    assert not book.learn("12D3KooWknown", [])  # an empty announcement keeps the old addresses
    assert book.addrs("12D3KooWknown") == ["/ip4/10.0.0.9/tcp/9096", "/ip4/127.0.0.1/tcp/9096"]
    # an unknown peer is added only with add=True, and only up to MAX_LEARNT_PEERS
    assert not book.learn("12D3KooWnew", ["/ip4/10.0.0.2/tcp/9096"])
    assert book.addrs("12D3KooWnew") == []
    assert book.learn("12D3KooWnew", ["/ip4/10.0.0.2/tcp/9096"], add=True)
    monkeypatch.setattr(ps, "MAX_LEARNT_PEERS", 2)
    assert not book.learn("12D3KooWthird", ["/ip4/10.0.0.3/tcp/9096"], add=True)
    assert book.count() == 2
    assert book.learn("12D3KooWknown", [f"/ip4/10.0.1.{i}/tcp/1" for i in range(20)])
    assert len(book.addrs("12D3KooWknown")) == MAX_ADDRS_PER_PEER
    with pytest.raises(ValueError):
        book.learn("12D3KooWknown", ["not/a\nmultiaddr"])
