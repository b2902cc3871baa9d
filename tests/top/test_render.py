"""The pure core of ``pinion top``: Prometheus parsing and the dashboard's text for given samples."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from node.cli.top import Sample, ago, human_bytes, parse_prometheus, render

A = "12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaPeerA"
B = "12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbPeerB"


def _text(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def _metric(name: str, peer: str, value: str, received: int = 997 * 10**9) -> dict[str, Any]:
    return {"name": name, "peer": peer, "value": value, "received_at": received, "valid": True}


def _sample(at: float, pinned: int, received_bytes: float, **extra: Any) -> Sample:
    return Sample(
        at=at,
        ident={"id": A, "peername": "alpha", "version": "1.1.6"},
        peers=[{"id": A, "peername": "alpha"}, {"id": B, "peername": "beta", "error": ""}],
        metrics={
            "freespace": [_metric("freespace", A, str(3 * 2**30)), _metric("freespace", B, str(2**20))],
            "pinqueue": [_metric("pinqueue", A, "7"), _metric("pinqueue", B, "0")],
            "numpin": [_metric("numpin", A, "42"), _metric("numpin", B, "40")],
            "tag:group": [_metric("tag:group", A, "eu"), _metric("tag:group", B, "us")],
            "ping": [_metric("ping", B, "{}")],
        },
        counts={"total": {"pinned": pinned, "pin_error": 2, "pin_queued": 5}, "peers": {}, "errors": {}},
        alerts=[{"name": "ping", "peer": B, "triggered_at": "2026-11-24T10:00:00Z"}],
        errors=[
            {
                "cid": "bafyerr",
                "peer_map": {B: {"peername": "beta", "status": "pin_error", "error": "context deadline", "ts": ""}},
            }
        ],
        prom={
            "pinion_blockstore_blocks": 1234,
            "pinion_blockstore_bytes": 5 * 2**20,
            "pinion_bitswap_bytes_received_total": received_bytes,
            "pinion_bitswap_bytes_sent_total": 0,
            "pinion_pinset_height": 99,
            "pinion_pinset_heads": 1,
            "pinion_pinset_sync_lag_seconds": 0,
            "ipfscluster_pins_queue": 7,
            "ipfscluster_pins": 50,
        },
        **extra,
    )


def test_dashboard_shows_peers_statuses_rates_and_events() -> None:
    before = _sample(1000.0, 40, 0)
    now = _sample(1002.0, 50, 4 * 2**20)
    text = _text(render(now, before))
    for expected in (
        "alpha *",  # this peer marked
        "beta",
        "5s ago",  # beta's last ping arrived at 997 s, the sample was taken at 1002 s
        "group=eu",
        "group=us",
        "3.0 GiB",  # free space of alpha
        "1.0 MiB",
        "pinned/s now",
        "5.0",  # (50 - 40) / 2 s
        "pin_error",
        "2.0 MiB/s",  # bitswap in: 4 MiB in 2 s
        "in sync",
        "alert: ping of",
        "pin_error: bafyerr on beta: context deadline",
        "cluster peers: 2",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_first_sample_has_no_rates_and_missing_metrics_are_explained() -> None:
    sample = _sample(1000.0, 1, 0)
    sample.prom = {}
    sample.problems.append("metrics: cannot reach http://127.0.0.1:1/metrics")
    text = _text(render(sample))
    assert "pinned/s now" not in text
    assert "not available (pass --metrics)" in text
    assert "cannot reach http://127.0.0.1:1/metrics" in text


def test_prometheus_text_is_parsed_with_and_without_labels() -> None:
    text = (
        "# HELP pinion_blockstore_blocks Blocks\n# TYPE pinion_blockstore_blocks gauge\n"
        "pinion_blockstore_blocks 12.0\n"
        'ipfscluster_pins_by_status{status="pinned"} 3.0\n'
        'weird{path="a b}c"} 4 1700000000\n'
        "broken_line\n"
    )
    assert parse_prometheus(text) == {
        "pinion_blockstore_blocks": 12.0,
        'ipfscluster_pins_by_status{status="pinned"}': 3.0,
        'weird{path="a b}c"}': 4.0,
    }


@given(st.text(max_size=300))
def test_any_text_parses_without_error(text: str) -> None:
    assert all(isinstance(v, float) for v in parse_prometheus(text).values())


def test_units() -> None:
    assert human_bytes(None) == "-"
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert ago(5) == "5s ago"
    assert ago(600) == "10m ago"
    assert ago(None) == "-"
