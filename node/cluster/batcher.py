"""Group commit for worker-thread jobs: the items submitted while one job runs go in the next.

The pin tracker records local pins and finishes its records this way: many
small pins done at about the same time cost one worker-thread job and one
LevelDB write batch, not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs ``fn(items)`` in a worker thread for all the items submitted while the previous
    call ran (group commit): many pins done at about the same time cost one job and one
    LevelDB write batch. ``fn`` returns one result per item, in order."""

    def __init__(self, fn: Callable[[list[T]], list[R]], executor: Executor | None = None) -> None:
        self._fn = fn
        self._executor = executor
        self._items: list[tuple[T, asyncio.Future[R]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """``item``'s result, once the job that carries it ran (an error of the whole job is raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._items.append((item, future))
        if self._draining is None:
            self._draining = loop.create_task(self._drain(), name="tracker-batch")
        # shielded: a caller cancelled meanwhile does not undo what the job writes for it
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._items:
                batch, self._items = self._items, []
                try:
                    results = await loop.run_in_executor(self._executor, self._fn, [item for item, _f in batch])
                except Exception as exc:  # noqa: BLE001 - every caller of the batch gets it
                    for _item, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_item, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining = None
