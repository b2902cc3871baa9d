"""The async driver of the UnixFS walk cores (:mod:`blockstore.unixfs_walk`) over a :class:`BlockSource`.

The cores are the exporter's; only the I/O differs. :func:`run` drives a core
to its result, :func:`stream` yields its outputs. Each ``Need`` is answered
with ``source.get`` (:func:`fetch`: 404 for a block the source does not have,
504 for one the network did not deliver in time). When the source is worth
several requests in flight (``source.concurrency`` > 1) the blocks an
``Ahead`` hint names are fetched ahead, at most ``concurrency`` of them, in
the order the core will ask for them (see :class:`_Lookahead`). The cores'
errors become :class:`GatewayError`\\ s here: a name or step that is not
there 404, a malformed DAG 500.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator, NamedTuple, TypeVar

from blockstore.cid import cid_to_str
from blockstore.dagpb import PBNode
from blockstore.unixfs import UnixFSData
from blockstore.unixfs_walk import CorruptNode, ExportError, NotADirectory, PathNotFound, decode_node, resolve
from blockstore.walk_protocol import Ahead, Need, Walk

from .errors import GatewayError
from .source import BlockNotFound, BlockSource, BlockTimeout

__all__ = ["Resolved", "resolve_path", "unixfs_of", "fetch", "run", "stream"]

T = TypeVar("T")
R = TypeVar("R")


class Resolved(NamedTuple):
    """The outcome of walking a content path."""

    cid: bytes
    """the terminal CID"""
    block: bytes
    """the terminal block"""
    trail: list[tuple[bytes, bytes]]
    """every block read on the way, root to terminus, HAMT shards included: (cid, block)"""
    roots: list[bytes]
    """one CID per path segment (the root first), for ``X-Ipfs-Roots``"""


def _gateway_error(exc: ExportError) -> GatewayError:
    """The HTTP form of a walk error: 404 for a path that names nothing, 500 for a malformed DAG."""
    return GatewayError(404 if isinstance(exc, (PathNotFound, NotADirectory)) else 500, str(exc))


def unixfs_of(cid: bytes, block: bytes) -> tuple[PBNode, UnixFSData | None]:
    """Decode a dag-pb block and its UnixFS Data (None when the node has no Data); 500 if malformed."""
    try:
        return decode_node(cid, block)
    except CorruptNode as exc:
        raise _gateway_error(exc) from None


async def fetch(source: BlockSource, cid: bytes, what: str = "") -> bytes:
    """``source.get`` with not-found turned into 404 and a source timeout into 504, naming the block."""
    try:
        return await source.get(cid)
    except BlockTimeout:
        where = f" ({what})" if what else ""
        raise GatewayError(504, f"block {cid_to_str(cid)}{where} was not retrieved from the network in time") from None
    except BlockNotFound:
        where = f" ({what})" if what else ""
        raise GatewayError(404, f"block {cid_to_str(cid)}{where} not found") from None
    except TimeoutError:
        where = f" ({what})" if what else ""
        raise GatewayError(504, f"timed out retrieving block {cid_to_str(cid)}{where}") from None


def _retrieve(task: "asyncio.Future[bytes]") -> None:
    if not task.cancelled():
        task.exception()


class _Lookahead:
    """Prefetches for ``Ahead`` hints: a FIFO of the blocks a core announced, the first ``window`` in flight.

    A core announces a node's children before descending into the first one,
    and a deeper node's children are needed before the rest of its siblings,
    so each new hint goes to the front. A ``Need`` for the head of the queue
    takes its fetch; any other ``Need`` is fetched on its own. In flight at
    any time: the first ``window`` entries, plus those started before a newer
    hint pushed them back (at most ``window`` per level of the DAG).
    """

    def __init__(self, source: BlockSource, window: int) -> None:
        self.source = source
        self.window = window
        self.queue: deque[tuple[bytes, str, list["asyncio.Future[bytes] | None"]]] = deque()

    def hint(self, event: Ahead) -> None:
        self.queue.extendleft((cid, event.what, [None]) for cid in reversed(event.cids))
        self._fill()

    def _fill(self) -> None:
        for i, (cid, what, slot) in enumerate(self.queue):
            if i >= self.window:
                break
            if slot[0] is None:
                task = asyncio.ensure_future(fetch(self.source, cid, what))
                task.add_done_callback(_retrieve)
                slot[0] = task

    async def get(self, event: Need) -> bytes:
        if self.queue and self.queue[0][0] == event.cid:
            _cid, _what, slot = self.queue.popleft()
            self._fill()
            task = slot[0]
            if task is not None:
                return await task
        return await fetch(self.source, event.cid, event.what)

    def close(self) -> None:
        for _cid, _what, slot in self.queue:
            if slot[0] is not None:
                slot[0].cancel()
        self.queue.clear()


def _lookahead(source: BlockSource) -> _Lookahead | None:
    """A lookahead when the source is worth several requests in flight, else None (fetch one at a time)."""
    window = max(int(getattr(source, "concurrency", 1)), 1)
    return _Lookahead(source, window) if window > 1 else None


async def _answer(source: BlockSource, ahead: _Lookahead | None, event: Need | Ahead) -> bytes | None:
    """The block a ``Need`` asks for (None for an ``Ahead``, which only feeds the lookahead)."""
    if type(event) is Need:
        if ahead is None:
            return await fetch(source, event.cid, event.what)
        return await ahead.get(event)
    if ahead is not None:
        ahead.hint(event)  # type: ignore[arg-type]
    return None


async def stream(walk: Walk[T, object], source: BlockSource) -> AsyncIterator[T]:
    """Drive ``walk`` over ``source`` and yield its outputs; raise :class:`GatewayError` on any failure."""
    ahead = _lookahead(source)
    send: bytes | None = None
    try:
        while True:
            try:
                event = walk.send(send)
            except StopIteration:
                return
            except ExportError as exc:
                raise _gateway_error(exc) from None
            if type(event) is Need and ahead is None:
                send = await fetch(source, event.cid, event.what)  # type: ignore[union-attr]
            elif type(event) is Need or type(event) is Ahead:
                send = await _answer(source, ahead, event)  # type: ignore[arg-type]
            else:
                send = None
                yield event  # type: ignore[misc]
    finally:
        if ahead is not None:
            ahead.close()
        walk.close()


async def run(walk: Walk[object, R], source: BlockSource) -> R:
    """Drive ``walk`` over ``source`` to its end and return its result (outputs are dropped)."""
    ahead = _lookahead(source)
    send: bytes | None = None
    try:
        while True:
            try:
                event = walk.send(send)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except ExportError as exc:
                raise _gateway_error(exc) from None
            if type(event) is Need and ahead is None:
                send = await fetch(source, event.cid, event.what)  # type: ignore[union-attr]
            elif type(event) is Need or type(event) is Ahead:
                send = await _answer(source, ahead, event)  # type: ignore[arg-type]
            else:
                send = None
    finally:
        if ahead is not None:
            ahead.close()
        walk.close()


async def resolve_path(source: BlockSource, root: bytes, segments: list[str]) -> Resolved:
    """Walk ``segments`` from ``root`` (the shared :func:`~blockstore.unixfs_walk.resolve` core) and read the terminus.

    A path that ends on a value inside a DAG-CBOR block resolves to that block.
    Raises :class:`GatewayError` 404 for a missing block or name.
    """
    if not segments:  # the root itself: nothing to walk (the core would return at once)
        block = await fetch(source, root)
        return Resolved(root, block, [(root, block)], [root])
    res = await run(resolve(root, segments), source)
    if res.rest:
        return Resolved(res.cid, res.trail[-1][1], res.trail, res.roots)
    block = await fetch(source, res.cid, f"path segment {segments[-1]!r}" if segments else "")
    return Resolved(res.cid, block, [*res.trail, (res.cid, block)], res.roots)
