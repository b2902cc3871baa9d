"""Group commit for single requests: concurrent requests that arrive within a few milliseconds run as one batch.

:class:`Coalescer` turns many ``await submit(item)`` calls into calls of one
batch function. The first item of a batch opens a window of ``window``
seconds; the items submitted meanwhile join it, up to ``max_batch`` (a full
batch leaves at once). One batch runs at a time: the items that arrive while
it runs form the next one, which leaves as soon as the running batch is done.
So a lone request waits ``window`` at most, and under load the batches grow by
themselves to what arrives during one batch.

The batch function gets the items in submission order and returns one result
per item: a value, or an exception for that item alone (a bad item never fails
the others). If the batch function itself raises, every item of the batch gets
that exception. A request's result is delivered only when the batch function
has returned, so whatever the batch function makes durable is durable when the
request is answered.

A request cancelled while it waits for its batch to leave is dropped from it;
one cancelled while its batch runs does not stop the batch (the others need it)
and its result is discarded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: the batch function: the items in submission order -> per item its result or the exception for it
BatchFunction = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Coalescer(Generic[T, R]):
    """Batches concurrent :meth:`submit` calls into calls of ``run_batch`` (see module docstring)."""

    def __init__(self, run_batch: BatchFunction[T, R], *, window: float = 0.002, max_batch: int = 1000) -> None:
        if window < 0 or max_batch < 1:
            raise ValueError("the window must be >= 0 s and a batch must hold at least one item")
        self._run_batch = run_batch
        self.window = window
        self.max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        #: batches run and items they carried (for metrics and tests)
        self.batches = 0
        self.items = 0

    def pending(self) -> int:
        """Items waiting for a batch to leave (cancelled ones included until then)."""
        return len(self._waiting)

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next batch; its result once that batch has run (or its exception)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, fut))
        if self._running is None:
            if len(self._waiting) >= self.max_batch:
                self._leave()
            elif self._timer is None:
                self._timer = loop.call_later(self.window, self._leave)
        return await fut

    def _leave(self) -> None:
        """Start the next batch now (from the window's timer, a full batch, or the end of the previous batch)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running is not None:
            return
        batch: list[tuple[T, asyncio.Future[R]]] = []
        rest: list[tuple[T, asyncio.Future[R]]] = []
        for entry in self._waiting:
            if entry[1].done():  # cancelled while waiting: dropped
                continue
            (batch if len(batch) < self.max_batch else rest).append(entry)
        self._waiting = rest
        if not batch:
            return
        self._running = asyncio.get_running_loop().create_task(self._run(batch), name="coalesced-batch")

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            self.batches += 1
            self.items += len(batch)
            try:
                outcomes = list(await self._run_batch([item for item, _fut in batch]))
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"batch function returned {len(outcomes)} results for {len(batch)} items")
            except Exception as exc:  # the whole batch failed: every item gets the error
                outcomes = [exc] * len(batch)
            except BaseException:  # cancelled (shutdown): so are its requests
                for _item, fut in batch:
                    if not fut.done():
                        fut.cancel()
                raise
            for (_item, fut), outcome in zip(batch, outcomes):
                if fut.done():  # its request was cancelled meanwhile
                    continue
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
        finally:
            self._running = None
            if self._waiting:
                # these waited for the batch that just ran: they leave now
                asyncio.get_running_loop().call_soon(self._leave)

    async def close(self) -> None:
        """Wait for the running batch; cancel the requests still waiting (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        for _item, fut in waiting:
            if not fut.done():
                fut.cancel()
        if self._running is not None:
            try:
                await asyncio.shield(self._running)
            except Exception:
                pass
