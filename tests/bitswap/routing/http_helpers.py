"""Shared helpers of the routing tests: peer IDs, records, and aiohttp servers on loopback inside a test's loop."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bitswap.routing.records import PeerRecord


def ed25519_peer(seed: bytes | None = None) -> bytes:
    """An Ed25519 peer ID multihash (identity of the protobuf public key), as libp2p makes them."""
    key = (seed or os.urandom(32)).ljust(32, b"\0")[:32]
    return b"\x00\x24" + b"\x08\x01\x12\x20" + key


def rsa_style_peer(seed: bytes | None = None) -> bytes:
    """A sha2-256 peer ID multihash (the ``Qm...`` form of keys too large to inline)."""
    return b"\x12\x20" + (seed or os.urandom(32)).ljust(32, b"\0")[:32]


def record(n: int, protocols: tuple[str, ...] = ("transport-bitswap",), port: int = 4001) -> PeerRecord:
    """A distinct, valid peer record number ``n``."""
    return PeerRecord(ed25519_peer(n.to_bytes(4, "big")), (f"/ip4/10.0.{n // 256 % 256}.{n % 256}/tcp/{port}",), protocols)


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port> for the duration; yield its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
