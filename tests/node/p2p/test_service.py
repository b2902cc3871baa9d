"""P2PService from asyncio: two nodes in one process, each with its own trio thread."""

from __future__ import annotations

import asyncio
import base64

import plyvel
import pytest

from node.p2p.hosts import P2PError
from node.p2p.identity import generate_identity
from node.p2p.service import P2PService, P2PSettings

from .conftest import LOOPBACK, new_secret

ECHO = "/pinion/test-echo/1.0.0"


def _settings(secret: str | None) -> P2PSettings:
    return P2PSettings(
        swarm_privkey=generate_identity()[1],
        swarm_addrs=(LOOPBACK,),
        cluster_privkey=generate_identity()[1],
        cluster_secret=secret,
        cluster_addrs=(LOOPBACK,),
    )


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


def test_two_services_id_connect_peers_ping_and_echo_from_asyncio() -> None:
    async def main() -> None:
        async with P2PService(_settings(None)) as a, P2PService(_settings(None)) as b:
            assert a.cluster is None
            a.swarm.set_stream_handler(ECHO, _echo)
            ident = await a.id()
            assert ident["ID"] == a.swarm.peer_id
            assert ECHO in ident["Protocols"] and "/ipfs/ping/1.0.0" in ident["Protocols"]
            assert all(x.endswith("/p2p/" + ident["ID"]) for x in ident["Addresses"])
            assert base64.b64decode(ident["PublicKey"])[:2] == b"\x08\x01"
            assert await b.connect(ident["Addresses"][0]) == ident["ID"]
            assert [p["Peer"] for p in await b.peers()] == [ident["ID"]]
            assert await b.ping(ident["ID"]) > 0

            async def echo_round_trip(payload: bytes) -> bytes:
                stream = await b.swarm.new_stream(a.swarm.peer_id, [ECHO])
                await stream.write(payload)
                got = b""
                while len(got) < len(payload):
                    got += await stream.read(len(payload) - len(got))
                await stream.close()
                return got

            assert await b.run_in_libp2p(echo_round_trip, b"through the bridge") == b"through the bridge"
            with pytest.raises(P2PError, match="no /p2p/"):
                await b.connect("/ip4/127.0.0.1/tcp/1")
            with pytest.raises(P2PError, match="no cluster host"):
                await b.publish("t", b"x")
            await b.disconnect(ident["ID"])
            assert await b.peers() == []

    asyncio.run(main())


def test_cluster_pubsub_through_the_service() -> None:
    secret = new_secret()

    async def main() -> None:
        async with P2PService(_settings(secret)) as a, P2PService(_settings(secret)) as b:
            cid = await a.id("cluster")
            assert cid["ID"] != (await a.id())["ID"]
            await b.connect(cid["Addresses"][0], which="cluster")
            sub = await a.subscribe("pinion-heads")
            await b.subscribe("pinion-heads")
            for _ in range(100):  # until the mesh/fanout knows a is subscribed
                if b.cluster and await b.run_in_libp2p(_topic_peers, b, "pinion-heads"):
                    break
                await asyncio.sleep(0.05)
            await b.publish("pinion-heads", b"head-1")
            sender, data = await asyncio.wait_for(sub.get(), 10)
            assert (sender, data) == (b.cluster.peer_id, b"head-1")

    asyncio.run(main())


async def _topic_peers(svc: P2PService, topic: str) -> list[str]:
    assert svc.cluster is not None
    return svc.cluster.topic_peers(topic)


def test_settings_from_config_and_bad_keys() -> None:
    pid, key = generate_identity()
    cfg = {
        "Identity": {"PeerID": pid, "PrivKey": key},
        "Addresses": {"Swarm": ["/ip4/0.0.0.0/tcp/4001"], "Cluster": ["/ip4/0.0.0.0/tcp/9096"]},
        "Cluster": {"Secret": "ab" * 32, "PrivKey": generate_identity()[1], "Bootstrap": []},
    }
    s = P2PSettings.from_config(cfg)
    assert s.swarm_privkey == key and s.cluster_secret == "ab" * 32 and list(s.cluster_addrs) == ["/ip4/0.0.0.0/tcp/9096"]
    svc = P2PService(s)
    assert svc.swarm.peer_id == pid and svc.cluster is not None and svc.cluster.private
    with pytest.raises(ValueError, match="private-network key"):
        P2PService(P2PSettings(swarm_privkey=key, cluster_privkey=key, cluster_secret="00"))


def test_peer_book_survives_restart(tmp_path) -> None:
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)

    async def main() -> None:
        async with P2PService(_settings(None)) as a:
            settings_b = _settings(None)
            async with P2PService(settings_b, db) as b:
                await b.connect((await a.id())["Addresses"][0])
            async with P2PService(settings_b, db) as b2:  # restart: redials a
                for _ in range(200):
                    if await b2.peers():
                        break
                    await asyncio.sleep(0.05)
                assert [p["Peer"] for p in await b2.peers()] == [a.swarm.peer_id]

    try:
        asyncio.run(main())
    finally:
        db.close()


def test_libp2p_service_started_from_asyncio_sees_host_and_is_cancelled_first() -> None:
    import trio

    events: list[str] = []

    async def service(svc: P2PService, *, task_status) -> None:
        svc.swarm.set_stream_handler("/pinion/svc/1.0.0", _echo)
        task_status.started(svc.swarm.peer_id)
        try:
            await trio.sleep_forever()
        finally:
            events.append("service stopped" if svc.swarm.host is not None else "host already gone")

    async def failing(*, task_status) -> None:
        raise RuntimeError("cannot start")

    async def main() -> None:
        svc = P2PService(_settings(None))
        await svc.start()
        try:
            assert await svc.start_libp2p_service(service, svc) == svc.swarm.peer_id
            assert "/pinion/svc/1.0.0" in svc.peer_info()["Protocols"]
            assert svc.peer_info()["Addresses"][0].endswith(svc.swarm.peer_id)
            with pytest.raises(RuntimeError, match="cannot start"):
                await svc.start_libp2p_service(failing)
        finally:
            await svc.stop()
        await svc.stop()  # idempotent

    asyncio.run(main())
    assert events == ["service stopped"]


def test_busy_port_fails_start_with_a_clear_error_and_no_thread_left() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        settings = P2PSettings(swarm_privkey=generate_identity()[1], swarm_addrs=(f"/ip4/127.0.0.1/tcp/{port}",))

        async def main() -> None:
            svc = P2PService(settings)
            with pytest.raises(P2PError, match="could not listen"):
                await svc.start()
            assert not svc.bridge.running

        asyncio.run(main())


def test_subscription_unsubscribe_and_resubscribe() -> None:
    secret = new_secret()

    async def main() -> None:
        async with P2PService(_settings(secret)) as a, P2PService(_settings(secret)) as b:
            await b.connect((await a.id("cluster"))["Addresses"][0], "cluster")
            sub = await a.subscribe("t")
            with pytest.raises(P2PError, match="already subscribed"):
                await a.subscribe("t")
            await a.unsubscribe(sub)
            await a.unsubscribe(sub)  # idempotent
            sub2 = await a.subscribe("t")
            for _ in range(100):
                if await b.run_in_libp2p(_topic_peers, b, "t"):
                    break
                await asyncio.sleep(0.05)
            await b.publish("t", b"again")
            assert await asyncio.wait_for(sub2.get(), 10) == (b.cluster.peer_id, b"again")  # type: ignore[union-attr]
            assert sub.queue.empty()

    asyncio.run(main())


def test_subscription_drops_oldest_when_consumer_lags() -> None:
    from node.p2p.service import Subscription

    sub = Subscription("t", maxsize=3)
    for i in range(5):
        sub._deliver(("p", b"%d" % i))
    assert sub.dropped == 2
    assert [sub.queue.get_nowait()[1] for _ in range(3)] == [b"2", b"3", b"4"]


def test_protocols_added_by_a_service_reach_connected_peers() -> None:
    """What bitswap needs: peers that identified us before it started learn its protocols."""
    import trio
    from libp2p.custom_types import TProtocol

    async def raw_service(svc: P2PService, *, task_status) -> None:
        assert svc.swarm.host is not None
        svc.swarm.host.set_stream_handler(TProtocol("/pinion/raw/1.0.0"), _echo)  # like bitswap does
        task_status.started()
        await trio.sleep_forever()

    async def b_knows(b: P2PService, peer: str, proto: str) -> bool:
        return proto in b.swarm.peer_protocols(peer)

    async def main() -> None:
        async with P2PService(_settings(None)) as a, P2PService(_settings(None)) as b:
            await b.connect((await a.id())["Addresses"][0])
            for _ in range(200):
                if await b.run_in_libp2p(b_knows, b, a.swarm.peer_id, "/ipfs/ping/1.0.0"):
                    break
                await asyncio.sleep(0.02)
            await a.start_libp2p_service(raw_service, a)
            for _ in range(250):
                if await b.run_in_libp2p(b_knows, b, a.swarm.peer_id, "/pinion/raw/1.0.0"):
                    break
                await asyncio.sleep(0.02)
            assert await b.run_in_libp2p(b_knows, b, a.swarm.peer_id, "/pinion/raw/1.0.0")

    asyncio.run(main())
