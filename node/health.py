"""Whether the node can serve now: what ``GET /health`` answers (REST API, pinning service, metrics).

Three checks, each kept current in the background so that answering costs nothing and never
waits on a pool or on LevelDB itself:

- worker pools (:mod:`node.workers`): a pool whose oldest queued job has waited more than
  :data:`STALL_AFTER` seconds for a thread is saturated (its kind of request is not served);
- the event loop: a ticker measures how late its wake-ups are; more than :data:`LAG_LIMIT`
  seconds late means every HTTP answer is that late;
- the datastore: every :data:`PROBE_INTERVAL` seconds a small write and read of LevelDB in
  the ``health`` pool; a failure (disk full, I/O error) or a probe still running after
  :data:`STALL_AFTER` seconds is reported.

:meth:`HealthMonitor.problems` lists what is wrong, one line each (empty: healthy).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

from blockstore.db import disk_full_message
from blockstore.kv import KVStore
from blockstore.layout import NS_META

from .workers import Pools

log = logging.getLogger(__name__)

#: seconds a queued job (or the datastore probe) may wait before the node counts as not serving
STALL_AFTER = 10.0
#: seconds the event loop may be late before the node counts as not serving
LAG_LIMIT = 5.0
#: seconds between datastore probes
PROBE_INTERVAL = 2.0
#: seconds between event-loop ticks, and how many recent ticks count
TICK = 0.5
TICKS = 8
#: the key the datastore probe writes and reads back
PROBE_KEY = NS_META + b"health-probe"


class HealthMonitor:
    """Background checks of the pools, the event loop and the datastore (see module docstring)."""

    def __init__(
        self,
        pools: Pools,
        db: KVStore,
        *,
        stall_after: float = STALL_AFTER,
        lag_limit: float = LAG_LIMIT,
        probe_interval: float = PROBE_INTERVAL,
    ) -> None:
        self.pools = pools
        self._db = db
        self.stall_after = stall_after
        self.lag_limit = lag_limit
        self.probe_interval = probe_interval
        self._lags: collections.deque[float] = collections.deque(maxlen=TICKS)
        self._probe_started: float | None = None
        self._probe_error: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reported: tuple[str, ...] = ()

    async def start(self) -> None:
        """Start the ticker and the datastore probe."""
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="health-ticker"),
            asyncio.create_task(self._probe_loop(), name="health-probe"),
        ]

    async def stop(self) -> None:
        """Stop the background checks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(TICK)
            self._lags.append(max(0.0, loop.time() - start - TICK))

    def _probe(self) -> None:
        value = str(time.time()).encode()
        self._db.put(PROBE_KEY, value)
        if self._db.get(PROBE_KEY) != value:
            raise OSError("the datastore did not read back what was just written")

    async def _probe_loop(self) -> None:
        while True:
            self._probe_started = time.monotonic()
            try:
                await self.pools.health.run(self._probe)
                self._probe_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of LevelDB is what this check is for
                self._probe_error = disk_full_message(exc) or f"{type(exc).__name__}: {exc}"
            finally:
                self._probe_started = None
            await asyncio.sleep(self.probe_interval)

    def loop_lag(self) -> float:
        """The largest recent lateness of the event loop, seconds."""
        return max(self._lags, default=0.0)

    def problems(self) -> list[str]:
        """What keeps the node from serving now, one line each (empty: healthy). Cheap: reads state only."""
        out: list[str] = []
        now = time.monotonic()
        for st in self.pools.stats():
            if st.oldest_wait > self.stall_after:
                out.append(
                    f"the {st.name} worker pool is saturated: a job has waited {st.oldest_wait:.0f} s "
                    f"for one of its {st.size} threads ({st.queued} queued)"
                )
        lag = self.loop_lag()
        if lag > self.lag_limit:
            out.append(f"the event loop is {lag:.1f} s late")
        if self._probe_error is not None:
            out.append(f"the datastore fails: {self._probe_error}")
        started = self._probe_started
        if started is not None and now - started > self.stall_after:
            out.append(f"the datastore has not answered for {now - started:.0f} s")
        reported = tuple(out)
        if reported != self._reported:  # log changes of health, not every check
            self._reported = reported
            if out:
                log.warning("unhealthy: %s", "; ".join(out))
            else:
                log.info("healthy again")
        return out
