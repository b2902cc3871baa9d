"""Prometheus collector of content routing (``pinion_routing_*``, ``pinion_provide_*``), read at scrape time.

Registered by :class:`node.metrics.NodeMetrics`; the daemon sets ``NodeMetrics.routing`` to its
:class:`node.routing.service.RoutingService`. Documented in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["RoutingCollector"]

_COUNTERS = {
    "provider_searches": "Provider searches of fetches that connected peers did not serve",
    "providers_found": "Providers found by those searches (DHT and delegated routers)",
    "searches_without_provider": "Provider searches that found nobody",
    "provider_dials": "Providers dialled for fetches",
    "provider_dial_failures": "Providers that could not be dialled",
    "dht_requests_sent": "DHT requests sent",
    "dht_request_failures": "DHT requests that failed",
    "dht_lookups": "DHT lookups run",
    "connections_trimmed": "Swarm connections closed by the connection manager",
}


class RoutingCollector(Collector):
    """Reads ``metrics.routing`` (a RoutingService, or None offline) at each scrape."""

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        routing = self._metrics.routing
        active = routing is not None and routing.active
        yield GaugeMetricFamily("pinion_routing_active", "1 when content routing runs (Routing.Type other than none)", value=int(active))
        if not active:
            return
        st = routing.stats()
        yield GaugeMetricFamily("pinion_routing_dht_server", "1 when the DHT runs in server mode", value=int(st.get("dht_mode") == "server"))
        yield GaugeMetricFamily("pinion_routing_table_size", "Peers in the DHT routing table", value=st.get("routing_table_size", 0))
        yield GaugeMetricFamily("pinion_routing_provider_records", "Provider records this node stores for others", value=st.get("provider_records", 0))
        for key, doc in _COUNTERS.items():
            yield CounterMetricFamily(f"pinion_routing_{key}", doc, value=st.get(key, 0))
        ps = routing.provide_stats()
        if ps is None:
            return
        yield GaugeMetricFamily("pinion_provide_queued", "Keys waiting to be announced (new and retries)", value=ps.queued)
        yield GaugeMetricFamily("pinion_provide_in_flight", "Keys being announced now", value=ps.in_flight)
        yield GaugeMetricFamily("pinion_provide_rate", "Keys announced per second (last minute)", value=ps.provided_per_second)
        yield CounterMetricFamily("pinion_provide_provided", "Keys announced", value=ps.provided_total)
        yield CounterMetricFamily("pinion_provide_errors", "Announcement batches that failed", value=ps.errors_total)
        yield CounterMetricFamily("pinion_provide_excluded", "Keys never announced (cluster-internal blocks)", value=ps.excluded_total)
        yield GaugeMetricFamily("pinion_provide_last_pass_end", "Unix time the last full reprovide pass ended (0: none yet)", value=ps.last_pass_end or 0)
        yield GaugeMetricFamily("pinion_provide_behind", "1 when the running pass takes longer than Reprovider.Interval", value=int(ps.behind))
