"""The client want manager (sans-I/O): who gets asked what, timeouts, verification, cancels."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bitswap.client import WantManager
from bitswap.message import DONT_HAVE, HAVE, WANT_BLOCK, WANT_HAVE, Block, Message, Presence, block_prefix
from blockstore.cid import RAW, cid_for, make_cid, multihash_of


def blk(data: bytes) -> tuple[bytes, Block]:
    cid = cid_for(data, RAW)
    return cid, Block(block_prefix(cid), data)


def sent(wm: WantManager) -> dict[object, list[tuple[bytes, int, bool]]]:
    return {p: [(e.cid, e.want_type, e.cancel) for e in m.wantlist] for p, m in wm.take_outgoing().items()}


def test_new_want_goes_as_want_block_to_the_first_peer_and_want_have_to_others() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    cid, _ = blk(b"x")
    wm.want([cid], 0)
    assert sent(wm) == {"a": [(cid, WANT_BLOCK, False)], "b": [(cid, WANT_HAVE, False)]}
    assert wm.is_wanted(cid) and len(wm) == 1


def test_have_then_want_block_then_block_then_cancel_to_others() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    cid, block = blk(b"payload")
    wm.want([cid], 0)
    sent(wm)
    wm.receive("b", Message(presences=[Presence(cid, HAVE)]), 1)
    assert sent(wm) == {}  # "a" has the optimistic want-block
    wm.receive("a", Message(presences=[Presence(cid, DONT_HAVE)]), 1)
    assert sent(wm) == {"b": [(cid, WANT_BLOCK, False)]}
    got = wm.receive("b", Message(blocks=[block]), 2)
    assert got.blocks == [(cid, b"payload")]
    assert sent(wm) == {"a": [(cid, WANT_BLOCK, True)]}
    assert not wm.is_wanted(cid) and wm.stats.blocks_received == 1 and wm.score("b") == 1


def test_peer_that_delivered_gets_optimistic_want_block() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    c1, b1 = blk(b"one")
    wm.want([c1], 0)
    wm.receive("a", Message(blocks=[b1]), 0)
    sent(wm)
    c2, _ = blk(b"two")
    wm.want([c2], 1)
    assert sent(wm) == {"a": [(c2, WANT_BLOCK, False)], "b": [(c2, WANT_HAVE, False)]}


def test_dont_have_moves_to_the_next_candidate() -> None:
    wm = WantManager()
    for p in "abc":
        wm.add_peer(p, 0)
    cid, block = blk(b"moving")
    wm.want([cid], 0)
    assert sent(wm)["a"] == [(cid, WANT_BLOCK, False)]
    wm.receive("c", Message(presences=[Presence(cid, HAVE)]), 0)
    assert sent(wm) == {}  # the optimistic want-block to "a" is outstanding
    wm.receive("a", Message(presences=[Presence(cid, DONT_HAVE)]), 0)
    assert sent(wm) == {"c": [(cid, WANT_BLOCK, False)]}
    wm.receive("c", Message(presences=[Presence(cid, DONT_HAVE)]), 0)
    assert sent(wm) == {}
    wm.receive("b", Message(presences=[Presence(cid, HAVE)]), 0)
    assert sent(wm) == {"b": [(cid, WANT_BLOCK, False)]}
    wm.receive("b", Message(blocks=[block]), 1)
    assert sent(wm) == {"a": [(cid, WANT_BLOCK, True)], "c": [(cid, WANT_BLOCK, True)]}


def test_entries_a_peer_holds_are_not_sent_again() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    cid, block = blk(b"once")
    wm.want([cid], 0)
    assert sent(wm) == {"a": [(cid, WANT_BLOCK, False)], "b": [(cid, WANT_HAVE, False)]}
    wm.want([cid], 0)  # a second local caller: nothing new on the wire
    wm.receive("b", Message(presences=[Presence(cid, HAVE)]), 0)
    assert sent(wm) == {}
    assert wm.held_by("a") == {multihash_of(cid): WANT_BLOCK}
    assert wm.held_by("b") == {multihash_of(cid): WANT_HAVE}
    wm.receive("a", Message(blocks=[block]), 1)
    # "a" dropped the want when it sent the block: only "b" gets a cancel
    assert sent(wm) == {"b": [(cid, WANT_BLOCK, True)]}
    assert wm.held_by("a") == {} and wm.held_by("b") == {}


def test_a_batch_of_wants_is_one_message_per_peer() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    cids = [blk(bytes([i]) * 3)[0] for i in range(50)]
    wm.want(cids, 0)
    out = sent(wm)
    assert out == {"a": [(c, WANT_BLOCK, False) for c in cids], "b": [(c, WANT_HAVE, False) for c in cids]}


def test_cancel_of_a_want_never_sent_is_not_sent() -> None:
    wm = WantManager()
    cid, _ = blk(b"local only")
    wm.want([cid], 0)
    wm.cancel([cid], 0)
    wm.add_peer("a", 1)
    assert sent(wm) == {}


def test_slow_peer_times_out_is_scored_down_and_cancelled() -> None:
    wm = WantManager(block_timeout=5, have_timeout=3)
    wm.add_peer("slow", 0)
    wm.add_peer("fast", 0)
    cid, block = blk(b"slowpoke")
    wm.want([cid], 0)
    wm.receive("slow", Message(presences=[Presence(cid, HAVE)]), 0)
    sent(wm)
    wm.tick(1)  # "fast" has not answered its want-have yet, but it is not late
    assert sent(wm) == {}
    wm.receive("fast", Message(presences=[Presence(cid, HAVE)]), 2)
    wm.tick(5)
    assert sent(wm) == {"slow": [(cid, WANT_BLOCK, True)], "fast": [(cid, WANT_BLOCK, False)]}
    assert wm.score("slow") < 0 and wm.stats.timeouts == 1


def test_silent_peers_and_rebroadcast() -> None:
    wm = WantManager(have_timeout=2, rebroadcast_interval=10)
    wm.add_peer("mute", 0)
    cid, _ = blk(b"nobody has it")
    wm.want([cid], 0)
    sent(wm)
    wm.tick(3)
    assert sent(wm) == {}
    wm.tick(10)
    assert sent(wm) == {"mute": [(cid, WANT_HAVE, False)]}


def test_wrong_and_unrequested_blocks_are_dropped_and_scored_down() -> None:
    wm = WantManager()
    wm.add_peer("evil", 0)
    cid, _ = blk(b"the real data")
    wm.want([cid], 0)
    forged = Block(block_prefix(cid), b"forged data")  # same prefix, other bytes: hashes elsewhere
    got = wm.receive("evil", Message(blocks=[forged]), 0)
    assert got.blocks == [] and got.dropped == 1
    assert wm.is_wanted(cid) and wm.score("evil") == -1 and wm.stats.unwanted_blocks == 1
    bad_prefix = Block(b"\x01\x55\x99\x01\x20", b"data")
    assert wm.receive("evil", Message(blocks=[bad_prefix]), 0).dropped == 1
    assert wm.stats.invalid_blocks == 1


def test_duplicates_are_not_punished() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    cid, block = blk(b"dup")
    wm.want([cid], 0)
    wm.receive("a", Message(blocks=[block]), 0)
    got = wm.receive("b", Message(blocks=[block]), 0)
    assert got.blocks == [] and wm.stats.duplicate_blocks == 1 and wm.score("b") == 0


def test_cidv0_want_is_met_by_a_cidv1_block_of_the_same_bytes() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    data = b"\x0a\x00"
    v1 = cid_for(data, 0x70)
    v0 = multihash_of(v1)
    assert make_cid(0, 0x70, v0) == v0
    wm.want([v0], 0)
    got = wm.receive("a", Message(blocks=[Block(block_prefix(v1), data)]), 0)
    assert got.blocks == [(v0, data)]


def test_cancel_counts_and_disconnect_reassigns() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    cid, _ = blk(b"refs")
    wm.want([cid], 0)
    wm.want([cid], 0)
    wm.cancel([cid], 0)
    assert wm.is_wanted(cid)
    wm.receive("a", Message(presences=[Presence(cid, HAVE)]), 0)
    wm.receive("b", Message(presences=[Presence(cid, HAVE)]), 0)
    out = sent(wm)
    block_peer = next(p for p, es in out.items() if (cid, WANT_BLOCK, False) in es)
    wm.remove_peer(block_peer, 1)
    survivor = "b" if block_peer == "a" else "a"
    assert sent(wm) == {survivor: [(cid, WANT_BLOCK, False)]}
    wm.cancel([cid], 2)
    assert not wm.is_wanted(cid)
    assert sent(wm) == {survivor: [(cid, WANT_BLOCK, True)]}


def test_new_peer_gets_the_whole_wantlist() -> None:
    wm = WantManager()
    c1, _ = blk(b"1")
    c2, _ = blk(b"2")
    wm.want([c1, c2], 0)
    assert sent(wm) == {}
    wm.add_peer("late", 5)
    assert sent(wm) == {"late": [(c1, WANT_HAVE, False), (c2, WANT_HAVE, False)]}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from("abc"), st.integers(0, 4)), max_size=80))
def test_only_wanted_verified_blocks_come_out(ops: list[tuple[int, str, int]]) -> None:
    wm = WantManager(block_timeout=2, have_timeout=1, rebroadcast_interval=3)
    datas = [bytes([i]) * (i + 1) for i in range(5)]
    now = 0.0
    for op, peer, i in ops:
        now += 0.5
        cid, block = blk(datas[i])
        if op == 0:
            wm.want([cid], now)
        elif op == 1:
            wm.cancel([cid], now)
        elif op == 2:
            wanted = wm.is_wanted(cid)
            got = wm.receive(peer, Message(blocks=[block]), now)
            assert got.blocks == ([(cid, datas[i])] if wanted else [])
        elif op == 3:
            wm.receive(peer, Message(presences=[Presence(cid, HAVE if i % 2 else DONT_HAVE)]), now)
        elif op == 4:
            wm.add_peer(peer, now) if i % 2 else wm.remove_peer(peer, now)
        else:
            wm.tick(now)
        for p in wm.take_outgoing():
            assert p in wm.peers()
        # a peer never keeps a want of ours that ended (it was sent a cancel, or sent the block)
        wanted = {multihash_of(c) for c in wm.wanted()}
        for p in "abc":
            assert set(wm.held_by(p)) <= wanted


def test_cancel_reaches_peers_that_said_dont_have() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    cid, _ = blk(b"absent")
    wm.want([cid], 0)
    sent(wm)
    wm.receive("a", Message(presences=[Presence(cid, DONT_HAVE)]), 0)
    wm.cancel([cid], 1)
    assert sent(wm) == {"a": [(cid, WANT_BLOCK, True)]}


def test_a_peer_that_resends_gets_its_updates_in_rounds() -> None:
    wm = WantManager(round_wait=1.0)
    wm.add_peer("js", 0)
    c1, b1 = blk(b"first")
    c2, b2 = blk(b"second")
    wm.want([c1, c2], 0)
    sent(wm)
    wm.receive("js", Message(blocks=[b1]), 0.1)
    assert not wm.resends("js")
    wm.receive("js", Message(blocks=[b1]), 0.1)  # the same block again from the same peer
    assert wm.resends("js") and wm.stats.duplicate_blocks == 1
    c3, b3 = blk(b"third")
    wm.want([c3], 0.2)
    # it still owes c2 (c3 is only queued): the new want waits for the round to end
    assert wm.owed_by("js") == 1
    assert not wm.has_outgoing(0.2) and wm.take_outgoing(0.2) == {}
    wm.receive("js", Message(blocks=[b2]), 0.3)
    assert wm.has_outgoing(0.3)
    assert {p: [e.cid for e in m.wantlist] for p, m in wm.take_outgoing(0.3).items()} == {"js": [c3]}
    # a round that does not end is not waited for longer than round_wait
    c4, _ = blk(b"fourth")
    wm.want([c4], 0.4)
    assert wm.take_outgoing(0.5) == {}
    assert {p: [e.cid for e in m.wantlist] for p, m in wm.take_outgoing(1.6).items()} == {"js": [c4]}


def test_a_duplicate_from_another_peer_does_not_start_rounds() -> None:
    wm = WantManager()
    wm.add_peer("a", 0)
    wm.add_peer("b", 0)
    cid, block = blk(b"both had it")
    wm.want([cid], 0)
    wm.receive("a", Message(blocks=[block]), 0)
    wm.receive("b", Message(blocks=[block]), 0)
    assert wm.stats.duplicate_blocks == 1 and not wm.resends("a") and not wm.resends("b")
