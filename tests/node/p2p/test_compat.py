"""py-libp2p 0.8.1 fixes: each fix works, and each upstream defect it patches is still there.

The ``test_upstream_*`` tests assert the defect in the *unpatched* upstream code.
When one fails, upstream changed: re-measure, and drop our fix if it is no longer needed.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os

import nacl.bindings
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from node.p2p import compat

# NaCl's published XSalsa20 vectors (tests core1, core2, stream3 of the NaCl distribution)
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
FIRSTKEY = bytes.fromhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
SECONDKEY = bytes.fromhex("dc908dda0b9344a953629b733820778880f3ceb421bb61b91cbd4c3e66256ce4")
NONCE = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
STREAM3 = bytes.fromhex("eea6a7251c1e72916d11c2cb214d3c252539121d8e234e652d651fa4c8cff880")


def test_libp2p_is_pinned_to_the_version_the_fixes_target() -> None:
    assert importlib.metadata.version("libp2p") == "0.8.1"


# -- pnet: XSalsa20 ------------------------------------------------------------


def test_hsalsa20_nacl_vectors() -> None:
    assert compat.hsalsa20(SHARED, bytes(16)) == FIRSTKEY
    assert compat.hsalsa20(FIRSTKEY, NONCE[:16]) == SECONDKEY


def test_xsalsa20_nacl_stream_vector() -> None:
    assert compat.xsalsa20_cipher(FIRSTKEY, NONCE).encrypt(bytes(32)) == STREAM3


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=24, max_size=24), msg=st.binary(max_size=300))
def test_xsalsa20_matches_libsodium_secretbox_keystream(key: bytes, nonce: bytes, msg: bytes) -> None:
    # secretbox = Poly1305 tag || msg XOR XSalsa20(key, nonce)[32:]; the tag is 16 bytes
    boxed = nacl.bindings.crypto_secretbox(msg, nonce, key)
    stream = compat.xsalsa20_cipher(key, nonce).encrypt(bytes(32 + len(msg)))
    assert boxed[16:] == bytes(a ^ b for a, b in zip(msg, stream[32:]))


class _Pipe:
    """One direction of an in-memory raw connection, delivering in small pieces."""

    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel[bytes](100)
        self.buf = b""
        self.written: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.written.append(data)
        for i in range(0, len(data), 5):  # the reader sees 5-byte pieces
            await self.send.send(data[i : i + 5])

    async def read(self, n: int | None = None) -> bytes:
        if not self.buf:
            self.buf = await self.recv.receive()
        n = len(self.buf) if n is None else n
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def test_xsalsa_psk_conn_round_trip_with_24_byte_nonce_in_pieces() -> None:
    psk = os.urandom(32)

    async def main() -> None:
        wire = _Pipe()
        writer = compat.XSalsaPskConn(wire, psk)  # type: ignore[arg-type]
        reader = compat.XSalsaPskConn(wire, psk)  # type: ignore[arg-type]
        await writer.write(b"hello ")
        await writer.write(b"private network")
        first = wire.written[0]
        assert len(first) == 24 + 6
        nonce = first[:24]
        assert first[24:] == compat.xsalsa20_cipher(psk, nonce).encrypt(b"hello ")
        got = b""
        while len(got) < 21:
            got += await reader.read(100)
        assert got == b"hello private network"

    trio.run(main)


def test_xsalsa_psk_conn_reports_truncated_nonce() -> None:
    async def main() -> None:
        wire = _Pipe()
        reader = compat.XSalsaPskConn(wire, os.urandom(32))  # type: ignore[arg-type]
        await wire.send.send(b"123")
        await wire.send.send(b"")
        with pytest.raises(compat.PnetError, match="3 of 24"):
            await reader.read(10)

    trio.run(main)


@pytest.mark.parametrize("bad", ["", "ab" * 31, "xy" * 32, "ab" * 33, b"short", 42])
def test_parse_psk_refuses_malformed_keys(bad: object) -> None:
    with pytest.raises(compat.PnetError, match="private-network key"):
        compat.parse_psk(bad)  # type: ignore[arg-type]


def test_parse_psk_accepts_hex_and_bytes() -> None:
    assert compat.parse_psk("AB" * 32) == b"\xab" * 32
    assert compat.parse_psk(b"\x01" * 32) == b"\x01" * 32


def test_install_routes_the_swarm_to_our_pnet() -> None:
    import libp2p.network.swarm as swarm_mod

    compat.install()
    compat.install()  # idempotent
    assert swarm_mod.new_protected_conn is compat.new_xsalsa_protected_conn


def test_upstream_pnet_still_uses_8_byte_nonce() -> None:
    from libp2p.security.pnet.psk_conn import PskConn

    async def main() -> None:
        wire = _Pipe()
        conn = PskConn(wire, "ab" * 32)  # type: ignore[arg-type]
        await conn.write(b"x")
        assert len(wire.written[0]) == 8  # spec: 24 (XSalsa20)

    trio.run(main)


# -- connection config, security, muxer -----------------------------------------


def test_upstream_dial_still_waits_happy_eyeballs_below_3_connections() -> None:
    import libp2p.network.swarm as swarm_mod
    from libp2p.network.config import ConnectionConfig

    assert swarm_mod._HAPPY_EYEBALLS_DELAY >= 0.2
    assert ConnectionConfig().max_connections_per_peer == 3
    assert compat.connection_config().max_connections_per_peer == 1


def test_upstream_default_security_still_includes_plaintext() -> None:
    import libp2p

    src = inspect.getsource(libp2p.new_swarm)
    assert "PLAINTEXT_PROTOCOL_ID" in src and "secio" in src


def test_our_security_and_muxer_options_are_noise_and_yamux_only() -> None:
    from node.p2p.identity import generate_identity, load_keypair

    sec = compat.security_options(load_keypair(generate_identity()[1]))
    assert list(sec) == ["/noise"]
    assert list(compat.muxer_options()) == ["/yamux/1.0.0"]


# -- gossipsub and pubsub ---------------------------------------------------------


def test_upstream_gossipsub_defaults_still_drop_traffic() -> None:
    from libp2p.pubsub.gossipsub import GossipSub

    params = inspect.signature(GossipSub.__init__).parameters
    assert params["heartbeat_interval"].default == 120
    assert params["spam_protection_enabled"].default is True
    assert params["max_messages_per_topic_per_second"].default == 10.0


def test_our_gossipsub_router_keeps_traffic() -> None:
    router = compat.gossipsub_router()
    assert isinstance(router, compat.FloodPublishGossipSub)
    assert router.heartbeat_interval == compat.GOSSIPSUB_HEARTBEAT_S
    assert not router.spam_protection_enabled
    assert [str(p) for p in router.protocols] == list(compat.GOSSIPSUB_PROTOCOLS)


def test_upstream_pubsub_queues_are_still_32_and_we_raise_them() -> None:
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.pubsub import rpc_queue

    assert rpc_queue.OutBoundQueueSize == 32
    assert "RpcQueue()" in inspect.getsource(pubsub_mod.Pubsub)
    compat.install()
    assert pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE == compat.PUBSUB_QUEUE_SIZE
    assert pubsub_mod.RpcQueue()._queue.max_size == compat.PUBSUB_QUEUE_SIZE


def test_upstream_pubsub_seen_cache_thread_is_never_stopped() -> None:
    import libp2p.pubsub.pubsub as pubsub_mod

    src = inspect.getsource(pubsub_mod.Pubsub)
    assert "LastSeenCache(" in src and "seen_messages.stop()" not in src


def test_upstream_auto_connector_targets_150_even_with_zero_low_watermark() -> None:
    from libp2p.network.auto_connector import AutoConnector
    from libp2p.network.config import ConnectionConfig

    src = inspect.getsource(AutoConnector.maybe_connect)
    assert "(low_watermark + high_watermark) / 2" in src
    assert ConnectionConfig().high_watermark >= 300


def test_upstream_identify_agent_is_py_libp2p_and_we_announce_pinion() -> None:
    import libp2p.identity.identify.identify as identify_mod
    from libp2p.utils.version import get_agent_version

    assert get_agent_version().startswith("py-libp2p/")
    compat.install()
    assert identify_mod.AGENT_VERSION == compat.AGENT_VERSION
    assert compat.AGENT_VERSION.startswith("pinion/")


def test_upstream_still_logs_on_the_root_logger_and_we_filter_only_that() -> None:
    import logging

    import libp2p.network.connection.swarm_connection as sc

    assert "logging.warning(" in inspect.getsource(sc)  # the canary: root-logger call upstream
    compat.install()
    compat.install()
    root = logging.getLogger()
    assert sum(isinstance(f, compat.RootLogFromLibp2p) for f in root.filters) == 1

    def record(name: str, path: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, path, 1, "msg", None, None)

    filt = compat.RootLogFromLibp2p()
    assert not filt.filter(record("root", sc.__file__))
    assert filt.filter(record("root", __file__))  # ours and everyone else's root records pass
    assert filt.filter(record("libp2p.network.swarm", sc.__file__))  # libp2p's own loggers untouched


class _FakePubsub:
    """Just what compat.publish reads: peer_queues lengths, and publish()."""

    def __init__(self, backlog: int) -> None:
        self.peer_queues = {"peer": [None] * backlog}
        self.published_at_backlog: list[int] = []

    async def publish(self, topic: str, data: bytes) -> None:
        self.published_at_backlog.append(len(self.peer_queues["peer"]))


def test_publish_waits_for_a_full_peer_queue_to_drain() -> None:
    fake = _FakePubsub(compat.PUBSUB_PUBLISH_HIGH_WATER + 10)

    async def drain() -> None:
        while fake.peer_queues["peer"]:
            await trio.sleep(0.001)
            fake.peer_queues["peer"].pop()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            await compat.publish(fake, "t", b"x")  # type: ignore[arg-type]

    trio.run(main)
    assert fake.published_at_backlog and fake.published_at_backlog[0] < compat.PUBSUB_PUBLISH_HIGH_WATER


def test_publish_gives_up_waiting_on_a_stuck_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "PUBSUB_PUBLISH_MAX_WAIT_S", 0.05)
    fake = _FakePubsub(compat.PUBSUB_QUEUE_SIZE)
    trio.run(compat.publish, fake, "t", b"x")  # type: ignore[arg-type]
    assert fake.published_at_backlog == [compat.PUBSUB_QUEUE_SIZE]


def test_upstream_publish_still_has_no_backpressure() -> None:
    from libp2p.pubsub.pubsub import Pubsub

    src = inspect.getsource(Pubsub.publish) + inspect.getsource(Pubsub._enqueue_or_retry_announce)
    assert "drop_rpc" in src or "_enqueue_or_retry_announce" in src
    assert "trio.sleep" not in inspect.getsource(Pubsub._enqueue_or_retry_announce)


# -- pubsub sequence numbers ------------------------------------------------------


def test_upstream_pubsub_seqno_still_starts_at_unix_seconds() -> None:
    from libp2p.pubsub.pubsub import Pubsub

    assert "self.counter = int(time.time())" in inspect.getsource(Pubsub.__init__)
    assert "self.counter += 1" in inspect.getsource(Pubsub._next_seqno)


class _SeqnoPubsub:
    """Just what use_monotonic_seqnos touches: ``counter`` and ``_next_seqno``."""

    counter = 0


def test_seqnos_start_at_the_nanosecond_clock_and_above_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_800_000_000_000_000_000
    monkeypatch.setattr(compat.time, "time_ns", lambda: now)
    stored: list[int] = []
    ps = _SeqnoPubsub()
    assert compat.use_monotonic_seqnos(ps, floor=0, persist=stored.append) == now  # type: ignore[arg-type]
    assert stored == [now + compat.SEQNO_RESERVE]
    assert ps._next_seqno() == (now + 1).to_bytes(8, "big")  # type: ignore[attr-defined]
    # the clock stepped back below what the last run reserved: the floor wins
    ps2 = _SeqnoPubsub()
    start = compat.use_monotonic_seqnos(ps2, floor=stored[-1], persist=stored.append)  # type: ignore[arg-type]
    assert start == now + compat.SEQNO_RESERVE
    assert int.from_bytes(ps2._next_seqno(), "big") > now + 1  # type: ignore[attr-defined]


def test_seqnos_move_the_persisted_floor_before_using_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "SEQNO_RESERVE", 10)
    monkeypatch.setattr(compat.time, "time_ns", lambda: 1000)
    stored: list[int] = []
    ps = _SeqnoPubsub()
    compat.use_monotonic_seqnos(ps, persist=stored.append)  # type: ignore[arg-type]
    used = []
    for _ in range(25):
        seqno = int.from_bytes(ps._next_seqno(), "big")  # type: ignore[attr-defined]
        assert seqno < stored[-1]  # a crash now restarts above every number used so far
        used.append(seqno)
    assert used == list(range(1001, 1026))
    assert stored == [1010, 1020, 1030]


def test_a_restarted_publisher_is_heard_at_once(tmp_path) -> None:
    """Upstream: a peer that published more messages than seconds went by, then restarted,
    reuses seqnos and the others drop its messages as already seen (for 120 s or more)."""
    import plyvel

    from node.p2p.hosts import HostHandle
    from node.p2p.seqno import SeqnoFloor

    from .conftest import LOOPBACK, new_host, new_secret

    secret = new_secret()
    a = new_host("cluster", psk=secret, pubsub=True)
    keypair = new_host().keypair
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    topic = "pinion-seqno"

    async def wait_topic_peer(h: HostHandle, peer: str) -> None:
        with trio.fail_after(20):
            while peer not in h.topic_peers(topic):
                await trio.sleep(0.05)
        await trio.sleep(1.5)  # a heartbeat builds the mesh

    async def run_b(sub, burst: int, label: bytes) -> None:
        b = HostHandle("cluster", keypair, [LOOPBACK], psk=secret, pubsub=True, seqno_floor=SeqnoFloor(db, "cluster"))
        async with trio.open_nursery() as nursery:
            await nursery.start(b.serve)
            try:
                await b.connect(a.listen_addrs()[0])
                await b.subscribe(topic)
                await wait_topic_peer(b, a.peer_id)
                for i in range(burst):
                    await b.publish(topic, label + b"-%d" % i)
                with trio.fail_after(30):  # without the fix: dropped as seen for 120 s and more
                    got = set()
                    while len(got) < burst:
                        got.add((await sub.get()).data)
            finally:
                await b.stop()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.serve)
            try:
                sub = await a.subscribe(topic)
                await run_b(sub, 50, b"first run")  # 50 messages in far less than 50 s
                await run_b(sub, 3, b"after the restart")
            finally:
                await a.stop()

    try:
        trio.run(main)
    finally:
        db.close()


async def _receive_all(sub, wanted: set[bytes]) -> None:
    """Read ``sub`` until every message of ``wanted`` arrived (others may come too: our own,
    and the recent messages upstream replays to a peer that (re)joins)."""
    missing = set(wanted)
    while missing:
        missing.discard((await sub.get()).data)


def test_a_message_dropped_as_already_seen_arrives_when_published_again() -> None:
    """The pinset rebroadcasts its heads: the same bytes published again must get through even
    when the first announcement was dropped as a duplicate (here: its id planted in b's
    seen-messages cache). Each publish takes a fresh sequence number, so it is a new message."""
    from .conftest import new_host, new_secret

    secret = new_secret()
    a = new_host("cluster", psk=secret, pubsub=True)
    b = new_host("cluster", psk=secret, pubsub=True)
    topic = "pinion-rebroadcast"

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.serve)
            await nursery.start(b.serve)
            try:
                await a.subscribe(topic)
                b_sub = await b.subscribe(topic)
                await b.connect(a.listen_addrs()[0])
                with trio.fail_after(20):
                    while b.peer_id not in a.topic_peers(topic):
                        await trio.sleep(0.05)
                assert a.pubsub is not None and b.pubsub is not None
                next_id = a.pubsub.host.get_id().to_bytes() + (a.pubsub.counter + 1).to_bytes(8, "big")
                b.pubsub.seen_messages.add(next_id)  # b "has seen" a's next message already
                await a.publish(topic, b"heads")
                with trio.move_on_after(1.5):
                    got = await b_sub.get()
                    raise AssertionError(f"the message b had seen was delivered: {got.data!r}")
                await a.publish(topic, b"heads")  # the rebroadcast: same bytes
                with trio.fail_after(10):
                    assert (await b_sub.get()).data == b"heads"
            finally:
                await a.stop()
                await b.stop()

    trio.run(main)


def test_upstream_gossipsub_still_has_no_flood_publish() -> None:
    from libp2p.pubsub.gossipsub import GossipSub

    assert not [p for p in inspect.signature(GossipSub.__init__).parameters if "flood" in p]
    assert "self.mesh[topic]" in inspect.getsource(GossipSub._get_peers_to_send)


def test_a_peer_that_left_and_came_back_gets_our_messages_at_once() -> None:
    """Upstream: a peer that unsubscribed (a daemon leaving the pinset topic as it stops) is kept
    in gossipsub back-off; when it comes back, its GRAFTs are refused and the back-off
    extended, and without flood publishing neither side sends it anything (no mesh, no gossip
    to peers in back-off) for a minute or more."""
    from node.p2p.hosts import HostHandle

    from .conftest import LOOPBACK, new_host, new_secret

    secret = new_secret()
    a = new_host("cluster", psk=secret, pubsub=True)
    keypair = new_host().keypair
    topic = "pinion-backoff"

    async def run_b(a_sub, label: bytes, *, leave: bool) -> None:
        b = HostHandle("cluster", keypair, [LOOPBACK], psk=secret, pubsub=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(b.serve)
            try:
                await b.connect(a.listen_addrs()[0])
                b_sub = await b.subscribe(topic)
                with trio.fail_after(20):
                    while a.peer_id not in b.topic_peers(topic) or b.peer_id not in a.topic_peers(topic):
                        await trio.sleep(0.05)
                await trio.sleep(2.5)  # heartbeats: grafts (and, upstream, prunes) settle
                for i in range(3):
                    await b.publish(topic, label + b"-%d" % i)
                    await a.publish(topic, label + b"-from-a-%d" % i)
                with trio.fail_after(20):  # upstream: nothing arrives for 60 s or more
                    await _receive_all(a_sub, {label + b"-%d" % i for i in range(3)})
                    await _receive_all(b_sub, {label + b"-from-a-%d" % i for i in range(3)})
                if leave:
                    await b.unsubscribe(topic)  # as a stopping daemon's pinset does
                    await trio.sleep(0.3)
            finally:
                await b.stop()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.serve)
            try:
                sub = await a.subscribe(topic)
                await run_b(sub, b"first run", leave=True)
                await run_b(sub, b"second run", leave=False)
            finally:
                await a.stop()

    trio.run(main)


def test_upstream_still_skips_identify_for_a_peer_it_identified_before() -> None:
    from libp2p.host.basic_host import BasicHost

    assert "_has_cached_protocols(peer_id)" in inspect.getsource(BasicHost._schedule_identify)


# -- connection keepalive -----------------------------------------------------------


def test_upstream_yamux_pings_but_never_closes_a_dead_connection() -> None:
    from libp2p.stream_muxer.yamux import yamux

    src = inspect.getsource(yamux.Yamux._measure_rtt_loop) if yamux.Yamux._measure_rtt_loop.__module__ == yamux.__name__ else ""
    if not src:  # install() replaced it: look at upstream's own source
        src = inspect.getsource(yamux)
        src = src[src.index("async def _measure_rtt_loop") : src.index("def is_established")]
    assert "TYPE_PING" in src and "close(" not in src


class _Blackhole:
    """A TCP relay to ``target`` that can go silent: it then holds every byte and never
    closes, as a network partition looks to both ends."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.silent = trio.Event()
        self.port = 0

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:  # type: ignore[no-untyped-def]
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client) -> None:  # type: ignore[no-untyped-def]
        server = await trio.open_tcp_stream(*self.target)

        async def pump(src, dst) -> None:  # type: ignore[no-untyped-def]
            while True:
                data = await src.receive_some(65536)
                if not data:
                    return
                if self.silent.is_set():
                    await trio.sleep_forever()
                await dst.send_all(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, server)
            nursery.start_soon(pump, server, client)


def test_a_connection_that_goes_silent_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream keeps a connection whose peer went silent (a partition) until TCP gives up
    (~15 min); after the partition heals it resumes only when TCP's retransmission backoff
    allows (54 s after a 60 s partition, measured). The keepalive closes it, so the hosts
    redial a fresh connection."""
    from node.p2p.hosts import parse_peer_multiaddr

    from .conftest import new_host

    monkeypatch.setattr(compat, "KEEPALIVE_INTERVAL_S", 0.3)
    monkeypatch.setattr(compat, "KEEPALIVE_TIMEOUT_S", 1.0)
    a, b = new_host(), new_host()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.serve)
            await nursery.start(b.serve)
            _pid, target = parse_peer_multiaddr(b.listen_addrs()[0])
            hole = _Blackhole(("127.0.0.1", int(target.value_for_protocol("tcp"))))
            await nursery.start(hole.serve)
            try:
                await a.connect(f"/ip4/127.0.0.1/tcp/{hole.port}/p2p/{b.peer_id}")
                await trio.sleep(1.0)
                assert [p for p, _ in a.peers()] == [b.peer_id]  # pings answered: kept
                hole.silent.set()
                with trio.fail_after(15):
                    while a.peers():
                        await trio.sleep(0.1)
            finally:
                await a.stop()
                await b.stop()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_pubsub_moves_to_the_new_connection_of_a_peer_that_reconnected(monkeypatch: pytest.MonkeyPatch) -> None:
    """b reconnects while a still holds their old, dead connection (a partition b noticed
    first). Upstream keeps a's pubsub stream on the dead connection for ever: it skips the new
    connection ("already has a pubsub stream"), and when the old one closes it does not move
    (the peer still has a connection) while its sending loop has quit. a's messages never
    reach b again. The hosts repair that: pubsub re-registers the peer on its live connection."""
    from node.p2p.hosts import parse_peer_multiaddr

    from .conftest import new_host, new_secret

    monkeypatch.setattr(compat, "KEEPALIVE_INTERVAL_S", 0.3)
    monkeypatch.setattr(compat, "KEEPALIVE_TIMEOUT_S", 1.0)
    secret = new_secret()
    a = new_host("cluster", psk=secret, pubsub=True)
    b = new_host("cluster", psk=secret, pubsub=True)
    topic = "pinion-reconnect"

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.serve)
            await nursery.start(b.serve)
            try:
                a_sub, b_sub = await a.subscribe(topic), await b.subscribe(topic)
                _pid, target = parse_peer_multiaddr(a.listen_addrs()[0])
                for cycle in range(3):
                    hole = _Blackhole(("127.0.0.1", int(target.value_for_protocol("tcp"))))
                    await nursery.start(hole.serve)
                    await b.connect(f"/ip4/127.0.0.1/tcp/{hole.port}/p2p/{a.peer_id}")
                    with trio.fail_after(20):
                        while a.peer_id not in b.topic_peers(topic) or b.peer_id not in a.topic_peers(topic):
                            await trio.sleep(0.05)
                        await a.publish(topic, b"a %d" % cycle)
                        await b.publish(topic, b"b %d" % cycle)
                        await _receive_all(b_sub, {b"a %d" % cycle})
                        await _receive_all(a_sub, {b"b %d" % cycle})
                    hole.silent.set()  # the partition; b notices first and drops its side
                    await b.host.get_network().close_peer(parse_peer_multiaddr(a.listen_addrs()[0])[0])
            finally:
                await a.stop()
                await b.stop()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_upstream_pubsub_still_keeps_a_peer_on_a_dead_stream() -> None:
    from libp2p.pubsub.pubsub import Pubsub

    assert "already has pubsub stream, skipping" in inspect.getsource(Pubsub._handle_new_peer)
    assert "not removing" in inspect.getsource(Pubsub.handle_dead_peer_queue)
    sending = inspect.getsource(Pubsub.handle_sending_messages)
    assert "if not ok:\n                    return" in sending


def _signed_record_rpc(seq: int) -> tuple[object, object]:
    """A pubsub RPC carrying a fresh peer's signed peer record; (rpc, peer ID)."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID
    from libp2p.peer.peerstore import create_signed_peer_record
    from libp2p.pubsub.pb import rpc_pb2
    from multiaddr import Multiaddr

    keys = create_new_key_pair()
    peer = ID.from_pubkey(keys.public_key)
    env = create_signed_peer_record(peer, [Multiaddr(f"/ip4/127.0.0.1/tcp/{4000 + seq}")], keys.private_key)
    rpc = rpc_pb2.RPC()
    rpc.senderRecord = env.marshal_envelope()
    return rpc, peer


def test_upstream_pubsub_still_verifies_the_signed_record_of_every_rpc(monkeypatch: pytest.MonkeyPatch) -> None:
    import libp2p.pubsub.pubsub as pubsub_mod
    import libp2p.pubsub.utils as utils_mod
    from libp2p.peer.peerstore import PeerStore

    assert "maybe_consume_signed_record(rpc_incoming" in inspect.getsource(pubsub_mod.Pubsub.continuously_read_stream)
    calls = []
    real = utils_mod.consume_envelope
    monkeypatch.setattr(utils_mod, "consume_envelope", lambda *a: calls.append(1) or real(*a))
    rpc, peer = _signed_record_rpc(1)
    host = type("Host", (), {"get_peerstore": lambda self, ps=PeerStore(): ps})()
    for _ in range(3):
        assert utils_mod.maybe_consume_signed_record(rpc, host, peer)
    assert len(calls) == 3


def test_pubsub_verifies_a_peers_signed_record_once_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import libp2p.pubsub.gossipsub as gossipsub_mod
    import libp2p.pubsub.pubsub as pubsub_mod
    import libp2p.pubsub.utils as utils_mod
    from libp2p.peer.peerstore import PeerStore

    compat.install()
    assert pubsub_mod.maybe_consume_signed_record is compat.consume_signed_record_once
    assert gossipsub_mod.maybe_consume_signed_record is compat.consume_signed_record_once
    calls = []
    real = utils_mod.consume_envelope
    monkeypatch.setattr(utils_mod, "consume_envelope", lambda *a: calls.append(1) or real(*a))
    store = PeerStore()
    host = type("Host", (), {"get_peerstore": lambda self: store})()
    rpc, peer = _signed_record_rpc(2)
    for _ in range(3):
        assert compat.consume_signed_record_once(rpc, host, peer)
    assert len(calls) == 1 and store.get_peer_record(peer) is not None
    other_rpc, other = _signed_record_rpc(3)
    assert not compat.consume_signed_record_once(other_rpc, host, peer)  # another peer's record: refused
    assert not compat.consume_signed_record_once(other_rpc, host, peer)  # ...every time (never remembered)
    assert len(calls) == 3
    rpc.senderRecord = rpc.senderRecord[:-1] + bytes([rpc.senderRecord[-1] ^ 1])  # a forged signature
    assert not compat.consume_signed_record_once(rpc, host, peer)
    monkeypatch.setattr(compat, "SIGNED_RECORD_RECHECK_S", 0.0)
    assert compat.consume_signed_record_once(other_rpc, host, other)
    assert compat.consume_signed_record_once(other_rpc, host, other)
    assert len(calls) == 6  # rechecked when the last check is old


def test_upstream_still_refuses_a_peer_after_one_failed_dial() -> None:
    """Fix 16: the negative cache is keyed by peer and checked before any address is dialled
    (``test_a_refused_stale_address_does_not_block_the_peers_live_one`` tests our fix)."""
    from libp2p.network.swarm import Swarm

    src = inspect.getsource(Swarm.dial_peer)
    assert "_negative_peer_cache.is_blocked(str(peer_id))" in src
    assert "unblock_peer" in dir(Swarm)
