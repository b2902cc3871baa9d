"""Keeping the pinset placed: expired pins are removed, a gone peer's pins are re-allocated.

Every ``Cluster.StateSyncInterval`` seconds pins whose ``expire_at`` passed are
removed; when a peer's ping expires (an alert) and it is still gone after
``Cluster.RepinningGrace`` seconds, its pins are re-allocated (unless
``Cluster.DisableRepinning``). In both cases exactly one trusted peer acts on
each pin (:mod:`cluster.duties`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from blockstore.cid import cid_to_str
from cluster.allocator import AllocationError
from cluster.duties import expires_here, repins_here, without_peer
from cluster.monitor import Alert
from cluster.pin import PinError

from .interfaces import PinsetState
from .membership import Membership, now_ns
from .pinning import Pinning
from ..tasks import cancel_tasks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UpkeepConfig:
    """The ``Cluster`` settings upkeep acts on, read once at construction."""

    #: ``Cluster.StateSyncInterval``: seconds between expiry rounds
    state_sync_interval: float
    #: ``Cluster.DisableRepinning``: never re-allocate a gone peer's pins
    disable_repinning: bool
    #: ``Cluster.RepinningGrace``: seconds a peer may be gone before its pins move
    repinning_grace: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UpkeepConfig:
        """From a loaded config (defaults filled by :mod:`node.config`)."""
        cluster = config["Cluster"]
        return cls(
            state_sync_interval=float(cluster["StateSyncInterval"]),
            disable_repinning=bool(cluster["DisableRepinning"]),
            repinning_grace=float(cluster["RepinningGrace"]),
        )


class Upkeep:
    """The expiry loop and re-allocation after a peer left (see module docstring)."""

    def __init__(self, pinset: PinsetState, members: Membership, pinning: Pinning, config: UpkeepConfig) -> None:
        self._pinset = pinset
        self._members = members
        self._pinning = pinning
        self._config = config
        self._gone_since: dict[str, int] = {}  # peer -> ns of its ping alert
        self._tasks: list[asyncio.Task[None]] = []  # re-allocations waiting (awaited at stop)
        #: counters for metrics
        self.counters = {"expired": 0, "repinned": 0}

    async def run(self) -> None:
        """Every ``Cluster.StateSyncInterval`` s: remove expired pins (only the XOR-closest peer acts)."""
        interval = self._config.state_sync_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_pins()
            except Exception:
                log.exception("removing expired pins failed")

    async def stop(self) -> None:
        """Cancel the re-allocations waiting for their grace period."""
        await cancel_tasks(self._tasks, "cluster", log)
        self._tasks.clear()

    async def expire_pins(self) -> int:
        """Remove pins whose ``expire_at`` passed, where this peer is the one to act; returns how many."""
        now = now_ns()
        me = self._members.peer_id
        peers = [p for p in self._members.peerset() if self._members.is_trusted(p)]
        expired = [p.cid async for p in self._pinset.iter_pins() if expires_here(p, now, peers, me)]
        removed = 0
        for cid in expired:
            if await self._pinset.remove(cid):
                removed += 1
        self.counters["expired"] += removed
        return removed

    def on_alert(self, alert: Alert) -> None:
        """A metric expired: a ping alert may start re-allocation of the gone peer's pins."""
        metric = alert.metric
        if metric.name != "ping" or metric.peer == self._members.peer_id:
            return
        self._gone_since.setdefault(metric.peer, alert.triggered_at)
        if self._config.disable_repinning:
            return
        task = asyncio.get_running_loop().create_task(self._repin_after_grace(metric.peer), name="cluster-repin")
        self._tasks.append(task)

    async def _repin_after_grace(self, peer: str) -> None:
        await asyncio.sleep(self._config.repinning_grace)
        if peer in self._members.peerset():
            self._gone_since.pop(peer, None)
            return
        await self.repin_from(peer)

    async def repin_from(self, gone: str) -> int:
        """Re-allocate the pins allocated to ``gone`` (only those for which this peer is XOR-closest)."""
        me = self._members.peer_id
        peers = [p for p in self._members.peerset() if p != gone and self._members.is_trusted(p)]
        moved = 0
        async for pin in self._pinset.iter_pins():
            if not repins_here(pin, gone, peers, me):
                continue
            try:
                await self._pinning.write(without_peer(pin, gone), size=None, defaults=False, blacklist=(gone,))
                moved += 1
            except (AllocationError, ValueError, PinError) as exc:
                log.warning("re-allocating %s away from %s failed: %s", cid_to_str(pin.cid), gone, exc)
        self.counters["repinned"] += moved
        return moved
