"""The sans-I/O protocol of Pinion's block walks, and its synchronous driver.

A walk core is a generator (the h11 style: the core decides, a driver does
the I/O). It yields, and is resumed with:

- :class:`Need` ``(cid, what)``: "I need this block" -> resumed with the
  block's bytes. A driver that cannot get the block raises instead (the core
  never sees a missing block).
- :class:`Ahead` ``(cids, what)``: "I will need these blocks next, in this
  order" -> resumed with ``None``. A hint only: a driver over the network may
  start fetching them (a bounded window); a local driver ignores it.
- anything else is an output of the walk (file bytes, directory entries,
  :class:`Visited` blocks...) -> resumed with ``None``.

Its ``return`` value is the walk's result. Errors are raised by the core.
Cores never do I/O, so the same core runs over the local block store
(:func:`stream_sync` / :func:`run_sync` here, as the exporter does) and over
a source that may fetch over the network (the gateway's async driver in
``node/gateway/walk.py``).

Invariant of every core: each ``Need`` it yields names one block it reads
next, and each ``Ahead`` names blocks in the exact order of the ``Need``\\ s
that follow for them (so a driver may keep a FIFO of prefetches).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import NamedTuple, TypeVar, Union

from .dagwalk import BlockNotFound, inline_data

__all__ = ["Need", "Ahead", "Visited", "Walk", "GetBlock", "collect", "stream_sync", "run_sync"]

T = TypeVar("T")
R = TypeVar("R")

GetBlock = Callable[[bytes], "bytes | None"]


class Need(NamedTuple):
    """A request for one block; ``what`` says what it is for (for error messages: "HAMT shard")."""

    cid: bytes
    what: str = ""


class Ahead(NamedTuple):
    """A hint: the blocks the walk will need next, in the order it will need them."""

    cids: tuple[bytes, ...]
    what: str = ""


class Visited(NamedTuple):
    """An output: a block the walk read (for callers that forward blocks, e.g. CAR responses)."""

    cid: bytes
    block: bytes


#: a walk core: yields Need / Ahead / outputs of type T, is sent block bytes or None, returns R
Walk = Generator[Union[Need, Ahead, T], Union[bytes, None], R]


def collect(walk: Walk[T, R], into: list[T]) -> Walk[T, R]:
    """Run ``walk`` inside another core: pass its requests up, append its outputs to ``into``; return its result."""
    send: bytes | None = None
    while True:
        try:
            event = walk.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if isinstance(event, (Need, Ahead)):
            send = yield event
        else:
            into.append(event)
            send = None


def _block(get_block: GetBlock, cid: bytes) -> bytes:
    """The block's bytes (identity CIDs from the CID itself); :class:`BlockNotFound` if absent."""
    data = inline_data(cid)
    if data is not None:
        return data
    data = get_block(cid)
    if data is None:
        raise BlockNotFound(cid)
    return data


def stream_sync(walk: Walk[T, R], get_block: GetBlock) -> Generator[T, None, R]:
    """Drive ``walk`` over ``get_block(cid) -> bytes | None``: yield its outputs, return its result.

    Reads one block per ``Need``, lazily, nothing ahead. A block ``get_block``
    answers None for raises :class:`BlockNotFound`. Closing this generator
    closes the walk.
    """
    send: bytes | None = None
    try:
        while True:
            try:
                event = walk.send(send)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            if type(event) is Need:
                send = _block(get_block, event.cid)
            elif type(event) is Ahead:
                send = None
            else:
                send = None
                yield event  # type: ignore[misc]
    finally:
        walk.close()


def run_sync(walk: Walk[T, R], get_block: GetBlock) -> R:
    """Drive ``walk`` to its end over ``get_block`` and return its result (its outputs are dropped)."""
    stream = stream_sync(walk, get_block)
    while True:
        try:
            next(stream)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

