"""docs/metrics.md lists every metric a running daemon (with the cluster host) exposes."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_every_exposed_metric_is_documented(make_node: Any) -> None:
    node = make_node("metrics")  # make_node inits with a cluster secret: the cluster metrics are there
    node.start()
    with urllib.request.urlopen(f"{node.url('metrics')}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    exposed = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    # prometheus_client's *_created companions of counters are implementation detail
    exposed = {n for n in exposed if not n.endswith("_created")}
    documented = set(re.findall(r"`([a-z_]+)(?:\{[^}]*\})?`", DOC.read_text()))
    assert {"ipfscluster_pins", "pinion_pinset_sync_lag_seconds", "pinion_blockstore_blocks"} <= exposed
    assert exposed - documented == set(), f"undocumented metrics: {sorted(exposed - documented)}"
