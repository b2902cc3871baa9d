"""libp2p fixes measured: each compat fix against upstream py-libp2p 0.8.1 behaviour, plus the bridge.

Rows (in-process, loopback, two hosts in one trio loop unless stated):
- connect latency: upstream ConnectionConfig vs ``max_connections_per_peer=1``;
- one-stream throughput: Noise+Yamux without pnet, with upstream Salsa20 pnet
  (not spec-compatible), with our XSalsa20 pnet;
- gossipsub burst a -> b: upstream defaults (120 s heartbeat, spam protection,
  32-entry queues) vs ours;
- bridge: asyncio -> trio round trip of a no-op call.

Run: ``.venv/bin/python -m benchmarks.bench_p2p [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import statistics
import struct
import time
from collections.abc import Iterator
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from benchmarks.common import report
from node.p2p import compat
from node.p2p.bridge import TrioThread
from node.p2p.identity import generate_identity, load_keypair

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
SINK = "/pinion/bench-sink/1.0.0"
CHUNK = 256 * 1024


def _keypair():  # type: ignore[no-untyped-def]
    return load_keypair(generate_identity()[1])


def _host(config: ConnectionConfig | None = None, psk: str | None = None):  # type: ignore[no-untyped-def]
    kp = _keypair()
    host = new_host(
        key_pair=kp,
        sec_opt=compat.security_options(kp),
        muxer_opt=compat.muxer_options(),
        listen_addrs=[LOOPBACK],
        psk=psk,
        connection_config=config,
    )
    compat.disable_auto_connector(host)
    return host


@contextlib.contextmanager
def _upstream_pnet() -> Iterator[None]:
    """Temporarily route the swarm to upstream's Salsa20/8-byte-nonce pnet."""
    import libp2p.network.swarm as swarm_mod
    from libp2p.security.pnet.protector import new_protected_conn as upstream

    saved = swarm_mod.new_protected_conn
    swarm_mod.new_protected_conn = upstream
    try:
        yield
    finally:
        swarm_mod.new_protected_conn = saved


@contextlib.contextmanager
def _upstream_pubsub_queues() -> Iterator[None]:
    """Temporarily restore upstream's 32-entry pubsub queues."""
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.pubsub.rpc_queue import RpcQueue

    saved = (pubsub_mod.RpcQueue, pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE)
    pubsub_mod.RpcQueue, pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE = RpcQueue, 32
    try:
        yield
    finally:
        pubsub_mod.RpcQueue, pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE = saved


async def _connect(dialer, target) -> float:  # type: ignore[no-untyped-def]
    info = info_from_p2p_addr(target.get_addrs()[0])
    t0 = time.perf_counter()
    with trio.fail_after(30):
        await dialer.connect(info)
    return time.perf_counter() - t0


async def _connect_latency(config: ConnectionConfig | None, n: int) -> list[float]:
    times = []
    for _ in range(n):
        a, b = _host(config), _host(config)
        async with a.run([LOOPBACK]), b.run([LOOPBACK]):
            times.append(await _connect(b, a))
    return times


async def _sink(stream) -> None:  # type: ignore[no-untyped-def]
    total = 0
    try:
        while True:
            data = await stream.read(1 << 20)
            if not data:
                break
            total += len(data)
    except EOFError:
        pass
    await stream.write(struct.pack(">Q", total))
    await stream.close()


async def _throughput(total: int, psk: str | None) -> tuple[float, float]:
    """(MB/s of wall time, MB per CPU second of this process) for one stream carrying ``total`` bytes."""
    a, b = _host(compat.connection_config(), psk), _host(compat.connection_config(), psk)
    a.set_stream_handler(SINK, _sink)
    payload = secrets.token_bytes(CHUNK)
    async with a.run([LOOPBACK]), b.run([LOOPBACK]):
        await _connect(b, a)
        stream = await b.new_stream(a.get_id(), [SINK])
        t0 = time.perf_counter()
        c0 = time.process_time()
        sent = 0
        while sent < total:
            await stream.write(payload)
            sent += len(payload)
        await stream.close_write() if hasattr(stream, "close_write") else await stream.close()
        reply = b""
        while len(reply) < 8:
            chunk = await stream.read(8 - len(reply))
            if not chunk:
                break
            reply += chunk
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    assert struct.unpack(">Q", reply)[0] == sent, "sink did not receive every byte"
    return sent / elapsed / 1e6, sent / cpu / 1e6


def _upstream_router() -> GossipSub:
    return GossipSub(protocols=list(compat.GOSSIPSUB_PROTOCOLS), degree=6, degree_low=4, degree_high=12)


async def _gossip_burst(router_factory, n: int, settle_s: float, backpressure: bool) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Publish ``n`` messages back to back from a to b; (delivered, seconds to last delivery)."""
    a, b = _host(compat.connection_config()), _host(compat.connection_config())
    ra, rb = router_factory(), router_factory()
    pa, pb = Pubsub(a, ra), Pubsub(b, rb)
    delivered = 0
    last = 0.0
    async with a.run([LOOPBACK]), b.run([LOOPBACK]):
        async with background_trio_service(pa), background_trio_service(ra):
            async with background_trio_service(pb), background_trio_service(rb):
                await pa.wait_until_ready()
                await pb.wait_until_ready()
                await _connect(b, a)
                sub = await pb.subscribe("bench")
                await pa.subscribe("bench")
                with trio.move_on_after(10):
                    while "bench" not in pa.peer_topics or not pa.peer_topics["bench"]:
                        await trio.sleep(0.02)
                await trio.sleep(settle_s)
                t0 = time.perf_counter()
                for i in range(n):
                    if backpressure:
                        await compat.publish(pa, "bench", b"%08d" % i)
                    else:
                        await pa.publish("bench", b"%08d" % i)
                while delivered < n:  # until everything arrived or nothing did for 5 s
                    with trio.move_on_after(5) as idle:
                        await sub.get()
                    if idle.cancelled_caught:
                        break
                    delivered += 1
                    last = time.perf_counter() - t0
        compat.close_pubsub(pa)
        compat.close_pubsub(pb)
    return delivered, last


async def _bridge_round_trips(n: int) -> float:
    bridge = TrioThread(name="bench-bridge")
    bridge.start()

    async def noop() -> None:
        return None

    try:
        for _ in range(100):
            await bridge.run(noop)
        t0 = time.perf_counter()
        for _ in range(n):
            await bridge.run(noop)
        return (time.perf_counter() - t0) / n
    finally:
        await bridge.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for a fast run")
    args = parser.parse_args()
    quick = args.quick
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)  # upstream logs every dropped message
    compat.install()
    n_connect = 3 if quick else 10
    total = (16 if quick else 64) * 1024 * 1024
    burst = 200 if quick else 1000
    calls = 2000 if quick else 10000
    psk = secrets.token_hex(32)
    rows: list[dict[str, Any]] = []

    up = trio.run(_connect_latency, None, n_connect)
    ours = trio.run(_connect_latency, compat.connection_config(), n_connect)
    rows.append({"fix": "connect", "variant": "upstream config (3 conns/peer)", "value": statistics.median(up) * 1e3, "unit": "ms median", "n": n_connect})
    rows.append({"fix": "connect", "variant": "max_connections_per_peer=1", "value": statistics.median(ours) * 1e3, "unit": "ms median", "n": n_connect})

    for fix, variant, key, upstream in [
        ("stream", "noise+yamux, no pnet", None, False),
        ("pnet", "upstream Salsa20, 8-byte nonce (not interoperable)", psk, True),
        ("pnet", "ours: XSalsa20, 24-byte nonce (spec)", psk, False),
    ]:
        with _upstream_pnet() if upstream else contextlib.nullcontext():
            mbps, per_cpu = trio.run(_throughput, total, key)
        rows.append({"fix": fix, "variant": variant, "value": mbps, "unit": "MB/s", "n": total >> 20, "MB per CPU s": per_cpu})

    with _upstream_pubsub_queues():
        got, secs = trio.run(_gossip_burst, _upstream_router, burst, 1.2, False)
    rows.append({"fix": "gossipsub", "variant": "upstream defaults, burst", "value": 100.0 * got / burst, "unit": "% delivered", "n": burst, "seconds": secs})
    got, secs = trio.run(_gossip_burst, compat.gossipsub_router, burst, 1.2, False)
    rows.append({"fix": "gossipsub", "variant": "1 s heartbeat, no spam drop, 1024 queues, no backpressure", "value": 100.0 * got / burst, "unit": "% delivered", "n": burst, "seconds": secs})
    got, secs = trio.run(_gossip_burst, compat.gossipsub_router, burst, 1.2, True)
    rows.append({"fix": "gossipsub", "variant": "ours: the above + publish backpressure", "value": 100.0 * got / burst, "unit": "% delivered", "n": burst, "seconds": secs, "msgs/s": got / secs if secs else 0.0})

    per_call = asyncio.run(_bridge_round_trips(calls))
    rows.append({"fix": "bridge", "variant": "asyncio -> trio no-op round trip", "value": per_call * 1e6, "unit": "us", "n": calls})

    report(
        "p2p",
        rows,
        {
            "setup": "in-process, loopback, two py-libp2p 0.8.1 hosts in one trio loop; Noise + Yamux",
            "stream": f"one stream, {CHUNK >> 10} KiB writes, sender and receiver share one core (GIL)",
            "quick": quick,
            "MB per CPU s": "bytes moved per second of this process's CPU time: less sensitive to other load on the machine",
            "load average at start": os.getloadavg()[0],
        },
    )


if __name__ == "__main__":
    main()
