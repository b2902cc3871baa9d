"""A request whose client hangs up stops its work on a real daemon: gateway and RPC requests waiting
for blocks nobody has drop their bitswap wants when their clients close the connection, long
before ``Gateway.FetchTimeout`` (as kubo does: Go cancels the request's context). Without this,
a client opening such requests and hanging up at once leaves work behind that no connection
limit counts."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp

from blockstore.cid import RAW, cid_for, cid_to_str

#: seconds a missing block would be waited for: far longer than the test waits
FETCH_TIMEOUT = 300
#: requests of each kind (gateway GET, RPC cat) whose clients hang up
REQUESTS = 12


async def _wantlist(session: aiohttp.ClientSession, metrics: str) -> float:
    async with session.get(f"{metrics}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("pinion_bitswap_wantlist_size "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("pinion_bitswap_wantlist_size is not in /metrics")


async def _until(what: str, cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await cond()
        if last is True:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def test_requests_whose_clients_hang_up_drop_their_wants(make_node: Any) -> None:
    node = make_node("gone")
    node.env["PINION_GATEWAY_FETCHTIMEOUT"] = str(FETCH_TIMEOUT)
    node.start()
    gateway, rpc, metrics = node.url("gateway"), node.url("rpc"), node.url("metrics")
    missing = [cid_to_str(cid_for(os.urandom(32), codec=RAW)) for _ in range(2 * REQUESTS)]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as watcher:
            clients = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

            async def get(cid: str) -> None:
                async with clients.get(f"{gateway}/ipfs/{cid}") as resp:
                    await resp.read()

            async def cat(cid: str) -> None:
                async with clients.post(f"{rpc}/api/v0/cat", params={"arg": cid}) as resp:
                    await resp.read()

            waiting = [asyncio.create_task(get(c)) for c in missing[:REQUESTS]]
            waiting += [asyncio.create_task(cat(c)) for c in missing[REQUESTS:]]
            try:
                await _until(f"{2 * REQUESTS} blocks wanted", lambda: _has(watcher, metrics, lambda n: n >= 2 * REQUESTS), 60)
            finally:
                for task in waiting:
                    task.cancel()
                await asyncio.gather(*waiting, return_exceptions=True)
                await clients.close()  # every connection closed: the clients are gone
            await _until("the wants of the gone clients dropped", lambda: _has(watcher, metrics, lambda n: n == 0), 30)

            # the daemon still answers the same requests for a client that stays
            form = aiohttp.FormData()
            form.add_field("file", b"still here", filename="still.txt")
            async with watcher.post(f"{rpc}/api/v0/add", data=form) as resp:
                assert resp.status == 200, await resp.text()

    async def _has(session: aiohttp.ClientSession, url: str, ok: Any) -> Any:
        n = await _wantlist(session, url)
        return True if ok(n) else n

    asyncio.run(scenario())
