"""Several real Pinion DHT nodes in one process on loopback: forming a DHT, providing and
finding a file (then fetching it over bitswap), client mode, and bad peers (malformed
frames, oversized answers, a flood of ADD_PROVIDER)."""

from __future__ import annotations

import os
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from bitswap import Bitswap, fetch_dag
from bitswap.routing.dht import DHT, PROTOCOL_ID
from bitswap.routing.dht_config import CLIENT
from bitswap.routing.kad_keyspace import kad_point
from bitswap.routing.kad_lookup import FAILED
from bitswap.routing.kad_message import (
    ADD_PROVIDER,
    FIND_NODE,
    GET_PROVIDERS,
    MAX_PEERS_PER_LIST,
    KadMessage,
    Peer,
    decode_message,
    encode_message,
    encode_peer,
    frame,
    len_field,
)
from bitswap.network import read_frames
from blockstore.cid import cid_for, multihash_of
from blockstore.db import open_db
from blockstore.exporter import read_file
from blockstore.importer import ImportParams, import_bytes
from blockstore.store import BlockStore

from .dht_hosts import LOOPBACK, dht_nodes, lan_config, make_host, p2p_addr, wait_for

pytestmark = pytest.mark.timeout(180)


async def chain(dhts: list[DHT]) -> None:
    """Node i bootstraps from node i-1 only."""
    for i in range(1, len(dhts)):
        await dhts[i].bootstrap([p2p_addr(dhts[i - 1].host)])


def test_nine_nodes_one_adds_and_provides_a_file_another_finds_it_and_fetches_it(tmp_path: Path) -> None:
    data = os.urandom(300_000)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            dhts = await stack.enter_async_context(dht_nodes(tmp_path / "dht", 7))
            await chain(dhts)
            for d in dhts:
                await d.refresh(force=True)
            assert all(len(d.table) >= 3 for d in dhts), [len(d.table) for d in dhts]
            nursery = await stack.enter_async_context(trio.open_nursery())
            # the provider: a DHT client (e.g. behind a NAT) with a block store and bitswap,
            # joined through dhts[0] only; nobody can reach it but through its provider records
            db = open_db(tmp_path / "provider")
            stack.callback(db.close)
            store = BlockStore(db)
            host = make_host()
            await stack.enter_async_context(host.run(listen_addrs=[LOOPBACK]))
            provider = DHT(host, db, lan_config(mode=CLIENT))
            bs = Bitswap(host, store)
            await nursery.start(provider.run)
            await nursery.start(bs.run)
            root = import_bytes(data, store, ImportParams(chunk_size=65536)).cid
            await provider.bootstrap([p2p_addr(dhts[0].host)])
            assert await provider.provide(root) >= 5
            # the finder: connected only to the last node of the chain
            db2 = open_db(tmp_path / "finder")
            stack.callback(db2.close)
            store2 = BlockStore(db2)
            host2 = make_host()
            await stack.enter_async_context(host2.run(listen_addrs=[LOOPBACK]))
            finder = DHT(host2, db2, lan_config(mode=CLIENT))
            bs2 = Bitswap(host2, store2)
            await nursery.start(finder.run)
            await nursery.start(bs2.run)
            assert await finder.bootstrap([p2p_addr(dhts[-1].host)]) >= 1
            assert not host2.get_network().get_connections(host.get_id())
            async with finder.find_providers_stream(root, count=3) as found:
                first = await found.receive()
            assert first.peer_id == host.get_id() and first.addrs
            await host2.connect(first)
            result = await fetch_dag(bs2, root, block_timeout=30)
            assert result.fetched >= 5
            assert b"".join(read_file(store2.get, root)) == data
            # a client is in nobody's table, and answers no DHT request
            assert all(finder.local not in d.table for d in dhts)
            assert str(PROTOCOL_ID) not in [str(p) for p in host2.get_mux().get_protocols() if p]
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_find_providers_deduplicates_and_find_peer_locates_a_node(tmp_path: Path) -> None:
    async def main() -> None:
        async with dht_nodes(tmp_path, 6) as dhts:
            await chain(dhts)
            cid = cid_for(b"twice")
            await dhts[1].provide(cid)
            await dhts[1].provide(cid)
            await dhts[2].provide(cid)
            found = await dhts[5].find_providers(cid, count=10)
            ids = [p.peer_id for p in found]
            assert sorted(map(str, ids)) == sorted(map(str, {dhts[1].local_id, dhts[2].local_id}))
            assert len(ids) == len(set(ids))
            info = await dhts[5].find_peer(dhts[0].local_id)
            assert info is not None and info.addrs
            assert await dhts[5].find_providers(cid_for(b"nobody has this"), count=3) == []

    trio.run(main)


def test_provide_many_reaches_every_server_of_a_small_network(tmp_path: Path) -> None:
    async def main() -> None:
        async with dht_nodes(tmp_path, 5) as dhts:
            await chain(dhts)
            cids = [cid_for(b"many %d" % i) for i in range(3000)]
            result = await dhts[0].provide_many(cids)
            assert result.keys == 3000 and result.failed_peers == 0 and result.peers == 4
            await wait_for(lambda: all(d.store.count() == 3000 for d in dhts[1:]))
            for cid in cids[::500]:
                assert [p.peer_id for p in await dhts[3].find_providers(cid, 1)] == [dhts[0].local_id]

    trio.run(main)


async def _raw_stream(host: Any, target: DHT) -> Any:
    await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(p2p_addr(target.host))))
    return await host.new_stream(target.host.get_id(), [TProtocol(PROTOCOL_ID)])


async def _read_answer(stream: Any) -> KadMessage | None:
    buf = bytearray()
    with trio.fail_after(10):
        while True:
            try:
                chunk = await stream.read(65536)
            except Exception:
                return None
            if not chunk:
                return None
            buf += chunk
            frames = read_frames(buf)
            if frames:
                return decode_message(frames[0])


def test_malformed_frames_reset_the_stream_and_the_server_keeps_serving(tmp_path: Path) -> None:
    async def main() -> None:
        async with dht_nodes(tmp_path, 2) as dhts:
            await chain(dhts)
            server = dhts[0]
            host = make_host()
            async with host.run(listen_addrs=[LOOPBACK]):
                for bad in (
                    b"\x05\xff\xff\xff\xff\xff",  # a frame that is no message
                    b"\xff\xff\xff\x7f",  # a length of 256 MiB
                    frame(b"\x08\x09"),  # unknown message type
                    frame(encode_message(KadMessage(GET_PROVIDERS, key=b"not a multihash"))),
                ):
                    stream = await _raw_stream(host, server)
                    await stream.write(bad)
                    assert await _read_answer(stream) is None
                assert server.counters["bad_inbound_messages"] == 4
                # the same stream can carry several requests, pipelined
                stream = await _raw_stream(host, server)
                req = frame(encode_message(KadMessage(FIND_NODE, key=dhts[1].local)))
                await stream.write(req + req)
                first = await _read_answer(stream)
                assert first is not None and first.closer and first.closer[0].id == dhts[1].local

    trio.run(main)


def test_an_oversized_answer_fails_that_peer_only(tmp_path: Path) -> None:
    """A lying peer answers GET_PROVIDERS with more than MAX_PEERS_PER_LIST providers: its answer
    is refused, the lookup goes on and finds the real provider through the others."""

    async def main() -> None:
        async with dht_nodes(tmp_path, 4) as dhts:
            await chain(dhts)
            cid = cid_for(b"x")
            await dhts[0].provide(cid)
            liar = make_host()

            async def lie(stream: Any) -> None:
                buf = bytearray()
                while not read_frames(buf):
                    buf += await stream.read(65536)
                fake = Peer(b"\x12\x20" + os.urandom(32), [b"\x04\x7f\x00\x00\x01\x06\x00\x01"])
                body = b"\x08\x03" + len_field(9, encode_peer(fake)) * (MAX_PEERS_PER_LIST + 1)
                await stream.write(frame(body))
                await stream.close()

            liar.set_stream_handler(TProtocol(PROTOCOL_ID), lie)
            async with liar.run(listen_addrs=[LOOPBACK]):
                dhts[3].table.add(liar.get_id().to_bytes(), 0.0)
                liar_addr = liar.get_transport_addrs()[0]
                dhts[3].host.get_peerstore().add_addrs(liar.get_id(), [liar_addr], 0)
                found = await dhts[3].find_providers(cid, 5)  # more than exist: the lookup runs to its end
                assert [p.peer_id for p in found] == [dhts[0].local_id]
                assert liar.get_id().to_bytes() not in dhts[3].table  # failed: removed

    trio.run(main)


def test_a_flood_of_add_provider_from_one_peer_is_bounded(tmp_path: Path) -> None:
    """20,000 ADD_PROVIDERs pipelined by one peer: the server stores its per-peer limit, counts
    the rest as refused, and still answers another peer meanwhile."""

    async def main() -> None:
        async with dht_nodes(tmp_path, 2, max_records_per_peer=500) as dhts:
            await chain(dhts)
            server = dhts[0]
            host = make_host()
            async with host.run(listen_addrs=[LOOPBACK]):
                me = Peer(host.get_id().to_bytes(), [b"\x04\x7f\x00\x00\x01\x06\x00\x01"] * 40)
                frames = [
                    frame(encode_message(KadMessage(ADD_PROVIDER, key=multihash_of(cid_for(b"f%d" % i)), providers=[me])))
                    for i in range(20_000)
                ]
                stream = await _raw_stream(host, server)
                for i in range(0, len(frames), 1000):
                    await stream.write(b"".join(frames[i : i + 1000]))
                await stream.close()
                await wait_for(lambda: server.server.stats.records_stored + server.server.stats.records_refused == 20_000)
                assert server.store.count() == 500
                assert server.store.count_for_peer(host.get_id().to_bytes()) == 500
                assert server.server.stats.records_refused == 19_500
                (rec,) = server.store.providers(multihash_of(cid_for(b"f0")), time.time())
                assert len(rec.addrs) == 1  # 40 identical addresses kept once
                # another peer is served normally
                info = await dhts[1].find_peer(server.local_id)
                assert info is not None

    trio.run(main)


def test_refresh_probes_stale_peers_and_a_dead_one_leaves_the_table(tmp_path: Path) -> None:
    """With a clock passed in: after refresh_interval without news, peers are probed; the live
    ones stay (last_seen renewed), the one whose host stopped is removed."""
    now = [1000.0]

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nursery = await stack.enter_async_context(trio.open_nursery())
            dhts = []
            for i in range(4):
                db = open_db(tmp_path / f"n{i}")
                stack.callback(db.close)
                host = make_host()
                inner = AsyncExitStack()
                await inner.enter_async_context(host.run(listen_addrs=[LOOPBACK]))
                stack.push_async_callback(inner.aclose)
                dht = DHT(host, db, lan_config(refresh_check_interval=3600, request_timeout=3), clock=lambda: now[0])
                dht._stop_host = inner  # type: ignore[attr-defined]
                await nursery.start(dht.run)
                dhts.append(dht)
            await chain(dhts)
            for d in dhts:
                await d.refresh(force=True)
            await wait_for(lambda: all(len(d.table) == 3 for d in dhts))
            dead = dhts[3]
            await dead._stop_host.aclose()  # type: ignore[attr-defined]
            now[0] += 601
            await dhts[0].refresh()
            assert dead.local not in dhts[0].table
            assert {dhts[1].local, dhts[2].local} <= set(dhts[0].table.peers())
            assert dhts[0].table.stale_peers(now[0]) == []
            # for a while, lookups skip the dead peer (others still name it) instead of asking it again
            sent = dhts[0].counters["requests_sent"]
            lk = await dhts[0]._lookup(dead.local, KadMessage(FIND_NODE, key=dead.local))
            assert lk.state_of(dead.local) == FAILED
            assert dhts[0].counters["requests_sent"] - sent == 2  # the two live peers only
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_stored_records_do_not_grow_python_memory(tmp_path: Path) -> None:
    """5,000 records announced by one peer are stored in LevelDB, not in Python objects."""
    import gc

    async def main() -> None:
        async with dht_nodes(tmp_path, 1, max_records_per_peer=5000) as (server,):
            host = make_host()
            async with host.run(listen_addrs=[LOOPBACK]):
                me = Peer(host.get_id().to_bytes(), [b"\x04\x7f\x00\x00\x01\x06\x00\x01"])
                frames = [
                    frame(encode_message(KadMessage(ADD_PROVIDER, key=multihash_of(cid_for(b"g%d" % i)), providers=[me])))
                    for i in range(10_000)
                ]
                stream = await _raw_stream(host, server)
                await stream.write(b"".join(frames[:100]))  # warm up every code path first
                await wait_for(lambda: server.server.stats.records_stored == 100)
                gc.collect()
                before = len(gc.get_objects())
                for i in range(100, len(frames), 1000):
                    await stream.write(b"".join(frames[i : i + 1000]))
                await wait_for(lambda: server.server.stats.records_stored + server.server.stats.records_refused == 10_000)
                del frames
                gc.collect()
                grown = len(gc.get_objects()) - before
                assert server.store.count() == 5000
                assert grown < 1000, f"{grown} more Python objects after storing 4,900 records"

    trio.run(main)


def test_mode_switch_and_only_dht_servers_enter_the_table(tmp_path: Path) -> None:
    """A host without the DHT protocol is never probed nor added; a server switched to client
    stops answering, a client switched to server starts, and peers learn it through identify."""

    async def main() -> None:
        async with dht_nodes(tmp_path, 2) as (a, b):
            await chain([a, b])
            plain = make_host()
            async with plain.run(listen_addrs=[LOOPBACK]):
                await plain.connect(info_from_p2p_addr(multiaddr.Multiaddr(p2p_addr(a.host))))
                await wait_for(lambda: len(a._protocols_of(plain.get_id())) > 0)
                await wait_for(lambda: plain.get_id() not in a._probing)
                # never probed: a probe of it would have failed (no handler) and been remembered
                assert plain.get_id().to_bytes() not in a._failed_at
                assert plain.get_id().to_bytes() not in a.table
                b.set_mode(CLIENT)
                assert b.mode == CLIENT
                await wait_for(lambda: PROTOCOL_ID not in a._protocols_of(b.local_id))
                with pytest.raises(Exception):
                    await a._request(b.local_id, KadMessage(FIND_NODE, key=a.local))
                b.set_mode("server")
                await wait_for(lambda: PROTOCOL_ID in a._protocols_of(b.local_id))
                answer = await a._request(b.local_id, KadMessage(FIND_NODE, key=a.local))
                assert answer.type == FIND_NODE
                with pytest.raises(ValueError, match="must be 'client' or 'server'"):
                    b.set_mode("dhtserver")

    trio.run(main)


def test_provide_many_by_keyspace_regions(tmp_path: Path) -> None:
    """When the network looks larger than k, provide_many cuts the keyspace into regions (here
    2^3, from a size estimate of 200 servers) with one lookup per region; every key still reaches
    the closest servers of its region (all of them, in this small network)."""

    async def main() -> None:
        async with dht_nodes(tmp_path, 5) as dhts:
            await chain(dhts)
            dhts[0].network_size = lambda: 200.0  # type: ignore[method-assign]
            cids = [cid_for(b"region %d" % i) for i in range(400)]
            regions = {kad_point(multihash_of(c)) >> 253 for c in cids}
            result = await dhts[0].provide_many(cids)
            assert result.lookups == len(regions) == 8
            assert result.keys == 400 and result.records == 1600 and result.failed_peers == 0
            await wait_for(lambda: all(d.store.count() == 400 for d in dhts[1:]))

    trio.run(main)
