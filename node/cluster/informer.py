"""Informers: this peer's metrics on the cluster's gossipsub topic, and the other peers' into the store.

Every ``ping_interval`` seconds the peer publishes a ``ping`` (TTL twice the
interval; its value is JSON with the peer name and the IPFS and cluster
addresses); every ``ttl / 2`` seconds it publishes ``freespace`` (weight =
free bytes; 0 makes it invalid, so the peer gets no new allocations, as
upstream), one ``tag:<name>`` per configured tag (partitionable),
``pinqueue`` (weight = minus the queue) and ``numpin``, each valid for
``ttl`` seconds. Received metrics are checked (the metric's peer must be the
gossip sender: no peer speaks for another), stamped and stored; a checker task
turns expired metrics into alerts. Metrics of untrusted peers are kept (shown,
and their pings make them members of the peer set), but the allocator ignores
them unless ``Cluster.AllocateToUntrustedPeers`` is on (``ClusterPeer``); trust
also governs the pinset and the peer RPC, and only trusted peers act alone
(expiry, re-allocation).

The value callables may do blocking I/O (LevelDB): they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from cluster.monitor import Alert, Metric, MetricError, MetricStore, with_received

from ..p2p.service import P2PService, Subscription
from ..tasks import cancel_tasks

log = logging.getLogger(__name__)


def topic_for(cluster_name: str) -> str:
    """The gossipsub topic of the metrics of cluster ``cluster_name``."""
    return f"pinion/{cluster_name}/metrics"


class Informer:
    """Publishes this peer's metrics and receives the others' (see module docstring)."""

    def __init__(
        self,
        p2p: P2PService,
        store: MetricStore,
        *,
        peer_id: str,
        cluster_name: str,
        ping_interval: float,
        ttl: float,
        tags: dict[str, str],
        ping_value: Callable[[], dict[str, Any]],
        freespace: Callable[[], int],
        pinqueue: Callable[[], int],
        numpin: Callable[[], int],
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        if ping_interval <= 0 or ttl <= 0:
            raise ValueError("ping interval and metric TTL must be positive")
        self._p2p = p2p
        self.store = store
        self.peer_id = peer_id
        self.topic = topic_for(cluster_name)
        self.ping_interval = ping_interval
        self.ttl = ttl
        self.tags = dict(tags)
        self._ping_value = ping_value
        self._freespace = freespace
        self._pinqueue = pinqueue
        self._numpin = numpin
        self._on_alert = on_alert
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._greetings: set[asyncio.Task[None]] = set()
        #: counters for tests and metrics
        self.counters = {"published": 0, "received": 0, "dropped": 0, "alerts": 0}

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Join the topic, publish at once, and start the publish, receive and check tasks."""
        self._sub = await self._p2p.subscribe(self.topic)
        await self.publish_now()
        self._tasks = [
            asyncio.create_task(self._receive_loop(self._sub), name="informer-receive"),
            asyncio.create_task(self._every(self.ping_interval, self._publish_ping), name="informer-ping"),
            asyncio.create_task(self._every(self.ttl / 2, self._publish_metrics), name="informer-metrics"),
            asyncio.create_task(self._every(self.ping_interval, self._check), name="informer-check"),
        ]

    async def stop(self) -> None:
        """Cancel the tasks and leave the topic."""
        await cancel_tasks([*self._tasks, *self._greetings], "informer", log)
        self._tasks.clear()
        if self._sub is not None:
            try:
                await self._p2p.unsubscribe(self._sub)
            except Exception as exc:  # the host may already be stopping
                log.debug("leaving %s: %s", self.topic, exc)
            self._sub = None

    async def publish_now(self) -> None:
        """Publish every metric now (at start, after joining, after many pins)."""
        await self._publish_ping()
        await self._publish_metrics()

    # ------------------------------------------------------------ publishing
    async def _every(self, interval: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()
            except Exception:
                log.exception("informer round failed; next in %s s", interval)

    def _metric(self, name: str, value: str, ttl: float, *, weight: int = 0, partitionable: bool = False, valid: bool = True) -> Metric:
        now = time.time_ns()
        return Metric(name, self.peer_id, value, now + int(ttl * 1e9), valid, weight, partitionable, now)

    async def _publish_ping(self) -> None:
        value = await asyncio.get_running_loop().run_in_executor(None, self._ping_value)
        await self._publish(self._metric("ping", json.dumps(value, sort_keys=True), 2 * self.ping_interval))

    def _measure(self) -> list[Metric]:
        """This peer's informer metrics now (blocking: worker thread)."""
        free = max(0, int(self._freespace()))
        queue = int(self._pinqueue())
        metrics = [
            self._metric("freespace", str(free), self.ttl, weight=free, valid=free > 0),
            self._metric("pinqueue", str(queue), self.ttl, weight=-queue),
            self._metric("numpin", str(int(self._numpin())), self.ttl),
        ]
        for name, value in sorted(self.tags.items()):
            metrics.append(self._metric(f"tag:{name}", value, self.ttl, partitionable=True))
        return metrics

    async def _publish_metrics(self) -> None:
        for metric in await asyncio.get_running_loop().run_in_executor(None, self._measure):
            await self._publish(metric)

    async def _publish(self, metric: Metric) -> None:
        self.store.add(metric)  # this peer is part of its own peer set
        if not metric.valid:
            return  # upstream never publishes invalid metrics; others see ours expire instead
        try:
            await self._p2p.publish(self.topic, metric.encode())
            self.counters["published"] += 1
        except Exception as exc:  # no peers yet, or the host is stopping: the next round retries
            log.debug("publishing metric %s failed: %s", metric.name, exc)

    # ------------------------------------------------------------ receiving
    async def _receive_loop(self, sub: Subscription) -> None:
        while True:
            sender, data = await sub.get()
            if sender == self.peer_id:
                continue
            self.receive(sender, data)

    def receive(self, sender: str, data: bytes) -> Metric | None:
        """Check and store one gossiped metric; the stored metric, or None when dropped."""
        try:
            metric = Metric.decode(data)
        except MetricError as exc:
            self.counters["dropped"] += 1
            log.info("metric from %s dropped: %s", sender, exc)
            return None
        if metric.peer != sender:
            self.counters["dropped"] += 1
            log.warning("metric %s claiming to be from %s dropped: sent by %s", metric.name, metric.peer, sender)
            return None
        now = time.time_ns()
        if metric.expired(now):
            self.counters["dropped"] += 1  # stale (a late or re-delivered message): it would only raise alerts
            return None
        stored = with_received(metric, now)
        new_peer = metric.name == "ping" and self.store.last_seen(sender) is None
        if not self.store.add(stored):
            return None
        if new_peer and self._tasks:
            # a peer we had not heard of: send it our metrics now rather than at the next round
            task = asyncio.get_running_loop().create_task(self.publish_now(), name="informer-greet")
            self._greetings.add(task)
            task.add_done_callback(self._greetings.discard)
        self.counters["received"] += 1
        return stored

    async def _check(self) -> None:
        for alert in self.store.check(time.time_ns()):
            self.counters["alerts"] += 1
            log.warning("peer %s: metric %s expired", alert.metric.peer, alert.metric.name)
            if self._on_alert is not None:
                self._on_alert(alert)
