"""Test helpers for the gateway: a CARv1 reader, fixture import and a live gateway on loopback."""

from __future__ import annotations

import asyncio
import http.client
import threading
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web

from blockstore.cid import CidError, cid_from_str, read_cid, read_varint
from blockstore.db import open_db
from blockstore.store import BlockStore
from blockstore.cborvalue import decode_cbor

FIXTURES = Path(__file__).resolve().parents[1].joinpath("fixtures", "gateway-conformance")


def read_car(data: bytes) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    """Parse a CARv1 stream: (header, [(cid bytes exactly as written, block)]); raise ValueError if truncated."""
    n, pos = read_varint(data, 0)
    header = decode_cbor(data[pos : pos + n])
    pos += n
    sections = []
    while pos < len(data):
        n, pos = read_varint(data, pos)
        end = pos + n
        if end > len(data):
            raise ValueError("truncated CAR section")
        cid, body = read_cid(data, pos)
        sections.append((cid, data[body:end]))
        pos = end
    return header, sections


def import_fixtures(store: BlockStore) -> int:
    """Put every block of every fixture CAR into ``store`` (hash-verified, not pinned); return the count.

    Blocks hashed with a function the store cannot verify (sha2-512 in the plain-CBOR fixtures, which
    belong to the path-dag group this suite skips) are left out.
    """
    total = 0
    for path in sorted(FIXTURES.rglob("*.car")):
        _, sections = read_car(path.read_bytes())
        for cid, block in sections:
            try:
                total += store.put(cid, block, verify=True)
            except CidError:
                continue
    return total


def c(text: str) -> bytes:
    """CID bytes of a CID string."""
    return cid_from_str(text)


class Reply(NamedTuple):
    """One HTTP answer: status, headers (repeated ones joined with ', ', names lower-case), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def h(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower())


class LiveGateway:
    """The gateway app served on 127.0.0.1:0 from a thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "LiveGateway":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def request(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Reply:
        """Send ``path`` exactly as given (already percent-encoded); redirects are not followed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            joined: dict[str, str] = {}
            for k, v in resp.getheaders():
                k = k.lower()
                joined[k] = f"{joined[k]}, {v}" if k in joined else v
            body = resp.read()
            return Reply(resp.status, joined, body)
        finally:
            conn.close()


def open_store(tmp_path: Path) -> BlockStore:
    """A fresh block store in ``tmp_path``."""
    return BlockStore(open_db(tmp_path / "blocks"))
