"""Availability under load on a real daemon: floods of requests that wait (for the network, for a
slow client) must not hold up other kinds of work, and floods of connections must not exhaust
the process's file descriptors.

The assertions compare against the flood itself ("answered while every flooding request was still
waiting"), never against a tight absolute time.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
import time
from typing import Any

import aiohttp

from blockstore.cid import RAW, cid_for, cid_to_str

#: requests of each kind in the flood (the daemon had 32 worker threads for all of them)
FLOOD_PINS = 40
FLOOD_CATS = 40
FLOOD_UPLOADS = 32
#: seconds a missing block is waited for (``Gateway.FetchTimeout``): how long a flooding request lasts
FETCH_TIMEOUT = 40


def _missing_cids(n: int) -> list[str]:
    return [cid_to_str(cid_for(os.urandom(32), codec=RAW)) for _ in range(n)]


async def _metric(session: aiohttp.ClientSession, metrics: str, name: str) -> float:
    async with session.get(f"{metrics}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _slow_upload(rpc: str, release: asyncio.Event) -> None:
    """An ``add`` whose client sends the start of its body, then nothing until ``release``."""
    host, port = rpc.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    boundary = "slowboundary"
    head = (
        f"POST /api/v0/add HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + os.urandom(1024)
    writer.write(head + b"%x\r\n" % len(part) + part + b"\r\n")
    await writer.drain()
    try:
        await release.wait()
    finally:
        writer.close()


async def _timed(what: str, coro: Any) -> tuple[str, float, Any]:
    """(what, when it finished, its result)."""
    result = await coro
    return what, time.monotonic(), result


def test_requests_waiting_for_the_network_or_slow_uploads_do_not_hold_up_other_work(make_node: Any, tmp_path: Any) -> None:
    node = make_node("load")
    node.env["PINION_GATEWAY_FETCHTIMEOUT"] = str(FETCH_TIMEOUT)
    node.start()
    rest, pinsvc, rpc, metrics = node.url("cluster_api"), node.url("pinsvc_api"), node.url("rpc"), node.url("metrics")
    content = os.urandom(100_000)
    added = node.cli("add", "-Q", "--pin=false", str(_write(tmp_path / "present.bin", content))).stdout.decode().strip()

    async def scenario() -> None:
        release = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=3 * FETCH_TIMEOUT)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as s:

            async def pin_path(cid: str) -> int:
                async with s.post(f"{rest}/pins/ipfs/{cid}/a") as resp:
                    await resp.read()
                    return resp.status

            async def cat(cid: str) -> int:
                async with s.post(f"{rpc}/api/v0/cat", params={"arg": cid}) as resp:
                    await resp.read()
                    return resp.status

            flood = [asyncio.create_task(pin_path(c)) for c in _missing_cids(FLOOD_PINS)]
            flood += [asyncio.create_task(cat(c)) for c in _missing_cids(FLOOD_CATS)]
            uploads = [asyncio.create_task(_slow_upload(rpc, release)) for _ in range(FLOOD_UPLOADS)]
            first_done = asyncio.ensure_future(asyncio.wait(flood, return_when=asyncio.FIRST_COMPLETED))
            try:
                # the flood is in once every missing block is wanted from the network
                deadline = time.monotonic() + FETCH_TIMEOUT / 2
                wanted = 0.0
                while wanted < FLOOD_PINS + FLOOD_CATS:
                    assert time.monotonic() < deadline, f"/metrics did not show the flood within {FETCH_TIMEOUT / 2} s (wantlist {wanted})"
                    try:
                        wanted = await asyncio.wait_for(_metric(s, metrics, "pinion_bitswap_wantlist_size"), deadline - time.monotonic())
                    except TimeoutError:
                        raise AssertionError(f"/metrics did not answer within {FETCH_TIMEOUT / 2} s while the flood waits") from None
                    await asyncio.sleep(0.2)

                async def get_status(url: str) -> int:
                    async with s.get(url) as resp:
                        await resp.read()
                        return resp.status

                async def cat_present() -> bytes:
                    async with s.post(f"{rpc}/api/v0/cat", params={"arg": added}) as resp:
                        assert resp.status == 200, await resp.text()
                        return await resp.read()

                async def pin_present() -> int:
                    async with s.post(f"{rest}/pins/{added}") as resp:
                        await resp.read()
                        return resp.status

                probes = await asyncio.gather(
                    _timed("pin POST", pin_present()),
                    _timed("pinning service list", get_status(f"{pinsvc}/pins")),
                    _timed("cat", cat_present()),
                    _timed("/metrics", get_status(f"{metrics}/metrics")),
                    _timed("/health", get_status(f"{rest}/health")),
                )
                flood_end = time.monotonic() if not first_done.done() else None
                results = {what: result for what, _t, result in probes}
                assert results["pin POST"] == 200
                assert results["pinning service list"] == 200
                assert results["cat"] == content
                assert results["/metrics"] == 200
                assert results["/health"] == 204
                # every probe was answered while all the flooding requests were still waiting
                assert flood_end is not None, "a flooding request finished before the probes were answered: they waited behind it"
                assert all(t <= flood_end for _w, t, _r in probes)
            finally:
                release.set()
                await asyncio.gather(*uploads, return_exceptions=True)
                for task in flood:
                    task.cancel()
                await asyncio.gather(*flood, return_exceptions=True)
                first_done.cancel()

    asyncio.run(scenario())


#: streams whose client stops reading (more than the 8 threads of the reads pool), and their size
STALLED_STREAMS = 10
STREAM_MIB = 24


def test_clients_that_stop_reading_streams_hold_no_worker_thread(make_node: Any, tmp_path: Any) -> None:
    """Streams (``get``, ``refs``, ``cat``...) are pulled from the store a batch at a time: a client
    that stops reading holds no worker thread, so more stalled ``get`` streams than the reads pool
    has threads leave it idle and other reads answer; each stream still arrives whole once read."""
    node = make_node("streams")
    node.start("--offline")
    rpc, metrics = node.url("rpc"), node.url("metrics")
    big = os.urandom(STREAM_MIB * 1024 * 1024)  # more than the socket buffers of a client that reads nothing
    big_cid = node.cli("add", "-Q", "--pin=false", str(_write(tmp_path / "big.bin", big))).stdout.decode().strip()
    small = os.urandom(10_000)
    small_cid = node.cli("add", "-Q", "--pin=false", str(_write(tmp_path / "small.bin", small))).stdout.decode().strip()

    async def scenario() -> None:
        timeout = aiohttp.ClientTimeout(total=180)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as s:
            stalled = []
            try:
                for _ in range(STALLED_STREAMS):  # the client reads the status and headers, then nothing
                    resp = await s.post(f"{rpc}/api/v0/get", params={"arg": big_cid})
                    assert resp.status == 200
                    stalled.append(resp)
                deadline = time.monotonic() + 60
                while True:  # every stream is waiting for its client: no reads thread busy or queued
                    busy = await _metric(s, metrics, 'pinion_workers_busy{pool="reads"}')
                    queued = await _metric(s, metrics, 'pinion_workers_queued{pool="reads"}')
                    if busy == 0 and queued == 0:
                        break
                    assert time.monotonic() < deadline, f"reads pool still held by stalled streams: {busy} busy, {queued} queued"
                    await asyncio.sleep(0.2)
                async with s.post(f"{rpc}/api/v0/cat", params={"arg": small_cid}) as resp:
                    assert resp.status == 200 and await resp.read() == small
                async with s.get(f"{metrics}/health") as resp:
                    assert resp.status == 204, await resp.text()
                assert not any(r.content.at_eof() for r in stalled)  # they were still stalled
                for resp in stalled:
                    with tarfile.open(fileobj=io.BytesIO(await resp.read())) as tar:
                        member = tar.extractfile(big_cid)
                        assert member is not None and member.read() == big
            finally:
                for resp in stalled:
                    resp.release()

    asyncio.run(scenario())


def _write(path: Any, data: bytes) -> Any:
    path.write_bytes(data)
    return path


async def _stalled_upload(base: str, path: str, size: int) -> int:
    """An upload whose client sends ``size`` bytes of a file and then nothing; the status it is answered with."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    boundary = "stalledboundary"
    part = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"stalled\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + os.urandom(size)
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + b"%x\r\n" % len(part)
        + part
        + b"\r\n"
    )
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 60)
    finally:
        writer.close()
    return int(status_line.split()[1])


def test_an_upload_whose_client_stalls_is_cut_off_and_rolled_back(make_node: Any) -> None:
    node = make_node("stall")
    node.env["PINION_HTTP_BODYTIMEOUT"] = "2"
    node.start()

    def blocks() -> int:
        return int(json.loads(node.cli("repo", "stat", "--enc", "json").stdout)["NumObjects"])

    before = blocks()

    async def both() -> list[int]:
        # 300 KB: the first 256 KiB leaf is stored before the client stalls
        return await asyncio.gather(
            _stalled_upload(node.url("rpc"), "/api/v0/add", 300_000),
            _stalled_upload(node.url("cluster_api"), "/add", 300_000),
        )

    assert asyncio.run(both()) == [408, 408]
    assert blocks() == before  # what the stalled uploads stored was rolled back


#: the daemon's open-file limit in the descriptor test, and the idle connections opened against it
FD_LIMIT = 256
IDLE_FROM_ONE = 300
IDLE_FROM_MANY = 1100
#: seconds the daemon waits for a request's headers in that test (``HTTP.HeaderTimeout``)
HEADER_TIMEOUT = 3
#: largest daemon log allowed after the floods (it grew by 249 MB in 20 s)
MAX_LOG = 64 * 1024


async def _idle_connections(targets: list[tuple[str, int]], sources: list[str], n: int) -> list[asyncio.StreamWriter]:
    """``n`` connections that send nothing, spread over ``targets`` and the local ``sources`` addresses."""

    async def one(i: int) -> asyncio.StreamWriter | None:
        host, port = targets[i % len(targets)]
        try:
            _r, w = await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(sources[i % len(sources)], 0)), 30)
        except (OSError, TimeoutError):
            return None  # the kernel's backlog was full: refused before the daemon saw it
        return w

    writers = []
    for start in range(0, n, 100):
        writers += [w for w in await asyncio.gather(*(one(i) for i in range(start, min(n, start + 100)))) if w is not None]
    return writers


def test_connection_floods_under_a_low_open_file_limit_are_capped_dropped_and_logged_once(make_node: Any) -> None:
    node = make_node("fds")
    node.env["PINION_HTTP_HEADERTIMEOUT"] = str(HEADER_TIMEOUT)
    node.prefix = ["prlimit", f"--nofile={FD_LIMIT}", "--"]
    node.start()
    urls = {name: node.url(name) for name in ("rpc", "gateway", "metrics", "cluster_api", "pinsvc_api")}
    targets = [tuple(u.removeprefix("http://").split(":")) for u in urls.values()]
    targets = [(h, int(p)) for h, p in targets]
    requests = {  # one ordinary request per server
        "rpc": ("POST", "/api/v0/version"),
        "gateway": ("GET", "/ipfs/bafkqaaa"),  # the empty identity CID: no block needed
        "metrics": ("GET", "/metrics"),
        "cluster_api": ("GET", "/id"),
        "pinsvc_api": ("GET", "/pins"),
    }

    async def ask_all(s: aiohttp.ClientSession) -> dict[str, int]:
        async def ask(name: str) -> int:
            method, path = requests[name]
            try:
                async with s.request(method, urls[name] + path) as resp:
                    await resp.read()
                    return resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                return -1 if not isinstance(exc, TimeoutError) else -2

        statuses = await asyncio.gather(*(ask(n) for n in urls))
        return dict(zip(urls, statuses))

    async def scenario() -> None:
        timeout = aiohttp.ClientTimeout(total=20)
        fresh = aiohttp.TCPConnector(force_close=True, limit=0)  # every request on a new connection
        async with aiohttp.ClientSession(connector=fresh, timeout=timeout) as s:
            assert set((await ask_all(s)).values()) == {200}
            # 1. one address opens 300 idle connections: capped per client, the others still served
            flood = await _idle_connections(targets, ["127.0.0.2"], IDLE_FROM_ONE)
            assert set((await ask_all(s)).values()) == {200}, "one client's idle connections kept others out"
            # 2. 1,100 idle connections from 100 addresses (more than the 256 descriptors): the servers
            # fill up and refuse the rest at once; a request now gets 200 or 503, never a hang
            flood += await _idle_connections(targets, [f"127.0.1.{i}" for i in range(1, 101)], IDLE_FROM_MANY)
            during = await ask_all(s)
            assert set(during.values()) <= {200, 503}, during
            # 3. the idle connections get no more than the header timeout: then everything is served
            # again, though the flooding clients never closed their side
            deadline = time.monotonic() + 60
            while set((answers := await ask_all(s)).values()) != {200}:
                assert time.monotonic() < deadline, f"servers not answering after the idle connections timed out: {answers}"
                await asyncio.sleep(0.5)
            for w in flood:
                w.close()
            async with s.get(urls["metrics"] + "/metrics") as resp:
                text = await resp.text()
            refused = {"server": 0.0, "client": 0.0}
            for line in text.splitlines():
                if line.startswith("pinion_http_connections_refused_total{"):
                    reason = line.split('reason="', 1)[1].split('"', 1)[0]
                    refused[reason] += float(line.rsplit(" ", 1)[1])
            assert refused["client"] > 0 and refused["server"] > 0, refused  # both caps were hit

    asyncio.run(scenario())
    assert node.proc is not None and node.proc.poll() is None, "the daemon died"
    node.stop()
    log = node.log.read_bytes()
    assert len(log) < MAX_LOG, f"the daemon log grew to {len(log)} bytes: {log[:2000]!r}"
    assert b"Traceback" not in log, log[:4000]
