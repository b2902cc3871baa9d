"""A bounded hand-off of items from the asyncio loop to one worker thread.

The HTTP handler (asyncio) reads the request body and puts parsed pieces
into an :class:`ItemPipe`; the importer runs in a worker thread and takes
them out with blocking calls. The pipe holds at most ``limit`` bytes, so a
fast client cannot make the daemon buffer an upload in memory: the handler
simply stops reading the socket until the worker catches up.

:class:`PartReader` turns the data of one multipart part into the blocking
``read(n)`` file interface the importer and the CAR reader expect.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

from .multipart import PartData, PartEnd, PartStart
from ..errors import NodeError

DEFAULT_LIMIT = 8 * 1024 * 1024


class UploadAborted(NodeError):
    """The upload stopped before its end (client gone, or a bad body)."""


class ReaderGone(NodeError):
    """The worker stopped taking items (it finished or failed)."""


_EOF = object()


class ItemPipe:
    """Items (with a byte weight) from one asyncio producer to one thread consumer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = DEFAULT_LIMIT) -> None:
        self._loop = loop
        self._limit = limit
        self._cond = threading.Condition()
        self._items: deque[tuple[Any, int]] = deque()
        self._size = 0
        self._closed = False
        self._error: BaseException | None = None
        self._reader_gone = False
        self._writer_waiting = False
        self._space = asyncio.Event()

    # ------------------------------------------------------------ asyncio side
    async def put(self, item: Any, weight: int) -> None:
        """Queue an item, waiting while the pipe holds ``limit`` bytes or more."""
        while True:
            with self._cond:
                if self._reader_gone:
                    raise ReaderGone("the worker stopped reading")
                if self._size < self._limit:
                    self._items.append((item, weight))
                    self._size += weight
                    self._cond.notify()
                    return
                self._space.clear()
                self._writer_waiting = True
            await self._space.wait()

    def close(self) -> None:
        """No more items: the consumer sees the end after the queued ones."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def abort(self, error: BaseException) -> None:
        """Stop now: the consumer's next call raises ``error``."""
        with self._cond:
            self._error = error
            self._closed = True
            self._cond.notify()

    # ------------------------------------------------------------ thread side
    def get(self) -> Any:
        """The next item (blocking); ``None`` at the end; raises if aborted."""
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._items:
                    item, weight = self._items.popleft()
                    self._size -= weight
                    if self._writer_waiting and self._size < self._limit:
                        self._writer_waiting = False
                        self._loop.call_soon_threadsafe(self._space.set)
                    return item
                if self._closed:
                    return None
                self._cond.wait()

    def reader_done(self) -> None:
        """The consumer will take nothing more; a waiting producer is released."""
        with self._cond:
            self._reader_gone = True
            self._items.clear()
            self._size = 0
            if self._writer_waiting:
                self._writer_waiting = False
                self._loop.call_soon_threadsafe(self._space.set)


class PartReader:
    """A blocking binary stream over the data of the current multipart part.

    ``read(n)`` returns exactly ``n`` bytes unless the part ends first, like a
    buffered file. The part ends at :class:`PartEnd`; reading past it gives
    ``b""``.
    """

    def __init__(self, pipe: ItemPipe) -> None:
        self._pipe = pipe
        self._buf = b""  # the current data item; bytes before _pos are consumed
        self._pos = 0
        self._ended = False

    @property
    def ended(self) -> bool:
        """True once the part's end was reached."""
        return self._ended

    def readable(self) -> bool:
        """Always True (file protocol)."""
        return True

    def next_data(self) -> bytes | None:
        """The next piece of the part as it arrived (None at the part's end); for push-style consumers."""
        if self._pos < len(self._buf):
            out = self._buf[self._pos :] if self._pos else self._buf
            self._buf, self._pos = b"", 0
            return out
        while not self._ended:
            data = self._next()
            if data:
                return data
        return None

    def _next(self) -> bytes | None:
        item = self._pipe.get()
        if item is None:
            raise UploadAborted("multipart body ended inside a part")
        if isinstance(item, PartData):
            return item.data
        if isinstance(item, PartEnd):
            self._ended = True
            return None
        if isinstance(item, PartStart):
            raise UploadAborted("multipart part started before the previous one ended")
        raise UploadAborted(f"unexpected upload item {item!r}")

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all the rest with ``n < 0``); ``b""`` at the part's end."""
        if n is None or n < 0:
            parts = []
            while (data := self.next_data()) is not None:
                parts.append(data)
            return b"".join(parts)
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [memoryview(self._buf)[self._pos :]] if avail else []
        have = avail
        self._buf, self._pos = b"", 0
        while have < n and not self._ended:
            data = self._next()
            if data:
                take = n - have
                if len(data) > take:
                    parts.append(memoryview(data)[:take])
                    self._buf, self._pos = data, take
                    have = n
                else:
                    parts.append(data)
                    have += len(data)
        return b"".join(parts)

    def readinto(self, b: Any) -> int:
        """Fill ``b`` as far as the part allows; return the byte count."""
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Skip the rest of the part."""
        self._buf, self._pos = b"", 0
        while not self._ended:
            self._next()
