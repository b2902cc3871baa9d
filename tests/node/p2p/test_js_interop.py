"""Interop with js-libp2p 2.10 (TCP, Noise, Yamux, identify): the swarm host, the cluster
host's private network against @libp2p/pnet (XSalsa20, the spec), both directions, and
gossipsub inside that network against @chainsafe/libp2p-gossipsub.

Needs Node >= 20 and npm (installs tests/node/p2p/js/ from its lockfile with ``npm ci``
on first run); skipped where they are missing, so it runs on any machine or CI with Node.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from npm_project import node_problem, npm_install

from node.p2p import compat
from node.p2p.hosts import P2PError
from node.p2p.identity import generate_identity
from node.p2p.service import P2PService, P2PSettings

from .conftest import LOOPBACK, new_secret

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def js_ready() -> None:
    problem = node_problem()
    if problem:
        pytest.skip(f"pnet interop with js-libp2p {problem}")
    npm_install(JS_DIR)


class JsPeer:
    """A running ``libp2p_peer.mjs``: JSON events on stdout, stops when stdin closes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.backlog: list[dict] = []  # events read while waiting for another kind

    @classmethod
    async def start(cls, secret: str, *args: str) -> tuple["JsPeer", dict]:
        proc = await asyncio.create_subprocess_exec(
            "node", str(JS_DIR / "libp2p_peer.mjs"), secret, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        peer = cls(proc)
        return peer, await peer.event("ready")

    async def event(self, kind: str | tuple[str, ...], timeout: float = 20) -> dict:
        kinds = (kind,) if isinstance(kind, str) else kind
        for i, ev in enumerate(self.backlog):
            if ev["event"] in kinds:
                return self.backlog.pop(i)
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)  # type: ignore[union-attr]
            assert line, f"js peer exited while waiting for {kinds}"
            ev = json.loads(line)
            if ev["event"] in kinds:
                return ev
            self.backlog.append(ev)

    async def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")  # type: ignore[union-attr]
        await self.proc.stdin.drain()  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _cluster_service(secret: str) -> P2PService:
    return P2PService(
        P2PSettings(
            swarm_privkey=generate_identity()[1],
            swarm_addrs=(LOOPBACK,),
            cluster_privkey=generate_identity()[1],
            cluster_secret=secret,
            cluster_addrs=(LOOPBACK,),
        )
    )


async def _wait_peer(svc: P2PService, peer: str, which: str = "cluster") -> None:
    for _ in range(200):
        if peer in [p["Peer"] for p in await svc.peers(which)]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{peer} never showed up among the cluster host's peers")


ECHO = "/pinion/test-echo/1.0.0"


async def _echo(stream) -> None:  # type: ignore[no-untyped-def]
    await stream.close()


def _swarm_service() -> P2PService:
    return P2PService(P2PSettings(swarm_privkey=generate_identity()[1], swarm_addrs=(LOOPBACK,)))


def test_js_dials_and_pings_our_swarm_host_and_identify_lists_our_protocols(js_ready: None) -> None:
    async def main() -> None:
        async with _swarm_service() as svc:
            svc.swarm.set_stream_handler(ECHO, _echo)
            addr = (await svc.id())["Addresses"][0]
            js, ready = await JsPeer.start("none", "dial", addr)
            try:
                assert await js.event(("dialed", "error")) == {"event": "dialed", "peer": svc.swarm.peer_id}
                pinged = await js.event(("pinged", "error"))  # js pings us over /ipfs/ping/1.0.0
                assert pinged["event"] == "pinged" and pinged["peer"] == svc.swarm.peer_id
                ident = await js.event("identify")
                assert ident["peer"] == svc.swarm.peer_id
                assert ident["agent"] == compat.AGENT_VERSION
                assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(ident["protocols"])
                assert "/plaintext/2.0.0" not in ident["protocols"]
                await _wait_peer(svc, ready["id"], "swarm")
            finally:
                await js.stop()

    asyncio.run(main())


def test_our_swarm_host_dials_and_pings_js_and_learns_its_protocols(js_ready: None) -> None:
    async def main() -> None:
        js, ready = await JsPeer.start("none")
        try:
            async with _swarm_service() as svc:
                assert await svc.connect(ready["addrs"][0]) == ready["id"]
                assert await svc.ping(ready["id"]) > 0  # we ping js
                for _ in range(200):
                    protos = await svc.run_in_libp2p(_peer_protocols, svc, ready["id"])
                    if protos:
                        break
                    await asyncio.sleep(0.05)
                assert "/ipfs/id/1.0.0" in protos
        finally:
            await js.stop()

    asyncio.run(main())


async def _peer_protocols(svc: P2PService, peer: str) -> list[str]:
    return svc.swarm.peer_protocols(peer)


def test_python_dials_js_in_the_same_private_network(js_ready: None) -> None:
    secret = new_secret()

    async def main() -> None:
        js, ready = await JsPeer.start(secret)
        try:
            async with _cluster_service(secret) as svc:
                assert await svc.connect(ready["addrs"][0], "cluster") == ready["id"]
                assert (await js.event("connect"))["peer"] == svc.cluster.peer_id  # type: ignore[union-attr]
                assert [p["Peer"] for p in await svc.peers("cluster")] == [ready["id"]]
        finally:
            await js.stop()

    asyncio.run(main())


def test_js_dials_python_in_the_same_private_network(js_ready: None) -> None:
    secret = new_secret()

    async def main() -> None:
        async with _cluster_service(secret) as svc:
            addr = (await svc.id("cluster"))["Addresses"][0]
            js, ready = await JsPeer.start(secret, "dial", addr)
            try:
                ev = await js.event(("dialed", "error"))
                assert ev == {"event": "dialed", "peer": svc.cluster.peer_id}  # type: ignore[union-attr]
                await _wait_peer(svc, ready["id"])
            finally:
                await js.stop()

    asyncio.run(main())


def test_different_secrets_do_not_connect_either_way(js_ready: None) -> None:
    async def main() -> None:
        js, ready = await JsPeer.start(new_secret())
        try:
            async with _cluster_service(new_secret()) as svc:
                with pytest.raises(P2PError):
                    await svc.connect(ready["addrs"][0], "cluster", timeout=3)
                assert await svc.peers("cluster") == []
                addr = (await svc.id("cluster"))["Addresses"][0]
                js2, _ = await JsPeer.start(new_secret(), "dial", addr)
                try:
                    ev = await js2.event(("dialed", "error"))
                    assert ev["event"] == "error"
                    assert await svc.peers("cluster") == []
                finally:
                    await js2.stop()
        finally:
            await js.stop()

    asyncio.run(main())


def test_upstream_pnet_still_cannot_reach_js(js_ready: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Canary for compat's pnet fix: upstream's Salsa20/8-byte-nonce pnet fails against js."""
    import libp2p.network.swarm as swarm_mod
    from libp2p.security.pnet.protector import new_protected_conn as upstream

    secret = new_secret()

    async def main() -> None:
        js, ready = await JsPeer.start(secret)
        try:
            svc = _cluster_service(secret)  # installs compat; then put upstream's pnet back
            monkeypatch.setattr(swarm_mod, "new_protected_conn", upstream)
            async with svc:
                with pytest.raises(P2PError):
                    await svc.connect(ready["addrs"][0], "cluster", timeout=4)
        finally:
            await js.stop()

    asyncio.run(main())


def test_gossipsub_with_js_inside_the_private_network(js_ready: None) -> None:
    secret = new_secret()
    topic = "pinion-interop"

    async def main() -> None:
        js, ready = await JsPeer.start(secret, "topic", topic)
        try:
            async with _cluster_service(secret) as svc:
                me = svc.cluster.peer_id  # type: ignore[union-attr]
                sub = await svc.subscribe(topic)
                await svc.connect(ready["addrs"][0], "cluster")
                while True:  # js learns we subscribed
                    ev = await js.event("subscription-change")
                    if ev["peer"] == me and topic in ev["topics"]:
                        break
                for _ in range(200):  # and we learn js did
                    if ready["id"] in await svc.run_in_libp2p(_cluster_topic_peers, svc, topic):
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.5)  # a heartbeat or two: both meshes hold the other
                await js.send("publish hello from js")
                assert await asyncio.wait_for(sub.get(), 10) == (ready["id"], b"hello from js")
                await svc.publish(topic, b"hello from python")
                ev = await js.event("message")
                assert (ev["from"], ev["topic"], ev["data"]) == (me, topic, "hello from python")
        finally:
            await js.stop()

    asyncio.run(main())


async def _cluster_topic_peers(svc: P2PService, topic: str) -> list[str]:
    assert svc.cluster is not None
    return svc.cluster.topic_peers(topic)
