"""Two (or three) real py-libp2p hosts on loopback with LevelDB block stores: fetches, faults, bad input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.custom_types import TProtocol

from bitswap import BitswapConfig, BlockNotDelivered, FetchError, fetch_dag
from bitswap.message import Block, Message, WantEntry, block_prefix, decode_message, encode_message
from bitswap.network import PROTOCOLS, read_frames
from blockstore.cid import RAW, cid_for, encode_varint
from blockstore.importer import ImportParams, import_bytes
from blockstore.links import iter_links

from .bitswap_hosts import bitswap_node, connect, running_host

pytestmark = pytest.mark.timeout(120)

FAST = BitswapConfig(block_timeout=1.0, have_timeout=1.0, rebroadcast_interval=1.0, tick_interval=0.1)


def small_chunks() -> ImportParams:
    """Small chunks and a narrow tree so a few hundred KiB make a multi-level DAG."""
    return ImportParams(chunk_size=4096, max_links=8)


def dag_cids(store: Any, root: bytes) -> list[bytes]:
    out, todo = [], [root]
    while todo:
        cid = todo.pop()
        out.append(cid)
        todo.extend(iter_links(cid, store.get(cid)))
    return out


def run(fn: Any) -> None:
    trio.run(fn)


def test_fetch_a_multi_level_dag_and_resume(tmp_path: Path) -> None:
    data = os.urandom(300_000)

    async def main() -> None:
        async with bitswap_node(tmp_path / "a") as a, bitswap_node(tmp_path / "b") as b:
            root = import_bytes(data, a.store, small_chunks()).cid
            cids = dag_cids(a.store, root)
            assert len(cids) > 80
            await connect(b.host, a.host)
            seen: list[tuple[int, int]] = []
            result = await fetch_dag(b, root, concurrency=16, progress=lambda n, nb: seen.append((n, nb)))
            assert result.blocks == len(cids) and result.fetched == len(cids) and result.present == 0
            assert seen[-1][0] == len(cids)
            for cid in cids:
                assert b.store.get(cid) == a.store.get(cid)
            # a crash after half the blocks: a new fetch skips what is present
            for cid in cids[::2]:
                b.store.delete(cid)
            again = await fetch_dag(b, root)
            assert again.fetched == len(cids[::2]) and again.present == len(cids) - len(cids[::2])
            stats_a, stats_b = a.stats(), b.stats()
            assert stats_a["blocks_sent"] == stats_b["blocks_received"] == len(cids) + len(cids[::2])
            assert stats_b["wantlist_size"] == 0 and stats_b["unwanted_blocks"] == 0

    run(main)


def test_max_depth_fetches_only_the_top(tmp_path: Path) -> None:
    async def main() -> None:
        async with bitswap_node(tmp_path / "a") as a, bitswap_node(tmp_path / "b") as b:
            root = import_bytes(os.urandom(100_000), a.store, small_chunks()).cid
            await connect(b.host, a.host)
            r0 = await fetch_dag(b, root, max_depth=0)
            assert r0.blocks == 1 and b.store.has(root)
            r1 = await fetch_dag(b, root, max_depth=1)
            assert r1.blocks == 1 + len(iter_links(root, a.store.get(root)))

    run(main)


def test_both_directions_and_notify_new_blocks(tmp_path: Path) -> None:
    async def main() -> None:
        async with bitswap_node(tmp_path / "a", FAST) as a, bitswap_node(tmp_path / "b", FAST) as b:
            await connect(b.host, a.host)
            one, two = b"block held by a", b"block held by b"
            c1, c2 = cid_for(one, RAW), cid_for(two, RAW)
            a.store.put(c1, one)
            b.store.put(c2, two)
            assert await b.get_block(c1, timeout=10) == one
            assert await a.get_block(c2, timeout=10) == two
            # a wants a block nobody has yet; b gets it later and announces it
            later = b"stored after the want"
            c3 = cid_for(later, RAW)
            async with trio.open_nursery() as n:
                got: list[bytes] = []

                async def want() -> None:
                    got.append(await a.get_block(c3, timeout=20))

                n.start_soon(want)
                await trio.sleep(0.3)
                b.store.put(c3, later)
                b.notify_new_blocks([c3])
            assert got == [later]
            many = {cid_for(bytes([i]) * 10, RAW): bytes([i]) * 10 for i in range(50)}
            for cid, blk in many.items():
                b.store.put(cid, blk)
            assert await a.get_blocks(list(many), timeout=10) == many

    run(main)


def test_missing_block_times_out_without_leaks(tmp_path: Path) -> None:
    async def main() -> None:
        async with bitswap_node(tmp_path / "a", FAST) as a, bitswap_node(tmp_path / "b", FAST) as b:
            await connect(b.host, a.host)
            cid = cid_for(b"nobody has this", RAW)
            with pytest.raises(BlockNotDelivered):
                await b.get_block(cid, timeout=0.5)
            assert b.stats()["wantlist_size"] == 0 and not b._pending
            with trio.fail_after(5):  # b's CANCEL reaches a and empties b's ledger there
                while a.engine.wantlist(b.host.get_id()):
                    await trio.sleep(0.02)
            with pytest.raises(FetchError, match="not found"):
                await fetch_dag(b, cid, block_timeout=0.3)

    run(main)


class FakePeer:
    """A bare host that records the bitswap messages sent to it and can send anything back."""

    def __init__(self, host: Any, protocols: tuple[str, ...] = PROTOCOLS, answer: bool = True) -> None:
        self.host = host
        self.inbox: list[Message] = []
        self.arrived = trio.Event()
        for proto in protocols:
            host.set_stream_handler(TProtocol(proto), self._handle)

    async def _handle(self, stream: Any) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = await stream.read(1 << 16)
                if not chunk:
                    return
                buf += chunk
                for frame in read_frames(buf):
                    self.inbox.append(decode_message(frame))
                    self.arrived.set()
                    self.arrived = trio.Event()
        except Exception:
            return

    async def wait_for(self, pred: Any, timeout: float = 10) -> Message:
        with trio.fail_after(timeout):
            while True:
                for m in self.inbox:
                    if pred(m):
                        return m
                await self.arrived.wait()

    async def send_raw(self, peer: Any, payload: bytes, proto: str = PROTOCOLS[0]) -> Any:
        stream = await self.host.new_stream(peer, [TProtocol(proto)])
        await stream.write(payload)
        return stream


def frame(msg: Message, proto: str = PROTOCOLS[0]) -> bytes:
    body = encode_message(msg, proto)
    return encode_varint(len(body)) + body


def test_wrong_hash_and_unrequested_blocks_are_never_stored(tmp_path: Path) -> None:
    real = b"the genuine block"
    cid = cid_for(real, RAW)

    async def main() -> None:
        async with bitswap_node(tmp_path / "b", FAST) as b, running_host() as fh:
            fake = FakePeer(fh)
            await connect(fh, b.host)
            async with trio.open_nursery() as n:
                result: list[Any] = []

                async def want() -> None:
                    try:
                        result.append(await b.get_block(cid, timeout=20))
                    except BlockNotDelivered as exc:
                        result.append(exc)

                n.start_soon(want)
                await fake.wait_for(lambda m: any(e.cid == cid for e in m.wantlist))
                junk = b"unrequested junk" * 100
                stream = await fake.send_raw(
                    b.host.get_id(),
                    frame(
                        Message(
                            blocks=[
                                Block(block_prefix(cid), b"forged bytes"),  # wrong hash for the wanted CID
                                Block(block_prefix(cid_for(junk, RAW)), junk),  # never asked for
                            ]
                        )
                    ),
                )
                with trio.fail_after(10):
                    while b.stats()["unwanted_blocks"] < 2:
                        await trio.sleep(0.02)
                assert not b.store.has(cid) and not b.store.has(cid_for(junk, RAW))
                assert b.store.stats()["blocks"] == 0
                assert b.wants.score(fh.get_id()) < 0
                await stream.write(frame(Message(blocks=[Block(block_prefix(cid), real)])))
            assert result == [real]
            assert b.store.get(cid) == real

    run(main)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x05\x0b\x01\x02\x03\x04",  # a frame whose body has wire type 3
        b"\x03\x0a\x05\x0a",  # a wantlist field overrunning its message
        encode_varint(5 * 1024 * 1024) + b"\0" * 64,  # announces a 5 MiB message
        b"\xff" * 11,  # a length varint that never ends
    ],
    ids=["bad-wire-type", "overrun", "oversize", "endless-varint"],
)
def test_malformed_and_oversize_messages_reset_the_stream_only(tmp_path: Path, payload: bytes) -> None:
    async def main() -> None:
        async with bitswap_node(tmp_path / "a", FAST) as a, running_host() as fh:
            fake = FakePeer(fh)
            await connect(fh, a.host)
            stream = await fake.send_raw(a.host.get_id(), payload)
            with trio.fail_after(10):
                while a.stats()["bad_messages"] < 1:
                    await trio.sleep(0.02)
            with pytest.raises(Exception):
                with trio.fail_after(5):
                    while True:
                        if not await stream.read(100):
                            raise EOFError
            # the node still serves on a new stream
            data = b"still serving"
            cid = cid_for(data, RAW)
            a.store.put(cid, data)
            await fake.send_raw(a.host.get_id(), frame(Message(wantlist=[WantEntry(cid)])))
            got = await fake.wait_for(lambda m: bool(m.blocks))
            assert got.blocks[0].data == data

    run(main)


def test_a_peer_that_never_answers_is_passed_over(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            bitswap_node(tmp_path / "a", FAST) as a,
            bitswap_node(tmp_path / "b", FAST) as b,
            running_host() as mute_host,
        ):
            mute = FakePeer(mute_host)  # reads our wants, never replies
            await connect(b.host, mute_host)
            data = b"only a has it"
            cid = cid_for(data, RAW)
            a.store.put(cid, data)
            with pytest.raises(BlockNotDelivered):
                await b.get_block(cid, timeout=1.5)
            assert mute.inbox
            await connect(b.host, a.host)
            assert await b.get_block(cid, timeout=10) == data
            assert b.stats()["wantlist_size"] == 0

    run(main)


def test_peer_disconnecting_mid_transfer(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)

    async def main() -> None:
        async with bitswap_node(tmp_path / "a", FAST) as a, bitswap_node(tmp_path / "b", FAST) as b:
            root = import_bytes(data, a.store, ImportParams(chunk_size=16384, max_links=16)).cid
            total = len(dag_cids(a.store, root))
            await connect(b.host, a.host)
            progress: list[int] = []
            failed: list[FetchError] = []

            async def cut() -> None:
                with trio.fail_after(30):
                    while not progress or progress[-1] < 20:
                        await trio.sleep(0.005)
                await b.host.disconnect(a.host.get_id())

            async with trio.open_nursery() as n:
                n.start_soon(cut)
                try:
                    await fetch_dag(b, root, concurrency=8, block_timeout=2.0, progress=lambda k, _: progress.append(k))
                except FetchError as exc:
                    failed.append(exc)
            assert failed
            have = sum(1 for cid in dag_cids(a.store, root) if b.store.has(cid))
            assert 0 < have < total
            # every stored block is verified
            for mh_cid in dag_cids(a.store, root):
                got = b.store.get(mh_cid)
                assert got is None or got == a.store.get(mh_cid)
            assert b.stats()["wantlist_size"] == 0
            with trio.fail_after(5):  # both sides forget the peer and its lane
                while a.host.get_id() in b.network._lanes or b.stats()["peers"]:
                    await trio.sleep(0.02)
            await connect(b.host, a.host)
            resumed = await fetch_dag(b, root, block_timeout=10)
            assert resumed.present >= have and resumed.blocks == total

    run(main)


def test_a_bitswap_1_0_0_peer_gets_blocks_in_the_old_field(tmp_path: Path) -> None:
    data = b"\x0a\x03abc"  # a dag-pb node with Data "abc", addressed by CIDv0
    v0 = cid_for(data, 0x70, version=0)

    async def main() -> None:
        async with bitswap_node(tmp_path / "a", FAST) as a, running_host() as fh:
            old = FakePeer(fh, protocols=("/ipfs/bitswap/1.0.0",))
            await connect(fh, a.host)
            a.store.put(v0, data, verify=False)
            await old.send_raw(a.host.get_id(), frame(Message(wantlist=[WantEntry(v0)]), "/ipfs/bitswap/1.0.0"), "/ipfs/bitswap/1.0.0")
            got = await old.wait_for(lambda m: bool(m.blocks))
            assert got.blocks[0].data == data

    run(main)


def test_waiters_are_released_when_the_service_stops(tmp_path: Path) -> None:
    from bitswap import Bitswap
    from .bitswap_hosts import open_store

    async def main() -> None:
        store = open_store(tmp_path / "s")
        try:
            async with running_host() as host:
                bs = Bitswap(host, store, FAST)
                outcome: list[Any] = []
                async with trio.open_nursery() as outer:
                    async with trio.open_nursery() as inner:
                        await inner.start(bs.run)

                        async def wait_forever() -> None:
                            try:
                                await bs.get_block(cid_for(b"never", RAW))
                            except BlockNotDelivered as exc:
                                outcome.append(exc)

                        outer.start_soon(wait_forever)
                        await trio.sleep(0.1)
                        inner.cancel_scope.cancel()
                assert len(outcome) == 1 and not bs._pending
                with pytest.raises(RuntimeError, match="not running"):
                    await bs.get_block(cid_for(b"after stop", RAW))
        finally:
            store.db.close()

    run(main)


def test_fetch_follows_dag_cbor_links(tmp_path: Path) -> None:
    from blockstore.cid import DAG_CBOR

    leaves = [bytes([i]) * 500 for i in range(3)]
    leaf_cids = [cid_for(d, RAW) for d in leaves]
    # DAG-CBOR: a list of three links (tag 42 over 0x00 + binary CID)
    node = b"\x83" + b"".join(b"\xd8\x2a\x58" + bytes([len(c) + 1]) + b"\x00" + c for c in leaf_cids)
    root = cid_for(node, DAG_CBOR)

    async def main() -> None:
        async with bitswap_node(tmp_path / "a") as a, bitswap_node(tmp_path / "b") as b:
            a.store.put(root, node)
            a.store.put_many(list(zip(leaf_cids, leaves)))
            await connect(b.host, a.host)
            result = await fetch_dag(b, root)
            assert result.blocks == 4 and result.fetched == 4
            assert [b.store.get(c) for c in leaf_cids] == leaves

    run(main)


def test_a_failing_store_read_does_not_stop_serving(tmp_path: Path) -> None:
    async def main() -> None:
        async with bitswap_node(tmp_path / "a", FAST) as a, bitswap_node(tmp_path / "b", FAST) as b:
            bad, good = b"unreadable block" * 100, b"readable block" * 100
            bad_cid, good_cid = cid_for(bad, RAW), cid_for(good, RAW)
            a.store.put_many([(bad_cid, bad), (good_cid, good)])
            real_get = a.store.get

            def failing_get(cid: bytes) -> bytes | None:
                if cid == bad_cid:
                    raise OSError("simulated disk error")
                return real_get(cid)

            a.store.get = failing_get  # type: ignore[method-assign]
            await connect(b.host, a.host)
            with pytest.raises(BlockNotDelivered):
                await b.get_block(bad_cid, timeout=1.0)
            assert await b.get_block(good_cid, timeout=10) == good

    run(main)


def test_a_normal_fetch_gets_every_block_once(tmp_path: Path) -> None:
    data = os.urandom(600_000)

    async def main() -> None:
        async with bitswap_node(tmp_path / "a") as a, bitswap_node(tmp_path / "b") as b:
            root = import_bytes(data, a.store, small_chunks()).cid
            cids = dag_cids(a.store, root)
            await connect(b.host, a.host)
            result = await fetch_dag(b, root, concurrency=32)
            assert result.fetched == len(cids)
            sa, sb = a.stats(), b.stats()
            # the optimistic want-block goes to the only peer: no block is sent twice, none is refused
            assert sa["blocks_sent"] == sb["blocks_received"] == len(cids)
            assert sb["duplicate_blocks"] == 0 and sb["unwanted_blocks"] == 0
            # want-haves answered HAVE would be followed by want-blocks: the provider answers blocks only
            assert sa["haves_sent"] == 0
            # wantlist updates are batched: far fewer messages than blocks
            assert sb["messages_sent"] < len(cids)

    run(main)


def test_a_fetch_fails_fast_when_its_only_provider_leaves(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    cfg = BitswapConfig(no_peer_grace=0.5, tick_interval=0.1)

    async def main() -> None:
        async with bitswap_node(tmp_path / "a") as a, bitswap_node(tmp_path / "b", cfg) as b:
            root = import_bytes(data, a.store, ImportParams(chunk_size=16384, max_links=16)).cid
            await connect(b.host, a.host)
            progress: list[int] = []

            async def cut() -> None:
                with trio.fail_after(30):
                    while not progress or progress[-1] < 20:
                        await trio.sleep(0.005)
                await b.host.disconnect(a.host.get_id())

            async with trio.open_nursery() as n:
                n.start_soon(cut)
                with trio.fail_after(20):  # far below block_timeout=60
                    with pytest.raises(FetchError, match="no connected peer"):
                        await fetch_dag(b, root, concurrency=8, block_timeout=60, progress=lambda k, _: progress.append(k))
            assert b.stats()["wantlist_size"] == 0

    run(main)


def test_a_want_made_before_any_peer_waits_for_one(tmp_path: Path) -> None:
    data = b"arrives once a peer connects"
    cfg = BitswapConfig(no_peer_grace=0.2, tick_interval=0.05)

    async def main() -> None:
        async with bitswap_node(tmp_path / "a") as a, bitswap_node(tmp_path / "b", cfg) as b:
            cid = cid_for(data, RAW)
            a.store.put(cid, data)

            async def connect_later() -> None:
                await trio.sleep(0.5)  # longer than the grace: it applies only after a peer left
                await connect(b.host, a.host)

            async with trio.open_nursery() as n:
                n.start_soon(connect_later)
                assert await b.get_block(cid, timeout=20) == data

    run(main)


def test_a_block_held_is_served_while_the_peer_waits_for_many_blocks_nobody_holds(tmp_path: Path) -> None:
    """The cluster pinset's case: a peer far behind asks for over 1,024 deltas every peer has
    compacted away, then for the snapshot that replaced them, which one peer holds. Before the
    engine let absent wants make room, that peer's full ledger rejected the snapshot's want
    (and every rebroadcast of it) for as long as the absent wants were waited for."""

    async def main() -> None:
        async with bitswap_node(tmp_path / "a", FAST) as a, bitswap_node(tmp_path / "b", FAST) as b:
            await connect(b.host, a.host)
            gone = [cid_for(b"compacted delta %d" % i, RAW) for i in range(1100)]
            held = b"snapshot root held by a"
            held_cid = cid_for(held, RAW)
            a.store.put(held_cid, held)
            async with trio.open_nursery() as n:
                n.start_soon(b.get_blocks, gone, 30.0)
                with trio.fail_after(20):  # a's ledger for b fills up with wants it answered DONT_HAVE
                    while len(a.engine.wantlist(b.host.get_id())) < a.engine.max_wants_per_peer:
                        await trio.sleep(0.05)
                assert await b.get_block(held_cid, timeout=10) == held
                n.cancel_scope.cancel()

    run(main)
