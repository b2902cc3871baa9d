"""Releasing uploads: content uploaded here (``/add``) stays out of garbage collection until its cluster pin is settled.

An upload leaves a marker (``blockstore/uploads.py``); every
``Cluster.MonitorPingInterval`` seconds the markers whose pin is settled
(:func:`cluster.uploads.settled`: pinned here, or on the allocated peers, or
given up on) are dropped, a bounded number per round, resuming after the
last marker looked at.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from blockstore.uploads import Uploads
from cluster.uploads import settled as upload_settled

from .interfaces import PinsetState, TrackerView
from .membership import now_ns
from .status import ClusterStatus

log = logging.getLogger(__name__)

#: upload markers looked at per round of ``release_uploads``
UPLOADS_PER_ROUND = 256


class UploadReleaser:
    """Drops the markers of settled uploads (see module docstring)."""

    def __init__(
        self,
        uploads: Uploads,
        pinset: PinsetState,
        tracker: TrackerView,
        status: ClusterStatus,
        *,
        peer_id: str,
        interval: float,
    ) -> None:
        self._uploads = uploads
        self._pinset = pinset
        self._tracker = tracker
        self._status = status
        self._peer_id = peer_id
        self.interval = interval  #: ``Cluster.MonitorPingInterval``
        self._cursor: bytes | None = None  # the last upload marker release_uploads looked at

    async def run(self) -> None:
        """Every ``interval`` s: release the uploads whose cluster pin is settled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.release_uploads()
            except Exception:
                log.exception("releasing settled uploads failed")

    async def release_uploads(self, limit: int = UPLOADS_PER_ROUND) -> int:
        """Drop the upload markers of uploads whose cluster pin is settled; returns how many.
        Looks at ``limit`` markers at most, each round after the last one looked at (then from the start again)."""
        loop = asyncio.get_running_loop()
        uploads = self._uploads
        markers = await loop.run_in_executor(None, lambda: list(itertools.islice(uploads.scan(self._cursor), limit)))
        self._cursor = markers[-1][0] if len(markers) == limit else None
        done: list[bytes] = []
        now = now_ns()
        me = self._peer_id
        for cid, at in markers:
            pin = await self._pinset.get(cid)
            tracked = await loop.run_in_executor(None, self._tracker.tracks_pin, cid)
            statuses: dict[str, str] | None = None
            if pin is not None and pin.allocations and me not in pin.allocations:
                infos = await asyncio.gather(*(self._status.peer_status(p, cid, pin) for p in pin.allocations))
                statuses = {i.peer: i.status for i in infos}
            if upload_settled(pin, me=me, age=(now - at) / 1e9, tracked_here=tracked, statuses=statuses):
                done.append(cid)
        if done:
            await loop.run_in_executor(None, uploads.release, done)
        return len(done)
