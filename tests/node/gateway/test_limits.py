"""Gateway limits: 414 for over-long URLs, 429 beyond the per-client concurrency, 405 for writes."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request

from blockstore.cid import cid_for, cid_to_str
from node.gateway import make_gateway_app
from node.gateway.source import BlockNotFound

from .helpers import LiveGateway


class HeldSource:
    """A block source whose fetches wait until released (a slow network), counting callers."""

    concurrency = 1

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = 0

    async def get(self, cid: bytes) -> bytes:
        self.waiting += 1
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        raise BlockNotFound(cid)

    async def has_local(self, cid: bytes) -> bool:
        return False


def _status(url: str, method: str = "GET") -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_url_length_concurrency_and_methods() -> None:
    source = HeldSource()
    gw = LiveGateway(make_gateway_app(source, max_url=512, per_client=3)).start()
    base = f"http://127.0.0.1:{gw.port}"
    cid = cid_to_str(cid_for(b"held"))
    try:
        assert _status(f"{base}/ipfs/{cid}/{'a' * 600}")[0] == 414
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(_status(f"{base}/ipfs/{cid}")[0])) for _ in range(3)]
        for t in threads:
            t.start()
        while source.waiting < 3:
            threading.Event().wait(0.01)
        status, headers = _status(f"{base}/ipfs/{cid}")  # a fourth from the same client
        assert status == 429 and headers.get("Retry-After") == "1"
        source.release.set()
        for t in threads:
            t.join(30)
        assert results == [404, 404, 404]  # the held requests end normally (block not found)
        status, headers = _status(f"{base}/ipfs/{cid}")  # slots are free again
        assert status != 429
        status, headers = _status(f"{base}/ipfs/{cid}", method="POST")
        assert status == 405 and "GET" in headers.get("Allow", "")
    finally:
        source.release.set()
        gw.stop()
