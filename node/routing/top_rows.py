"""The content routing rows of ``pinion top``'s node panel, from the peer's Prometheus metrics (pure)."""

from __future__ import annotations

import time

__all__ = ["routing_rows"]


def routing_rows(prom: dict[str, float], now: float | None = None) -> list[tuple[str, str]]:
    """(label, value) rows: routing mode and DHT table, then the provide queue (when the DHT runs)."""
    if not prom.get("pinion_routing_active"):
        return [("routing", "off")] if "pinion_routing_active" in prom else []
    mode = "DHT server" if prom.get("pinion_routing_dht_server") else "DHT client / delegated"
    rows = [("routing", f"{mode}, {prom.get('pinion_routing_table_size', 0):,.0f} peers in table")]
    if "pinion_provide_queued" in prom:
        rate = prom.get("pinion_provide_rate", 0.0)
        rows.append(("provide", f"{prom['pinion_provide_queued']:,.0f} queued, {rate:,.1f}/s, {prom.get('pinion_provide_provided_total', 0):,.0f} done"))
        end = prom.get("pinion_provide_last_pass_end", 0)
        now = time.time() if now is None else now
        last = "never" if not end else f"{max(0.0, now - end) / 3600:.1f} h ago"
        rows.append(("last reprovide", last + (" (BEHIND)" if prom.get("pinion_provide_behind") else "")))
    return rows
