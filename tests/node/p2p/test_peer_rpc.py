"""Peer RPC between two real cluster hosts: unary and paged calls, errors, trust."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from node.p2p.identity import generate_identity
from node.p2p.peer_rpc import PeerRPC, PeerRpcError, one, paged
from node.p2p.service import P2PService, P2PSettings

from .conftest import LOOPBACK, new_secret


def _settings(secret: str) -> P2PSettings:
    return P2PSettings(
        swarm_privkey=generate_identity()[1],
        swarm_addrs=(LOOPBACK,),
        cluster_privkey=generate_identity()[1],
        cluster_secret=secret,
        cluster_addrs=(LOOPBACK,),
    )


def _rpc(svc: P2PService, trusted: set[str] | None = None) -> PeerRPC:
    assert svc.cluster is not None
    rpc = PeerRPC(
        svc.cluster,
        run=svc.bridge.run,
        run_asyncio=svc.bridge.run_asyncio,
        is_trusted=lambda p: trusted is None or p in trusted,
    )
    rpc.start()
    return rpc


def test_unary_streamed_errors_and_untrusted_callers() -> None:
    secret = new_secret()

    async def main() -> None:
        async with P2PService(_settings(secret)) as a, P2PService(_settings(secret)) as b, P2PService(
            _settings(secret)
        ) as c:
            assert a.cluster and b.cluster and c.cluster
            seen: list[str] = []
            server = _rpc(a, trusted={b.cluster.peer_id})

            async def echo(peer: str, args: Any):
                seen.append(peer)
                yield [{"echo": args, "bytes": b"\x00\x01"}]

            async def count(peer: str, args: Any):
                async def items():
                    for i in range(int(args["n"])):
                        yield i

                async for page in paged(items(), size=7):
                    yield page

            async def boom(peer: str, args: Any):
                yield [1]
                raise ValueError("handler broke")

            async def ident(peer: str, args: Any):
                async for page in one({"id": a.cluster.peer_id}):
                    yield page

            for name, fn in (("echo", echo), ("count", count), ("boom", boom), ("id", ident)):
                server.register(name, fn)
            caller = _rpc(b)
            stranger = _rpc(c)
            addr = a.peer_info("cluster")["Addresses"][0]
            await b.connect(addr, "cluster")
            await c.connect(addr, "cluster")
            target = a.cluster.peer_id

            assert await caller.call(target, "echo", {"x": [1, "two"]}) == {"echo": {"x": [1, "two"]}, "bytes": b"\x00\x01"}
            assert seen == [b.cluster.peer_id]
            assert await caller.call(target, "id") == {"id": target}
            got = [i async for i in caller.stream(target, "count", {"n": 2500})]
            assert got == list(range(2500))
            assert [i async for i in caller.stream(target, "count", {"n": 0})] == []
            with pytest.raises(PeerRpcError, match="handler broke"):
                [i async for i in caller.stream(target, "boom")]
            with pytest.raises(PeerRpcError, match="unknown method 'nope'"):
                await caller.call(target, "nope")
            with pytest.raises(PeerRpcError, match="expected one result, got 3"):
                await caller.call(target, "count", {"n": 3})
            with pytest.raises(PeerRpcError, match="not trusted"):
                await stranger.call(target, "echo", 1)
            assert seen == [b.cluster.peer_id]  # the untrusted call never reached the handler
            assert server.counters["calls_refused"] == 1
            # a stream abandoned half way is closed without hurting the next call
            async for item in caller.stream(target, "count", {"n": 5000}):
                if item == 10:
                    break
            assert await caller.call(target, "id") == {"id": target}

    asyncio.run(main())


def test_call_to_an_unreachable_peer_fails_cleanly() -> None:
    async def main() -> None:
        async with P2PService(_settings(new_secret())) as a:
            rpc = _rpc(a)
            stranger = generate_identity()[0]
            with pytest.raises(PeerRpcError, match="cannot call id"):
                await rpc.call(stranger, "id", timeout=2)

    asyncio.run(main())
