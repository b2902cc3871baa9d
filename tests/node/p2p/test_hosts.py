"""Two real hosts on loopback, driven from trio: connect, identify, ping, streams, pnet, gossipsub."""

from __future__ import annotations

import trio
import pytest

from node.p2p.hosts import HostHandle, P2PError, parse_peer_multiaddr
from node.p2p.peerstore import PeerBook

from .conftest import new_host, new_secret

ECHO = "/pinion/test-echo/1.0.0"


async def _echo(stream) -> None:
    try:
        while True:
            data = await stream.read(65536)
            if not data:
                break
            await stream.write(data)
    except EOFError:
        pass
    finally:
        await stream.close()


async def _read_exactly(stream, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = await stream.read(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def run(fn, *hosts: HostHandle, timeout: float = 30) -> None:
    """Start ``hosts`` in a nursery, run ``fn()``, stop them all."""

    async def main() -> None:
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                for h in hosts:
                    await nursery.start(h.serve)
                try:
                    await fn()
                finally:
                    for h in hosts:
                        await h.stop()

    trio.run(main)


def test_swarm_hosts_connect_identify_ping_and_stream() -> None:
    a, b = new_host(), new_host()
    a.set_stream_handler(ECHO, _echo)  # before start

    async def body() -> None:
        addr = a.listen_addrs()[0]
        assert addr.startswith("/ip4/127.0.0.1/tcp/") and addr.endswith("/p2p/" + a.peer_id)
        assert await b.connect(addr) == a.peer_id
        assert [p for p, _ in b.peers()] == [a.peer_id]
        assert b.peers()[0][1] == addr.split("/p2p/")[0]
        assert [p for p, _ in a.peers()] == [b.peer_id]
        # identify: b learns every protocol a serves
        with trio.fail_after(5):
            while ECHO not in b.peer_protocols(a.peer_id):
                await trio.sleep(0.02)
        # ... and, by identify/push, one a adds once b already identified it
        a.set_stream_handler("/pinion/late/1.0.0", _echo)
        assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO, "/pinion/late/1.0.0"} <= set(a.protocols())
        with trio.fail_after(5):
            while "/pinion/late/1.0.0" not in b.peer_protocols(a.peer_id):
                await trio.sleep(0.02)
        assert "/ipfs/ping/1.0.0" in b.peer_protocols(a.peer_id)
        assert "/plaintext/2.0.0" not in a.protocols()
        assert await b.ping(a.peer_id) > 0
        stream = await b.new_stream(a.peer_id, [ECHO])
        payload = bytes(range(256)) * 1000
        await stream.write(payload)
        assert await _read_exactly(stream, len(payload)) == payload
        await stream.close()
        with pytest.raises(P2PError):
            await b.new_stream(a.peer_id, ["/pinion/nobody-serves-this/1.0.0"])

    run(body, a, b)


def test_bad_multiaddrs_and_self_dial_are_refused() -> None:
    for bad, msg in [
        ("not a multiaddr", "invalid multiaddr"),
        ("/ip4/127.0.0.1/tcp/4001", "no /p2p/"),
    ]:
        with pytest.raises(P2PError, match=msg):
            parse_peer_multiaddr(bad)
    a = new_host()

    async def body() -> None:
        with pytest.raises(P2PError, match="ourselves"):
            await a.connect(a.listen_addrs()[0])
        with pytest.raises(P2PError, match="invalid peer ID"):
            await a.new_stream("nope", [ECHO])

    run(body, a)


def test_connect_to_closed_port_fails_cleanly() -> None:
    a, b = new_host(), new_host()
    dead_addr: list[str] = []

    async def first() -> None:
        dead_addr.append(b.listen_addrs()[0])

    run(first, b)  # b stops: its port is closed

    async def body() -> None:
        with pytest.raises(P2PError):
            await a.connect(dead_addr[0], timeout=5)
        assert a.peers() == []

    run(body, a)


def test_cluster_hosts_with_same_secret_exchange_gossipsub() -> None:
    secret = new_secret()
    a = new_host("cluster", psk=secret, pubsub=True)
    b = new_host("cluster", psk=secret, pubsub=True)
    c = new_host("cluster", psk=secret, pubsub=True)

    async def body() -> None:
        await b.connect(a.listen_addrs()[0])
        await c.connect(b.listen_addrs()[0])  # a line: a - b - c
        subs = {h.peer_id: await h.subscribe("pinion-test") for h in (a, b, c)}
        with trio.fail_after(10):
            while not (b.topic_peers("pinion-test") and len(b.topic_peers("pinion-test")) == 2 and c.topic_peers("pinion-test")):
                await trio.sleep(0.05)
            await trio.sleep(1.2)  # one heartbeat builds the mesh
        # a burst well above upstream's 10 msgs/s spam limit and its 32-entry queues
        n = 100
        for i in range(n):
            await a.publish("pinion-test", b"msg-%d" % i)
        for h in (b, c):
            got = []
            with trio.fail_after(15):
                while len(got) < n:
                    m = await subs[h.peer_id].get()
                    got.append(m.data)
            assert got == [b"msg-%d" % i for i in range(n)] or sorted(got) == sorted(b"msg-%d" % i for i in range(n))
        with pytest.raises(P2PError, match="bytes"):
            await a.publish("pinion-test", "text")  # type: ignore[arg-type]

    run(body, a, b, c, timeout=60)


def test_private_network_refuses_wrong_or_missing_secret() -> None:
    secret = new_secret()
    a = new_host("cluster", psk=secret)
    wrong = new_host("cluster", psk=new_secret())
    public = new_host("swarm")

    async def body() -> None:
        target = a.listen_addrs()[0]
        for outsider in (wrong, public):
            with pytest.raises(P2PError):
                await outsider.connect(target, timeout=2)
            assert outsider.peers() == []
        # and the private host cannot dial a public one either
        with pytest.raises(P2PError):
            await a.connect(public.listen_addrs()[0], timeout=2)
        assert a.peers() == []

    run(body, a, wrong, public, timeout=60)


def test_malformed_secrets_are_refused() -> None:
    for bad in ["", "00" * 31, "zz" * 32, "00" * 33]:
        with pytest.raises(ValueError, match="private-network key"):
            new_host("cluster", psk=bad)


def test_peers_remembered_and_redialled_after_restart(tmp_path) -> None:
    import plyvel

    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        a = new_host()
        b = new_host(peer_book=PeerBook(db, "swarm"))
        a_addr: list[str] = []

        async def first() -> None:
            a_addr.append(a.listen_addrs()[0])
            await b.connect(a_addr[0])

        run(first, a, b)
        assert PeerBook(db, "swarm").known() == {a.peer_id: [a_addr[0].split("/p2p/")[0]]}

        # a comes back on the same port; a new b with the same book reconnects on start
        port = a_addr[0].split("/tcp/")[1].split("/")[0]
        a2 = HostHandle("swarm", a.keypair, [f"/ip4/127.0.0.1/tcp/{port}"])
        b2 = HostHandle("swarm", b.keypair, ["/ip4/127.0.0.1/tcp/0"], peer_book=PeerBook(db, "swarm"))

        async def second() -> None:
            with trio.fail_after(10):
                while [p for p, _ in b2.peers()] != [a.peer_id]:
                    await trio.sleep(0.05)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(a2.serve)
                await nursery.start(b2.serve)
                try:
                    await second()
                finally:
                    await b2.stop()
                    await a2.stop()

        trio.run(main)
    finally:
        db.close()


def test_handle_is_one_shot_and_stop_before_start_returns_at_once() -> None:
    a = new_host()

    async def main() -> None:
        with trio.fail_after(1):
            await a.stop()  # never started: nothing to wait for
        with pytest.raises(P2PError, match="already started"):
            await a.serve()
        with pytest.raises(P2PError, match="not running"):
            a.listen_addrs()

    trio.run(main)


def test_pubsub_calls_on_a_host_without_pubsub_are_refused() -> None:
    a = new_host()

    async def body() -> None:
        with pytest.raises(P2PError, match="no pubsub"):
            await a.subscribe("t")

    run(body, a)


def test_known_peer_that_drops_is_redialled_until_disconnected_on_purpose(tmp_path) -> None:
    import plyvel

    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        a = new_host()
        b = HostHandle("swarm", new_host().keypair, ["/ip4/127.0.0.1/tcp/0"], peer_book=PeerBook(db, "swarm"), reconnect_interval=0.1)

        async def wait_peers(h: HostHandle, expected: list[str]) -> None:
            with trio.fail_after(10):
                while [p for p, _ in h.peers()] != expected:
                    await trio.sleep(0.02)

        async def body() -> None:
            await b.connect(a.listen_addrs()[0])
            await a.disconnect(b.peer_id)  # the other side drops us
            await wait_peers(a, [])
            await wait_peers(b, [a.peer_id])  # b redials a
            await b.disconnect(a.peer_id)  # on purpose: forgotten, stays down
            assert PeerBook(db, "swarm").known() == {}
            await trio.sleep(0.5)
            assert b.peers() == []

        run(body, a, b)
    finally:
        db.close()


def test_plaintext_only_dialer_is_refused_while_upstream_default_accepts_it() -> None:
    """Our hosts speak Noise only; a default upstream host still takes plaintext (the canary)."""
    import multiaddr
    from libp2p import new_host as upstream_new_host
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

    from node.p2p import compat
    from node.p2p.identity import generate_identity, load_keypair

    loopback = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")

    def plaintext_dialer():  # type: ignore[no-untyped-def]
        kp = load_keypair(generate_identity()[1])
        h = upstream_new_host(
            key_pair=kp,
            sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(kp)},
            muxer_opt=compat.muxer_options(),
            listen_addrs=[loopback],
            connection_config=compat.connection_config(),
        )
        compat.disable_auto_connector(h)
        return h

    ours = new_host()
    upstream_default = upstream_new_host(key_pair=load_keypair(generate_identity()[1]), listen_addrs=[loopback], connection_config=compat.connection_config())
    compat.disable_auto_connector(upstream_default)
    dialer = plaintext_dialer()

    async def body() -> None:
        async with dialer.run([loopback]), upstream_default.run([loopback]):
            with trio.move_on_after(5):  # refused: fails, or never completes
                with pytest.raises(Exception):
                    await dialer.connect(info_from_p2p_addr(multiaddr.Multiaddr(ours.listen_addrs()[0])))
            assert ours.peers() == []
            with trio.fail_after(10):
                await dialer.connect(info_from_p2p_addr(upstream_default.get_addrs()[0]))
            assert dialer.get_network().get_connections(upstream_default.get_id())

    run(body, ours, timeout=60)


def test_wildcard_listen_address_is_advertised_as_dialable_addresses() -> None:
    import multiaddr

    from node.p2p.hosts import advertised_addrs

    got = [str(a) for a in advertised_addrs([multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/4001"), multiaddr.Multiaddr("/ip4/10.1.2.3/tcp/9")])]
    assert got[0] == "/ip4/127.0.0.1/tcp/4001"
    assert "/ip4/0.0.0.0/tcp/4001" not in got and got[-1] == "/ip4/10.1.2.3/tcp/9"
    assert len(got) == len(set(got))

    a = HostHandle("swarm", new_host().keypair, ["/ip4/0.0.0.0/tcp/0"])
    b = new_host()

    async def body() -> None:
        addrs = a.listen_addrs()
        assert addrs[0].startswith("/ip4/127.0.0.1/tcp/") and not any("/0.0.0.0/" in x for x in addrs)
        assert await b.connect(addrs[0]) == a.peer_id

    run(body, a, b)


def test_stop_closes_the_connections_so_peers_see_us_leave() -> None:
    """A stopped host's peers must notice at once (a restart on the same peer ID is then a
    new peer to them): upstream's ``host.run`` leaves the TCP connections open on exit."""
    a, b = new_host(), new_host()

    async def body() -> None:
        await b.connect(a.listen_addrs()[0])
        assert [p for p, _ in a.peers()] == [b.peer_id]
        await b.stop()
        with trio.fail_after(10):
            while a.peers():
                await trio.sleep(0.05)

    run(body, a, b)


def test_a_peer_back_on_a_new_address_replaces_its_stale_one(tmp_path) -> None:
    """b never dials anyone: a dialled it. b restarts on a new port: it learnt a's address from
    identify, so it redials a, and a learns b's new address (the stale one is dropped)."""
    import plyvel

    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    secret = new_secret()
    keypair_b = new_host().keypair

    def cluster_host(name: str, keypair) -> HostHandle:  # type: ignore[no-untyped-def]
        return HostHandle("cluster", keypair, ["/ip4/127.0.0.1/tcp/0"], psk=secret, peer_book=PeerBook(db, name), learn_peers=True)

    a = cluster_host("a", new_host().keypair)
    try:
        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(a.serve)
                b = cluster_host("b", keypair_b)
                await nursery.start(b.serve)
                old = b.listen_addrs()[0]
                await a.connect(old)
                with trio.fail_after(10):  # b learns a from identify on a's (inbound) connection
                    while PeerBook(db, "b").addrs(a.peer_id) != [a.listen_addrs()[0].split("/p2p/")[0]]:
                        await trio.sleep(0.05)
                await b.stop()
                b2 = cluster_host("b", keypair_b)  # a new port (tcp/0)
                await nursery.start(b2.serve)
                new = b2.listen_addrs()[0]
                assert new != old
                with trio.fail_after(15):  # b2 redials a from its book; a learns the new address
                    while PeerBook(db, "a").addrs(b2.peer_id) != [new.split("/p2p/")[0]]:
                        await trio.sleep(0.05)
                assert [p for p, _ in a.peers()] == [b2.peer_id]
                await b2.stop()
                await a.stop()

        trio.run(main)
    finally:
        db.close()


def test_connecting_to_a_new_address_is_not_held_up_by_a_stale_one() -> None:
    """``--bootstrap <new address>``: the host dials the address it is given, not first the stale
    ones it remembers (one that accepts and never answers used up the whole timeout)."""
    import socket

    a, b = new_host(), new_host()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts, never answers: a black hole for the libp2p handshake
    stale = f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}/p2p/{b.peer_id}"

    async def body() -> None:
        with pytest.raises(P2PError):
            await a.connect(stale, timeout=1)
        assert await a.connect(b.listen_addrs()[0], timeout=5) == b.peer_id

    try:
        run(body, a, b)
    finally:
        silent.close()


def test_a_refused_stale_address_does_not_block_the_peers_live_one() -> None:
    """Upstream's negative cache marks a *peer* (not an address) failed for 60 s when a dial
    to it fails, and refuses every dial to it meanwhile ("recently failed all addresses"):
    a peer whose first remembered address was stale could not be reached at its live one,
    and the redial every 30 s renewed the mark (a restarted peer never rejoined)."""
    import socket

    a, b = new_host(), new_host()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"/ip4/127.0.0.1/tcp/{closed.getsockname()[1]}/p2p/{b.peer_id}"
    closed.close()  # nothing listens there: the dial is refused at once

    async def body() -> None:
        with pytest.raises(P2PError):
            await a.connect(refused, timeout=5)
        assert await a.connect(b.listen_addrs()[0], timeout=5) == b.peer_id

    run(body, a, b)


def test_announced_addresses_kept_for_a_peer() -> None:
    import multiaddr

    from node.p2p.hosts import announced_dial_addrs

    def raw(*addrs: str) -> list[bytes]:
        return [multiaddr.Multiaddr(a).to_bytes() for a in addrs]

    announced = raw(
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/192.168.1.5/tcp/4001",
        "/ip4/10.0.0.7/tcp/4001/p2p/12D3KooWGkBnatNhBF8KSjD6tsmoGA8aX1eeSKqK2EvxwNBeodWc",
        "/ip4/10.0.0.7/udp/4001/quic-v1",
        "/ip4/10.0.0.7/tcp/4002/ws",
        "/ip4/0.0.0.0/tcp/4001",
        "/ip4/10.0.0.8/tcp/0",
        "/dns4/node.example/tcp/4001",
    )
    # inbound from 10.0.0.7 (an ephemeral port): its announced address on that IP first, loopback last
    assert announced_dial_addrs(announced, "/ip4/10.0.0.7/tcp/53211", dialled=False) == [
        "/ip4/10.0.0.7/tcp/4001",
        "/ip4/192.168.1.5/tcp/4001",
        "/dns4/node.example/tcp/4001",
        "/ip4/127.0.0.1/tcp/4001",
    ]
    # dialled by us: the address that worked comes first
    assert announced_dial_addrs(announced[:2], "/ip4/203.0.113.9/tcp/4001", dialled=True) == [
        "/ip4/203.0.113.9/tcp/4001",
        "/ip4/192.168.1.5/tcp/4001",
        "/ip4/127.0.0.1/tcp/4001",
    ]
    assert announced_dial_addrs([b"\xff garbage"], "", dialled=False) == []
