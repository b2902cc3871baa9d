"""Peer RPC between cluster peers: request/response and streamed calls over libp2p streams.

IPFS Cluster peers call each other (status of a CID on every allocated peer,
status of everything, recover, id) over go-libp2p-gorpc. Pinion does the same
on its private cluster host with one protocol, :data:`PROTOCOL`:

- the caller opens a stream and writes one frame ``{"m": method, "a": args}``;
- the callee answers with frames ``{"v": [item, ...]}`` (one page of results
  each) and ends with ``{"end": true}`` or ``{"err": "message"}``.

A frame is an unsigned-varint length followed by that many bytes of DAG-CBOR.
Handlers are asyncio callables (they live in the node's asyncio world); the
libp2p side pulls one page at a time from them, so a long stream (the status
of millions of pins) flows with bounded memory on both ends.

Calls from peers that are not trusted (``is_trusted``) are refused with an
error frame before any handler runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import libipld
import trio

from blockstore.cid import encode_varint

from .hosts import HostHandle, P2PError
from ..errors import NodeError

log = logging.getLogger(__name__)

PROTOCOL = "/pinion/cluster-rpc/1.0.0"
#: largest frame accepted, bytes
MAX_FRAME = 4 * 1024 * 1024
#: seconds a whole unary call may take (streams: per page)
CALL_TIMEOUT = 15.0
#: items per page of a streamed answer
PAGE_SIZE = 1000

#: a handler: (caller peer ID, args) -> an async iterator of result pages (lists)
Handler = Callable[[str, Any], AsyncIterator[list[Any]]]


class PeerRpcError(NodeError, RuntimeError):
    """A remote call failed: refused, unknown method, handler error, bad frame, or transport error."""


async def _read_exact(stream: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.read(n - len(buf))
        if not chunk:
            raise PeerRpcError("stream closed in the middle of a frame")
        buf += chunk
    return bytes(buf)


async def read_frame(stream: Any) -> Any | None:
    """One decoded frame from ``stream``; None at a clean end of stream."""
    length = 0
    shift = 0
    for i in range(10):
        byte = await stream.read(1)
        if not byte:
            if i == 0:
                return None
            raise PeerRpcError("stream closed in the middle of a frame length")
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            break
        shift += 7
    else:
        raise PeerRpcError("frame length varint is too long")
    if length > MAX_FRAME:
        raise PeerRpcError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    data = await _read_exact(stream, length)
    try:
        return libipld.decode_dag_cbor(data)
    except Exception as exc:
        raise PeerRpcError(f"frame is not DAG-CBOR: {exc}") from None


def encode_frame(obj: Any) -> bytes:
    """The bytes of one frame holding ``obj``."""
    data = libipld.encode_dag_cbor(obj)
    return encode_varint(len(data)) + data


class PeerRPC:
    """The RPC endpoint of one cluster host: serves ``handlers`` and calls other peers.

    ``run_asyncio`` is the bridge's trio->asyncio call; ``run`` the asyncio->trio call.
    """

    def __init__(
        self,
        host: HostHandle,
        *,
        run: Callable[..., Awaitable[Any]],
        run_asyncio: Callable[..., Awaitable[Any]],
        is_trusted: Callable[[str], bool],
    ) -> None:
        self._host = host
        self._run = run
        self._run_asyncio = run_asyncio
        self._is_trusted = is_trusted
        self.handlers: dict[str, Handler] = {}
        #: counters for metrics
        self.counters = {"calls_served": 0, "calls_refused": 0, "calls_made": 0, "call_errors": 0}

    def register(self, method: str, handler: Handler) -> None:
        """Serve ``method`` with ``handler`` (an async generator function yielding pages)."""
        self.handlers[method] = handler

    def start(self) -> None:
        """Answer :data:`PROTOCOL` on the host."""
        self._host.set_stream_handler(PROTOCOL, self._serve)

    # ------------------------------------------------------------ serving (trio)
    async def _serve(self, stream: Any) -> None:
        peer = str(stream.muxed_conn.peer_id)
        try:
            with trio.fail_after(CALL_TIMEOUT):
                request = await read_frame(stream)
            if not isinstance(request, dict) or not isinstance(request.get("m"), str):
                await stream.write(encode_frame({"err": "malformed request"}))
                return
            method = request["m"]
            if not self._is_trusted(peer):
                self.counters["calls_refused"] += 1
                await stream.write(encode_frame({"err": f"peer {peer} is not trusted"}))
                return
            handler = self.handlers.get(method)
            if handler is None:
                await stream.write(encode_frame({"err": f"unknown method {method!r}"}))
                return
            self.counters["calls_served"] += 1
            await self._answer(stream, handler, peer, request.get("a"))
        except (PeerRpcError, trio.TooSlowError) as exc:
            log.debug("rpc from %s: %s", peer, exc)
        except Exception as exc:  # a broken stream is the caller's loss, never ours
            log.debug("rpc from %s failed: %s", peer, exc)
        finally:
            try:
                await stream.close()
            except Exception:
                pass

    async def _answer(self, stream: Any, handler: Handler, peer: str, args: Any) -> None:
        pages = handler(peer, args)

        async def next_page() -> list[Any] | None:
            try:
                return await pages.__anext__()
            except StopAsyncIteration:
                return None

        try:
            while True:
                try:
                    page = await self._run_asyncio(next_page)
                except Exception as exc:
                    await stream.write(encode_frame({"err": str(exc) or type(exc).__name__}))
                    return
                if page is None:
                    break
                await stream.write(encode_frame({"v": page}))
            await stream.write(encode_frame({"end": True}))
        finally:
            await self._run_asyncio(pages.aclose)

    # ------------------------------------------------------------ calling (asyncio)
    async def stream(self, peer: str, method: str, args: Any = None, *, timeout: float = CALL_TIMEOUT) -> AsyncIterator[Any]:
        """Call ``method`` on ``peer`` and yield every item of its answer; PeerRpcError on failure."""
        self.counters["calls_made"] += 1
        host = self._host

        async def open_stream() -> Any:
            with trio.fail_after(timeout):
                s = await host.new_stream(peer, [PROTOCOL])
                await s.write(encode_frame({"m": method, "a": args}))
                return s

        async def next_frame(s: Any) -> Any:
            with trio.fail_after(timeout):
                return await read_frame(s)

        async def close(s: Any) -> None:
            try:
                await s.close()
            except Exception:
                pass

        try:
            s = await self._run(open_stream)
        except (P2PError, trio.TooSlowError, OSError) as exc:
            self.counters["call_errors"] += 1
            raise PeerRpcError(f"cannot call {method} on {peer}: {exc or 'timed out'}") from None
        try:
            while True:
                try:
                    frame = await self._run(next_frame, s)
                except trio.TooSlowError:
                    raise PeerRpcError(f"{method} on {peer}: no answer in {timeout} s") from None
                except PeerRpcError:
                    raise
                except Exception as exc:
                    raise PeerRpcError(f"{method} on {peer}: {exc}") from None
                if frame is None:
                    raise PeerRpcError(f"{method} on {peer}: stream ended without an end frame")
                if not isinstance(frame, dict):
                    raise PeerRpcError(f"{method} on {peer}: malformed frame")
                if "err" in frame:
                    raise PeerRpcError(f"{method} on {peer}: {frame['err']}")
                if frame.get("end"):
                    return
                page = frame.get("v")
                if not isinstance(page, list):
                    raise PeerRpcError(f"{method} on {peer}: malformed frame")
                for item in page:
                    yield item
        except PeerRpcError:
            self.counters["call_errors"] += 1
            raise
        finally:
            await self._run(close, s)

    async def call(self, peer: str, method: str, args: Any = None, *, timeout: float = CALL_TIMEOUT) -> Any:
        """Call ``method`` on ``peer`` and return its single result; PeerRpcError on failure or after ``timeout`` s."""
        items: list[Any] = []
        try:
            async with asyncio.timeout(timeout):
                async for item in self.stream(peer, method, args, timeout=timeout):
                    items.append(item)
        except TimeoutError:
            self.counters["call_errors"] += 1
            raise PeerRpcError(f"{method} on {peer}: no answer in {timeout} s") from None
        if len(items) != 1:
            raise PeerRpcError(f"{method} on {peer}: expected one result, got {len(items)}")
        return items[0]


async def one(value: Any) -> AsyncIterator[list[Any]]:
    """A handler answer of a single item (for unary methods)."""
    yield [value]


async def paged(items: AsyncIterator[Any], size: int = PAGE_SIZE) -> AsyncIterator[list[Any]]:
    """Group an async iterator of items into pages of ``size``."""
    page: list[Any] = []
    async for item in items:
        page.append(item)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page
