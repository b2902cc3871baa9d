"""``pinion top``'s routing rows (node/routing/top_rows.py)."""

from __future__ import annotations

from node.routing.top_rows import routing_rows


def test_rows_follow_the_metrics() -> None:
    assert routing_rows({}) == []
    assert routing_rows({"pinion_routing_active": 0}) == [("routing", "off")]
    prom = {
        "pinion_routing_active": 1,
        "pinion_routing_dht_server": 1,
        "pinion_routing_table_size": 12,
        "pinion_provide_queued": 1500,
        "pinion_provide_rate": 850.25,
        "pinion_provide_provided_total": 40000,
        "pinion_provide_last_pass_end": 1000.0,
        "pinion_provide_behind": 1,
    }
    rows = dict(routing_rows(prom, now=1000.0 + 7200))
    assert rows["routing"] == "DHT server, 12 peers in table"
    assert rows["provide"] == "1,500 queued, 850.2/s, 40,000 done"
    assert rows["last reprovide"] == "2.0 h ago (BEHIND)"
    assert dict(routing_rows({**prom, "pinion_provide_last_pass_end": 0, "pinion_provide_behind": 0}))["last reprovide"] == "never"
