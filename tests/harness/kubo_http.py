"""Requests shaped as kubo's Go client sends them (go-ipfs-cmds + go-ipfs-files), over raw aiohttp."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote_plus

import aiohttp

BOUNDARY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def part(name: str, body: bytes = b"", ctype: str = "application/octet-stream") -> tuple[str, str, bytes]:
    """One file part (``ctype="application/x-directory"`` for a directory)."""
    return name, ctype, body


def multipart(parts: Iterable[tuple[str, str, bytes]], boundary: str = BOUNDARY) -> bytes:
    """go-ipfs-files' MultiFileReader body: ``name="file"; filename="<url.QueryEscape(path)>"``."""
    out = []
    for name, ctype, body in parts:
        out.append(f"--{boundary}\r\n".encode())
        out.append(f'Content-Disposition: form-data; name="file"; filename="{quote_plus(name, safe="")}"\r\n'.encode())
        out.append(f"Content-Type: {ctype}\r\n\r\n".encode())
        out.append(body)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class Reply:
    """Status, headers and body of one response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body as one JSON value."""
        return json.loads(self.body)

    def lines(self) -> list[Any]:
        """The body as NDJSON."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


async def _request(method: str, url: str, params: list[tuple[str, str]] | None, body: bytes | None, headers: dict[str, str]) -> Reply:
    async with aiohttp.ClientSession() as s:
        data = _chunks(body) if body is not None else None
        async with s.request(method, url, params=params, data=data, headers=headers) as r:
            return Reply(r.status, dict(r.headers), await r.read())


def call(
    base: str,
    command: str,
    *args: str,
    opts: dict[str, str] | None = None,
    files: list[tuple[str, str, bytes]] | None = None,
    raw_body: bytes | None = None,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> Reply:
    """One RPC call: ``arg=`` values, options, and a multipart body of ``files`` (chunked)."""
    params = [("arg", a) for a in args] + list((opts or {}).items())
    hdrs = {"User-Agent": "kubo/0.32.1/"}
    body = raw_body
    if files is not None:
        body = multipart(files)
    if body is not None:
        hdrs["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
    hdrs.update(headers or {})
    return asyncio.run(_request(method, f"{base}/api/v0/{command}", params, body, hdrs))
