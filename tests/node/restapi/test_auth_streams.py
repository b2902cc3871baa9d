"""The REST API's JWT/Basic checks, and NDJSON streams with the X-Stream-Error trailer seen by a raw HTTP/1.1 client."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from node.restapi.auth import AuthError, check_basic, make_jwt, verify_jwt
from node.restapi.streams import stream_ndjson

CREDS = {"admin": "s3cret", "bob": "hunter2"}


def test_tokens_verify_expire_and_refuse_forgeries() -> None:
    token = make_jwt("admin", "s3cret", expiry=60, now=1000)
    assert verify_jwt(token, CREDS, now=1059) == "admin"
    with pytest.raises(AuthError, match="expired"):
        verify_jwt(token, CREDS, now=1060)
    assert verify_jwt(make_jwt("bob", "hunter2", expiry=0, now=0), CREDS, now=10**12) == "bob"  # 0: no expiry
    head, body, sig = token.split(".")
    with pytest.raises(AuthError, match="signature"):
        verify_jwt(f"{head}.{body}.{sig[:-2]}AA", CREDS, now=1000)
    with pytest.raises(AuthError, match="signature"):
        verify_jwt(make_jwt("admin", "guess", expiry=60, now=1000), CREDS, now=1000)
    with pytest.raises(AuthError, match="issuer"):
        verify_jwt(make_jwt("eve", "x", expiry=60, now=1000), CREDS, now=1000)
    for bad in ("", "a.b", "a.b.c.d", "!!.??.**"):
        with pytest.raises(AuthError):
            verify_jwt(bad, CREDS)


def test_basic_credentials() -> None:
    enc = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    assert check_basic(enc("admin:s3cret"), CREDS) == "admin"
    for bad in (enc("admin:wrong"), enc("nobody:s3cret"), enc("admin"), "***"):
        with pytest.raises(AuthError):
            check_basic(bad, CREDS)


async def _items(n: int, fail_after: int | None) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        if fail_after is not None and i == fail_after:
            raise RuntimeError("peer 3 went away")
        yield {"i": i}


def _raw_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_streams_end_with_the_trailer_and_empty_ones_are_204() -> None:
    async def main() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            n = int(request.query["n"])
            fail = int(request.query["fail"]) if "fail" in request.query else None
            return await stream_ndjson(request, _items(n, fail), to_error=lambda e: (500, str(e)))

        app = web.Application()
        app.router.add_get("/s", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            ok = await asyncio.to_thread(_raw_get, port, "/s?n=3")
            head, _, body = ok.partition(b"\r\n\r\n")
            assert b"Transfer-Encoding: chunked" in head and b"Trailer: X-Stream-Error" in head
            assert body.endswith(b"0\r\nX-Stream-Error: \r\n\r\n")
            assert b'{"i":2}' in body
            failed = await asyncio.to_thread(_raw_get, port, "/s?n=5&fail=2")
            assert failed.startswith(b"HTTP/1.1 200") and failed.endswith(b"0\r\nX-Stream-Error: peer 3 went away\r\n\r\n")
            early = await asyncio.to_thread(_raw_get, port, "/s?n=5&fail=0")
            assert early.startswith(b"HTTP/1.1 500") and b"peer 3 went away" in early
            empty = await asyncio.to_thread(_raw_get, port, "/s?n=0")
            assert empty.startswith(b"HTTP/1.1 204")
        finally:
            await runner.cleanup()

    asyncio.run(main())
