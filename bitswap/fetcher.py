"""The DAG fetcher: make a whole DAG (dag-pb, raw, dag-cbor links) present in the block store.

:func:`fetch_dag` walks the DAG from its root with ``concurrency`` workers.
A block already in the store is not fetched (only read, if it can have
links), so a fetch interrupted by a crash resumes by simply running again:
it re-walks what is present and fetches the rest. ``max_depth`` limits the
walk (0 = the root only; None = everything), for depth-limited pins. A
block shared by several parents is visited once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from blockstore.cid import RAW, cid_to_str, codec_of, multihash_of
from blockstore.links import LinksError, iter_links

from .errors import BlockNotDelivered
from .errors import NetworkUnavailable

__all__ = ["FetchError", "FetchResult", "fetch_dag"]

#: progress(blocks visited so far, bytes fetched from the network so far)
Progress = Callable[[int, int], None]


class FetchError(NetworkUnavailable):
    """A block of the DAG could not be fetched or decoded."""


@dataclass(slots=True)
class FetchResult:
    """What a DAG fetch did."""

    blocks: int = 0  #: blocks in the (depth-limited) DAG
    fetched: int = 0  #: blocks fetched from the network
    fetched_bytes: int = 0  #: bytes fetched from the network
    present: int = 0  #: blocks that were already in the store


async def fetch_dag(
    bitswap: Any,
    root: bytes,
    *,
    concurrency: int = 64,
    max_depth: int | None = None,
    block_timeout: float | None = 60.0,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch every block of the DAG under ``root`` that the store lacks.

    ``bitswap`` is a :class:`bitswap.Bitswap` (anything with ``store`` and
    ``async get_block(cid, timeout)``). Raises FetchError naming the block if
    one cannot be fetched within ``block_timeout`` seconds (or sooner, when no
    peer is left connected: see ``BitswapConfig.no_peer_grace``) or does not decode.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if max_depth is not None and max_depth < 0:
        raise ValueError("max_depth must be None or >= 0")
    store = bitswap.store
    result = FetchResult()
    seen = {multihash_of(root)}
    send, recv = trio.open_memory_channel(math.inf)
    send.send_nowait((root, 0))
    outstanding = 1

    async def visit(cid: bytes, depth: int) -> None:
        nonlocal outstanding
        leaf = codec_of(cid) == RAW or (max_depth is not None and depth >= max_depth)
        if leaf and store.has(cid):
            result.present += 1
            data = None
        else:
            data = store.get(cid)
            if data is not None:
                result.present += 1
            else:
                try:
                    data = await bitswap.get_block(cid, block_timeout)
                except BlockNotDelivered as exc:
                    # "block <cid> not found within <t> s", or "... not found: no connected peer for <g> s"
                    raise FetchError(str(exc) or f"block {cid_to_str(cid)} not found") from None
                result.fetched += 1
                result.fetched_bytes += len(data)
        if data is not None and not leaf:
            try:
                links = iter_links(cid, data)
            except LinksError as exc:
                raise FetchError(f"block {cid_to_str(cid)}: {exc}") from None
            for child in links:
                mh = multihash_of(child)
                if mh not in seen:
                    seen.add(mh)
                    outstanding += 1
                    send.send_nowait((child, depth + 1))
        result.blocks += 1
        outstanding -= 1
        if progress is not None:
            progress(result.blocks, result.fetched_bytes)
        if outstanding == 0:
            send.close()

    failure: list[FetchError] = []
    #: workers started, and those inside ``visit``: a worker is started only when a queued
    #: block finds none idle (a one-block DAG costs one task, not ``concurrency``)
    live = busy = 0

    async def worker(scope: trio.CancelScope) -> None:
        nonlocal busy
        async for cid, depth in recv:
            busy += 1
            try:
                await visit(cid, depth)
            except FetchError as exc:
                failure.append(exc)
                scope.cancel()
                return
            finally:
                busy -= 1
            if outstanding > 0:
                grow()

    def grow() -> None:
        nonlocal live
        queued = recv.statistics().current_buffer_used
        while live < concurrency and queued > live - busy:
            live += 1
            nursery.start_soon(worker, nursery.cancel_scope)

    async with trio.open_nursery() as nursery:
        grow()
    if failure:
        raise failure[0]
    return result
