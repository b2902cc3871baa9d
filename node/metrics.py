"""Prometheus metrics of the node, served at ``/metrics`` on the metrics address.

One :class:`NodeMetrics` per daemon, with its own registry (so tests can run
several). Names (all prefixed ``pinion_``):

- ``pinion_blockstore_blocks`` / ``pinion_blockstore_bytes`` /
  ``pinion_blockstore_stored_bytes`` (gauges, read from ``store.stats()`` at
  scrape time)
- ``pinion_blocks_put_total``, ``pinion_blocks_get_total``,
  ``pinion_block_errors_total{op}`` (counters)
- ``pinion_gateway_requests_total{status}``, ``pinion_gateway_bytes_out_total``
- ``pinion_rpc_requests_total{endpoint,status}``
- ``pinion_pinset_{pins,heads,height,queued,pending,syncing,sync_lag_seconds}`` (gauges) and
  ``pinion_pinset_{deltas,batches,broadcasts,messages_received,sync_failures,snapshots,
  snapshots_loaded,deltas_compacted,branches_listed}_total``
  (counters) of the CRDT pinset, read at scrape time
- ``pinion_upload_bytes_total{endpoint}`` (request bodies received by uploads)
- ``pinion_http_request_duration_seconds{server,route}`` (histogram)
- ``pinion_workers_{busy,queued,oldest_wait_seconds}{pool}``, ``pinion_http_connections{server}``,
  ``pinion_http_connections_refused_total{server,reason}``, ``pinion_event_loop_lag_seconds``:
  the daemon's load (worker pools, connection caps, event loop)
- ``ipfscluster_*``: the cluster peer's pins by status, queue, peers and
  pin request counters (names as IPFS Cluster's; see :class:`_ClusterCollector`)
- ``process_*`` and ``python_*`` (the standard process and platform collectors)

The gateway reports through :meth:`NodeMetrics.observe_request` (the hook its
app receives as ``metrics=``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .cluster.interfaces import StatsSource

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _BlockstoreCollector(Collector):
    """Gauges of the block store's running totals, read at scrape time."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        st = self._store.stats()
        yield GaugeMetricFamily("pinion_blockstore_blocks", "Blocks in the block store", value=st["blocks"])
        yield GaugeMetricFamily("pinion_blockstore_bytes", "Logical bytes of the stored blocks", value=st["bytes"])
        yield GaugeMetricFamily(
            "pinion_blockstore_stored_bytes", "Bytes the blocks take at rest (after compression)", value=st["stored_bytes"]
        )


_BITSWAP_COUNTERS = {
    "blocks_sent": "Blocks bitswap sent to peers",
    "bytes_sent": "Block bytes bitswap sent to peers",
    "blocks_received": "Wanted blocks bitswap received and stored",
    "bytes_received": "Block bytes bitswap received and stored",
}
_BITSWAP_GAUGES = {
    "wantlist_size": "CIDs this node currently wants",
    "peers": "Peers bitswap talks to",
}


class _BitswapCollector(Collector):
    """Bitswap counters and gauges, read at scrape time from the service's stats (none when offline)."""

    def __init__(self, metrics: "NodeMetrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        st = self._metrics.sources.bitswap_stats() if self._metrics.sources is not None else None
        if st is None:
            return
        for key, doc in _BITSWAP_COUNTERS.items():
            if key in st:
                yield CounterMetricFamily(f"pinion_bitswap_{key}", doc, value=st[key])
        for key, doc in _BITSWAP_GAUGES.items():
            if key in st:
                yield GaugeMetricFamily(f"pinion_bitswap_{key}", doc, value=st[key])


_PINSET_GAUGES = {
    "pins": "Pins in the cluster pinset (CRDT)",
    "heads": "Heads of the pinset's Merkle-CRDT DAG",
    "height": "Height of the pinset's Merkle-CRDT DAG",
    "queued": "Pinset operations queued for the next batch",
    "pending": "Received pinset heads whose deltas are still missing",
    "syncing": "Received pinset heads being fetched and applied now (sync lag)",
    "sync_lag_seconds": "Seconds since the oldest pinset head being synced was announced (0: in sync)",
}
_PINSET_COUNTERS = {
    "deltas": "Pinset deltas merged (local and received)",
    "batches": "Pinset batches committed locally",
    "broadcasts": "Pinset head broadcasts published",
    "messages_received": "Pinset head messages received from peers",
    "sync_failures": "Received pinset heads that could not be synced",
    "snapshots": "Pinset snapshots made by this peer",
    "snapshots_loaded": "Pinset snapshots loaded from peers",
    "deltas_compacted": "Pinset blocks dropped by compaction",
    "branches_listed": "Pinset branches listed by a peer for a one-go catch-up",
}


class _PinsetCollector(Collector):
    """The CRDT pinset's figures, read at scrape time (none when the cluster host does not run)."""

    def __init__(self, metrics: "NodeMetrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        st = self._metrics.sources.pinset_stats() if self._metrics.sources is not None else None
        if st is None:
            return
        for key, doc in _PINSET_GAUGES.items():
            if key in st:
                yield GaugeMetricFamily(f"pinion_pinset_{key}", doc, value=st[key])
        for key, doc in _PINSET_COUNTERS.items():
            if key in st:
                yield CounterMetricFamily(f"pinion_pinset_{key}", doc, value=st[key])


class _ClusterCollector(Collector):
    """IPFS Cluster's ``ipfscluster_*`` figures of the cluster peer, read at scrape time.

    Names follow IPFS Cluster 1.1 (``ipfscluster_pins``, ``ipfscluster_pins_pin_queued``,
    ``..._pinning``, ``..._pin_error``, ``..._ipfs_pins``, ``..._pin_add``,
    ``..._pin_add_errors``, ``ipfscluster_informer_disk``) plus ours:
    ``ipfscluster_pins_by_status{status}``, ``ipfscluster_pins_queue``, ``ipfscluster_peers``,
    ``ipfscluster_pins_unpin``, ``ipfscluster_pins_expired``, ``ipfscluster_pins_repinned``,
    ``pinion_uploads_kept``.
    """

    def __init__(self, metrics: "NodeMetrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        sources = self._metrics.sources
        st = sources.cluster_stats() if sources is not None else None
        if st is None or sources is None:
            return
        pinset = sources.pinset_stats() or {}
        by_status: dict[str, int] = st["status"]
        yield GaugeMetricFamily("ipfscluster_pins", "Pins in the cluster pinset", value=pinset.get("pins", 0))
        for key in ("pin_queued", "pinning", "pin_error"):
            yield GaugeMetricFamily(f"ipfscluster_pins_{key}", f"Pins of this peer in status {key}", value=by_status.get(key, 0))
        yield GaugeMetricFamily("ipfscluster_pins_ipfs_pins", "Pins this peer holds (pinned)", value=by_status.get("pinned", 0))
        family = GaugeMetricFamily("ipfscluster_pins_by_status", "Pins tracked by this peer, by status", labels=["status"])
        for status, n in sorted(by_status.items()):
            family.add_metric([status], n)
        yield family
        yield GaugeMetricFamily("ipfscluster_pins_queue", "Pin and unpin operations queued on this peer", value=st["queue"])
        yield GaugeMetricFamily("ipfscluster_peers", "Peers in the peer set (fresh ping), this one included", value=st["peers"])
        counters = st["counters"]
        yield CounterMetricFamily("ipfscluster_pins_pin_add", "Pin requests accepted by this peer", value=counters["pin_add"])
        yield CounterMetricFamily(
            "ipfscluster_pins_pin_add_errors", "Pin requests this peer refused or failed", value=counters["pin_add_errors"]
        )
        yield CounterMetricFamily("ipfscluster_pins_unpin", "Unpin requests accepted by this peer", value=counters["unpin"])
        yield CounterMetricFamily("ipfscluster_pins_expired", "Expired pins this peer removed", value=counters["expired"])
        yield CounterMetricFamily(
            "ipfscluster_pins_repinned", "Pins this peer re-allocated away from gone peers", value=counters["repinned"]
        )
        if st["freespace"] is not None:
            yield GaugeMetricFamily("ipfscluster_informer_disk", "Free space this peer offers, bytes", value=st["freespace"])
        yield GaugeMetricFamily(
            "pinion_uploads_kept", "Uploads kept from garbage collection until their cluster pin is settled", value=st.get("uploads", 0)
        )


class _LoadCollector(Collector):
    """Worker pools, HTTP connections and event-loop lag (node/workers.py, node/http_limits.py, node/health.py)."""

    def __init__(self, metrics: "NodeMetrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        st = self._metrics.sources.load_stats() if self._metrics.sources is not None else None
        if st is None:
            return
        busy = GaugeMetricFamily("pinion_workers_busy", "Worker threads running a job, by pool", labels=["pool"])
        queued = GaugeMetricFamily("pinion_workers_queued", "Jobs waiting for a worker thread, by pool", labels=["pool"])
        wait = GaugeMetricFamily(
            "pinion_workers_oldest_wait_seconds", "Seconds the oldest queued job of a pool has waited", labels=["pool"]
        )
        for pool in st["pools"]:
            busy.add_metric([pool.name], pool.busy)
            queued.add_metric([pool.name], pool.queued)
            wait.add_metric([pool.name], pool.oldest_wait)
        yield busy
        yield queued
        yield wait
        conns = GaugeMetricFamily("pinion_http_connections", "Open connections, by HTTP server", labels=["server"])
        refused = CounterMetricFamily(
            "pinion_http_connections_refused",
            "Connections answered 503 and closed at once (server: its cap; client: the per-client cap)",
            labels=["server", "reason"],
        )
        for server, (open_now, by_reason) in st["connections"].items():
            conns.add_metric([server], open_now)
            for reason, n in by_reason.items():
                refused.add_metric([server, reason], n)
        yield conns
        yield refused
        yield GaugeMetricFamily("pinion_event_loop_lag_seconds", "Largest recent lateness of the event loop", value=st["loop_lag"])


class NodeMetrics:
    """Every metric of one node, in its own registry."""

    def __init__(self, store: Any | None = None, sources: StatsSource | None = None) -> None:
        #: what the scrape-time collectors read (the daemon: bitswap, pinset, cluster peer, load)
        self.sources = sources
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        if store is not None:
            reg.register(_BlockstoreCollector(store))
        reg.register(_BitswapCollector(self))
        reg.register(_PinsetCollector(self))
        reg.register(_ClusterCollector(self))
        #: set by the daemon when online: its node.routing.service.RoutingService
        self.routing: Any | None = None
        from .routing.metrics import RoutingCollector

        reg.register(RoutingCollector(self))
        reg.register(_LoadCollector(self))
        self.blocks_put = Counter("pinion_blocks_put", "Blocks written to the block store", registry=reg)
        self.blocks_get = Counter("pinion_blocks_get", "Blocks read from the block store", registry=reg)
        self.block_errors = Counter(
            "pinion_block_errors", "Block operations that failed (missing, invalid)", ["op"], registry=reg
        )
        self.gateway_requests = Counter("pinion_gateway_requests", "Gateway requests by status", ["status"], registry=reg)
        self.gateway_bytes_out = Counter("pinion_gateway_bytes_out", "Body bytes the gateway sent", registry=reg)
        #: (status, route) -> (requests counter, latency histogram) children of the gateway's requests
        self._gateway_children: dict[tuple[int, str], tuple[Any, Any]] = {}
        self.rpc_requests = Counter(
            "pinion_rpc_requests", "kubo RPC requests by endpoint and status", ["endpoint", "status"], registry=reg
        )
        self.upload_bytes = Counter("pinion_upload_bytes", "Upload body bytes received", ["endpoint"], registry=reg)
        self.latency = Histogram(
            "pinion_http_request_duration_seconds",
            "HTTP request latency (to the end of the response)",
            ["server", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )

    # ------------------------------------------------------------ hooks
    def observe_request(self, status: int, bytes_out: int, seconds: float, route: str = "gateway") -> None:
        """Record one gateway request (the gateway app calls this, once per request: the labelled
        children are looked up once per status and route, not per request)."""
        children = self._gateway_children.get((status, route))
        if children is None:
            children = (self.gateway_requests.labels(str(status)), self.latency.labels("gateway", route))
            self._gateway_children[(status, route)] = children
        children[0].inc()
        if bytes_out:
            self.gateway_bytes_out.inc(bytes_out)
        children[1].observe(seconds)

    def observe_rpc(self, endpoint: str, status: int, seconds: float) -> None:
        """Record one kubo RPC request."""
        self.rpc_requests.labels(endpoint, str(status)).inc()
        self.latency.labels("rpc", endpoint).observe(seconds)

    def add_upload_bytes(self, endpoint: str, n: int) -> None:
        """Count request body bytes an upload endpoint received."""
        self.upload_bytes.labels(endpoint).inc(n)

    def block_got(self, ok: bool) -> None:
        """Count one block read (``ok=False``: it was missing)."""
        if ok:
            self.blocks_get.inc()
        else:
            self.block_errors.labels("get").inc()

    def blocks_written(self, n: int) -> None:
        """Count blocks written to the store."""
        if n:
            self.blocks_put.inc(n)

    def render(self) -> bytes:
        """The exposition text of every metric."""
        return generate_latest(self.registry)


def make_metrics_app(
    metrics: NodeMetrics, *, executor: Executor | None = None, health: Callable[[], list[str]] | None = None
) -> web.Application:
    """An aiohttp app serving ``GET /metrics`` (rendered in ``executor``: the daemon's metrics
    pool) and ``GET /health`` (204, or 503 with what keeps the node from serving)."""

    async def handle(_request: web.Request) -> web.Response:
        # collectors read LevelDB and the pinset (which may hold its lock during a sync): not on the loop
        body = await asyncio.get_running_loop().run_in_executor(executor, metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def handle_health(_request: web.Request) -> web.Response:
        problems = health() if health is not None else []
        if not problems:
            return web.Response(status=204)
        return web.Response(status=503, text="; ".join(problems) + "\n")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    app.router.add_get("/health", handle_health)
    return app
