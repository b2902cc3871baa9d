"""The server engine (sans-I/O): answers, ledgers, fairness, bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bitswap.engine import Engine
from bitswap.message import DONT_HAVE, HAVE, WANT_BLOCK, WANT_HAVE, Message, Presence, WantEntry, block_cid
from blockstore.cid import RAW, cid_for


class DictSource:
    """A block source over a dict (the engine only needs get and size)."""

    def __init__(self, blocks: dict[bytes, bytes] | None = None) -> None:
        self.blocks = dict(blocks or {})

    def add(self, data: bytes) -> bytes:
        cid = cid_for(data, RAW)
        self.blocks[cid] = data
        return cid

    def get(self, cid: bytes) -> bytes | None:
        return self.blocks.get(cid)

    def size(self, cid: bytes) -> int | None:
        data = self.blocks.get(cid)
        return None if data is None else len(data)


def wants(*entries: WantEntry, full: bool = False) -> Message:
    return Message(wantlist=list(entries), full=full)


def drain(engine: Engine) -> list[tuple[object, Message]]:
    out = []
    while (item := engine.next_message()) is not None:
        out.append(item)
    return out


def test_want_block_present_gets_the_block_and_leaves_the_ledger() -> None:
    src = DictSource()
    cid = src.add(b"x" * 2000)
    eng = Engine(src)
    eng.receive("p", wants(WantEntry(cid)))
    [(peer, msg)] = drain(eng)
    assert peer == "p"
    assert [block_cid(b.prefix, b.data) for b in msg.blocks] == [cid]
    assert eng.wantlist("p") == []
    assert eng.stats.blocks_sent == 1 and eng.stats.bytes_sent == 2000


def test_want_have_answers_have_or_small_block_or_dont_have() -> None:
    src = DictSource()
    big = src.add(b"b" * 5000)
    small = src.add(b"s" * 100)
    missing = cid_for(b"missing", RAW)
    eng = Engine(src)
    eng.receive(
        "p",
        wants(
            WantEntry(big, want_type=WANT_HAVE, send_dont_have=True),
            WantEntry(small, want_type=WANT_HAVE, send_dont_have=True),
            WantEntry(missing, want_type=WANT_HAVE, send_dont_have=True),
        ),
    )
    [(_, msg)] = drain(eng)
    assert [block_cid(b.prefix, b.data) for b in msg.blocks] == [small]
    assert msg.presences == [Presence(big, HAVE), Presence(missing, DONT_HAVE)]


def test_missing_without_send_dont_have_is_silent_then_served_when_it_arrives() -> None:
    src = DictSource()
    data = b"late block"
    cid = cid_for(data, RAW)
    eng = Engine(src)
    eng.receive("p", wants(WantEntry(cid)))
    assert drain(eng) == []
    assert eng.wantlist("p") == [WantEntry(cid)]
    src.blocks[cid] = data
    eng.notify_new_blocks([cid])
    [(_, msg)] = drain(eng)
    assert msg.blocks[0].data == data


def test_dont_have_keeps_the_want_for_later() -> None:
    src = DictSource()
    cid = cid_for(b"later", RAW)
    eng = Engine(src)
    eng.receive("p", wants(WantEntry(cid, want_type=WANT_BLOCK, send_dont_have=True)))
    [(_, msg)] = drain(eng)
    assert msg.presences == [Presence(cid, DONT_HAVE)]
    src.blocks[cid] = b"later"
    eng.notify_new_blocks([cid])
    [(_, msg)] = drain(eng)
    assert msg.blocks[0].data == b"later"


def test_cancel_and_full_wantlist() -> None:
    src = DictSource()
    a, b, c = (cid_for(bytes([i]), RAW) for i in range(3))
    eng = Engine(src)
    eng.receive("p", wants(WantEntry(a), WantEntry(b)))
    eng.receive("p", wants(WantEntry(a, cancel=True)))
    assert [e.cid for e in eng.wantlist("p")] == [b]
    eng.receive("p", wants(WantEntry(c), full=True))
    assert [e.cid for e in eng.wantlist("p")] == [c]
    eng.receive("p", wants(WantEntry(c, cancel=True)))
    assert eng.peers() == [] and drain(eng) == []


def test_priority_order_and_message_size_bound() -> None:
    src = DictSource()
    cids = [src.add(bytes([i]) * 40_000) for i in range(10)]
    eng = Engine(src, target_message_bytes=100_000)
    eng.receive("p", wants(*[WantEntry(c, priority=i) for i, c in enumerate(cids)]))
    msgs = drain(eng)
    order = [block_cid(b.prefix, b.data) for _, m in msgs for b in m.blocks]
    assert order == cids[::-1]
    assert all(sum(len(b.data) for b in m.blocks) <= 100_000 for _, m in msgs)
    assert len(msgs) == 5


def test_one_block_larger_than_the_target_is_still_sent() -> None:
    src = DictSource()
    cid = src.add(b"z" * 300_000)
    eng = Engine(src, target_message_bytes=16 * 1024)
    eng.receive("p", wants(WantEntry(cid)))
    [(_, msg)] = drain(eng)
    assert len(msg.blocks) == 1


def test_round_robin_across_peers() -> None:
    src = DictSource()
    cids = [src.add(bytes([i]) * 1000 + b"pad") for i in range(30)]
    eng = Engine(src, target_message_bytes=1500)
    eng.receive("greedy", wants(*[WantEntry(c) for c in cids]))
    eng.receive("small", wants(WantEntry(cids[0])))
    first_two = [eng.next_message()[0], eng.next_message()[0]]  # type: ignore[index]
    assert sorted(first_two) == ["greedy", "small"]


def test_busy_peers_are_skipped() -> None:
    src = DictSource()
    cid = src.add(b"busy")
    eng = Engine(src)
    eng.receive("p", wants(WantEntry(cid)))
    assert eng.next_message(busy={"p"}) is None
    assert eng.has_work()
    assert eng.next_message()[0] == "p"  # type: ignore[index]


def test_wants_per_peer_are_bounded_with_priority_eviction() -> None:
    eng = Engine(DictSource(), max_wants_per_peer=4)
    low = [cid_for(bytes([i]), RAW) for i in range(4)]
    eng.receive("p", wants(*[WantEntry(c, priority=1) for c in low]))
    eng.receive("p", wants(WantEntry(cid_for(b"low", RAW), priority=1)))
    assert len(eng.wantlist("p")) == 4 and eng.stats.wants_rejected == 1
    high = cid_for(b"high", RAW)
    eng.receive("p", wants(WantEntry(high, priority=9)))
    assert len(eng.wantlist("p")) == 4
    assert high in [e.cid for e in eng.wantlist("p")]


def test_a_ledger_full_of_wants_for_absent_blocks_still_serves_a_present_block() -> None:
    """A peer whose ledger is full of wants we answered DONT_HAVE (blocks we do not hold, e.g.
    CRDT deltas every peer compacted away) still gets a block we hold: the oldest absent want
    makes room (as boxo does since ipfs/boxo#629), instead of the new want being rejected."""
    src = DictSource()
    eng = Engine(src, max_wants_per_peer=4)
    absent = [cid_for(b"gone %d" % i, RAW) for i in range(4)]
    eng.receive("p", wants(*[WantEntry(c, want_type=WANT_HAVE, send_dont_have=True) for c in absent]))
    [(_, msg)] = drain(eng)
    assert {x.cid for x in msg.presences} == set(absent)
    present = src.add(b"snapshot root")
    eng.receive("p", wants(WantEntry(present, want_type=WANT_HAVE, send_dont_have=True)))
    [(_, msg)] = drain(eng)
    assert [block_cid(b.prefix, b.data) for b in msg.blocks] == [present]
    assert len(eng.wantlist("p")) == 3 and present not in [e.cid for e in eng.wantlist("p")]
    assert absent[0] not in [e.cid for e in eng.wantlist("p")]  # the oldest absent want went first
    # an absent want that was evicted and then arrives is no longer waited for; the others still are
    src.blocks[absent[1]] = b"gone 1"
    eng.notify_new_blocks([absent[1]])
    [(_, msg)] = drain(eng)
    assert [block_cid(b.prefix, b.data) for b in msg.blocks] == [absent[1]]


def test_disconnect_forgets_the_ledger() -> None:
    src = DictSource()
    cid = src.add(b"d")
    eng = Engine(src)
    eng.receive("p", wants(WantEntry(cid)))
    eng.peer_disconnected("p")
    assert eng.peers() == [] and eng.next_message() is None and not eng.has_work()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 15), st.booleans(), st.booleans()),
        max_size=60,
    )
)
def test_every_answer_matches_a_live_want(ops: list[tuple[str, int, bool, bool]]) -> None:
    src = DictSource()
    cids = [cid_for(bytes([i]), RAW) for i in range(16)]
    for i in range(0, 16, 2):
        src.blocks[cids[i]] = bytes([i])
    eng = Engine(src, max_wants_per_peer=8, target_message_bytes=64)
    live: dict[str, set[bytes]] = {"a": set(), "b": set(), "c": set()}
    for peer, i, cancel, have in ops:
        entry = WantEntry(cids[i], cancel=cancel, want_type=WANT_HAVE if have else WANT_BLOCK, send_dont_have=True)
        eng.receive(peer, wants(entry))
        live[peer] = {e.cid for e in eng.wantlist(peer)}
        item = eng.next_message()
        if item is not None:
            p, msg = item
            answered = {block_cid(b.prefix, b.data) for b in msg.blocks} | {x.cid for x in msg.presences}
            assert answered <= live[p]
            live[p] = {e.cid for e in eng.wantlist(p)}
        assert all(len(eng.wantlist(p)) <= 8 for p in live)
