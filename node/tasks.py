"""Stopping a service's asyncio tasks: cancel them all, then wait for each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable


async def cancel_tasks(tasks: Iterable[asyncio.Task[object]], what: str, log: logging.Logger) -> None:
    """Cancel ``tasks`` and wait until each has ended; a task that failed (other than by the
    cancellation) is logged as ``"<what> task <name> failed"``, never raised."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s task %s failed", what, task.get_name())
