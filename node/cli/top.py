"""``pinion top``: a live terminal dashboard of a cluster peer.

It reads any peer's IPFS Cluster REST API (``--host``) and, when known, its
Prometheus endpoint (``--metrics``), every ``--interval`` seconds, and shows:
this peer and its peers (ID, tags, free space, queue, pins, last seen), pins
by status across the cluster, pin throughput now, recent alerts and pin
errors, bitswap in/out rates, block store size, CRDT height and sync lag.

The pure part (:func:`parse_prometheus`, :class:`Sample`, :func:`render`)
turns two consecutive samples into rich renderables (rates are differences
between them); :func:`collect` is the I/O that takes a sample; :func:`run`
is the loop: ``rich.live.Live`` on a terminal (``q`` quits; works over ssh:
it only needs a TTY), one table printed once when stdout is not a terminal.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import select
import sys
import termios
import time
import tty
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .cluster_client import ClusterClient, ClusterClientError, api_url, default_host
from ..routing.top_rows import routing_rows
from ..errors import NodeError

#: pin errors listed at most
ERRORS_SHOWN = 5
#: alerts listed at most
ALERTS_SHOWN = 5
#: statuses in the order the dashboard lists them
STATUS_ORDER = (
    "pinned",
    "pinning",
    "pin_queued",
    "pin_error",
    "pin_failed",
    "unpinning",
    "unpin_queued",
    "unpin_error",
    "unexpectedly_unpinned",
    "cluster_error",
)


class TopError(NodeError, RuntimeError):
    """The dashboard cannot read the peer (message says where and why)."""


# ---------------------------------------------------------------- pure core
def parse_prometheus(text: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition: ``name`` or ``name{labels}`` -> value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            end = line.rindex("}") + 1
            key, rest = line[:end], line[end:].split()
        else:
            key, *rest = line.split()
        try:
            out[key] = float(rest[0])
        except (IndexError, ValueError):
            continue
    return out


@dataclass
class Sample:
    """What one refresh read from the peer (the REST API's JSON, the Prometheus samples)."""

    at: float
    ident: dict[str, Any]
    peers: list[dict[str, Any]]
    metrics: dict[str, list[dict[str, Any]]]  #: informer metric name -> latest metric of each peer
    counts: dict[str, Any]  #: ``GET /health/pins``: pins by status per peer and in total
    alerts: list[dict[str, Any]]
    errors: list[dict[str, Any]]  #: GlobalPinInfo of pins in an error status (the first few)
    prom: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  #: parts that could not be read


def human_bytes(n: float | None) -> str:
    """``1.5 GiB`` style; ``-`` for unknown."""
    if n is None or n < 0:
        return "-"
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.0f} {units[i]}" if i == 0 else f"{n:.1f} {units[i]}"


def ago(seconds: float | None) -> str:
    """``3s ago`` style; ``-`` for unknown."""
    if seconds is None or math.isnan(seconds):
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _rfc3339_to_unix(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (ns precision tolerated); None if unparsable."""
    from datetime import datetime

    if not text:
        return None
    t = text.replace("Z", "+00:00")
    if "." in t:  # Python parses at most 6 fraction digits
        head, _, tail = t.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        t = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


def _metric_by_peer(sample: Sample, name: str) -> dict[str, dict[str, Any]]:
    return {m.get("peer", ""): m for m in sample.metrics.get(name, [])}


def _rate(now: Sample, before: Sample | None, key: str) -> float | None:
    if before is None or key not in now.prom or key not in before.prom:
        return None
    dt = now.at - before.at
    return (now.prom[key] - before.prom[key]) / dt if dt > 0 else None


def peers_table(sample: Sample) -> Table:
    """One row per peer of the peer set: name, ID, tags, free space, queue, pins, last seen."""
    table = Table(title="Peers", expand=True)
    for col in ("peer", "ID", "tags", "free space", "queue", "pins", "last seen", "error"):
        table.add_column(col, overflow="fold")
    freespace = _metric_by_peer(sample, "freespace")
    queue = _metric_by_peer(sample, "pinqueue")
    numpin = _metric_by_peer(sample, "numpin")
    ping = _metric_by_peer(sample, "ping")
    tag_names = sorted(n for n in sample.metrics if n.startswith("tag:"))
    self_id = sample.ident.get("id", "")
    for peer in sorted(sample.peers, key=lambda p: (p.get("peername", ""), p.get("id", ""))):
        pid = peer.get("id", "")
        tags = []
        for name in tag_names:
            m = _metric_by_peer(sample, name).get(pid)
            if m is not None:
                tags.append(f"{name[4:]}={m.get('value', '')}")
        seen = ping.get(pid)
        received = seen.get("received_at", 0) / 1e9 if seen and isinstance(seen.get("received_at"), int) else None
        last = "now (this peer)" if pid == self_id else ago(sample.at - received if received else None)
        free = freespace.get(pid)
        table.add_row(
            peer.get("peername", "") + (" *" if pid == self_id else ""),
            pid[-12:],
            ", ".join(tags),
            human_bytes(float(free["value"])) if free and str(free.get("value", "")).isdigit() else "-",
            str(queue[pid]["value"]) if pid in queue else "-",
            str(numpin[pid]["value"]) if pid in numpin else "-",
            last,
            peer.get("error", ""),
        )
    return table


def status_table(sample: Sample, before: Sample | None) -> Table:
    """Pins by status across the cluster (sum over peers), and pin throughput now."""
    table = Table(title="Pins across the cluster", expand=True)
    table.add_column("status")
    table.add_column("pins", justify="right")
    total = sample.counts.get("total", {})
    shown = [s for s in STATUS_ORDER if total.get(s)] or ["pinned"]
    for status in shown:
        style = "red" if "error" in status or status == "pin_failed" else None
        table.add_row(Text(status, style=style or ""), f"{total.get(status, 0):,}")
    pinned_now = total.get("pinned", 0)
    if before is not None and before.at < sample.at:
        rate = (pinned_now - before.counts.get("total", {}).get("pinned", 0)) / (sample.at - before.at)
        table.add_row("pinned/s now", f"{rate:,.1f}")
    pinset = sample.prom.get("ipfscluster_pins")
    if pinset is not None:
        table.add_row("pins in the pinset", f"{pinset:,.0f}")
    for peer, error in sample.counts.get("errors", {}).items():
        table.add_row(Text(f"no answer from {peer[-12:]}", style="yellow"), error[:60])
    return table


def node_table(sample: Sample, before: Sample | None) -> Table:
    """This peer's node: block store, bitswap rates, CRDT height and sync lag, queue."""
    table = Table(title=f"This peer ({sample.ident.get('peername', '')})", expand=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    p = sample.prom
    if not p:
        table.add_row("metrics", "not available (pass --metrics)")
        return table
    table.add_row("blocks stored", f"{p.get('pinion_blockstore_blocks', 0):,.0f}")
    table.add_row("block store size", human_bytes(p.get("pinion_blockstore_bytes")))
    for label, key in (("bitswap in", "pinion_bitswap_bytes_received_total"), ("bitswap out", "pinion_bitswap_bytes_sent_total")):
        rate = _rate(sample, before, key)
        table.add_row(label, "-" if rate is None else human_bytes(rate) + "/s")
    table.add_row("CRDT height", f"{p.get('pinion_pinset_height', 0):,.0f}")
    table.add_row("CRDT heads", f"{p.get('pinion_pinset_heads', 0):,.0f}")
    lag = p.get("pinion_pinset_sync_lag_seconds")
    table.add_row("sync lag", "-" if lag is None else ("in sync" if lag == 0 else f"{lag:.1f}s"))
    table.add_row("pin queue", f"{p.get('ipfscluster_pins_queue', 0):,.0f}")
    for label, value in routing_rows(p):
        table.add_row(label, value)
    return table


def events_table(sample: Sample) -> Table:
    """Recent alerts (newest first) and pins in an error status."""
    table = Table(title="Recent alerts and errors", expand=True)
    table.add_column("when")
    table.add_column("what", overflow="fold")
    for alert in sample.alerts[:ALERTS_SHOWN]:
        when = _rfc3339_to_unix(alert.get("triggered_at", ""))
        table.add_row(ago(sample.at - when if when else None), f"alert: {alert.get('name', '')} of {alert.get('peer', '')[-12:]} expired")
    for gpi in sample.errors[:ERRORS_SHOWN]:
        for peer, info in gpi.get("peer_map", {}).items():
            if "error" in info.get("status", "") or info.get("status") == "pin_failed":
                when = _rfc3339_to_unix(info.get("ts", ""))
                table.add_row(
                    ago(sample.at - when if when else None),
                    f"{info.get('status')}: {gpi.get('cid', '')} on {info.get('peername') or peer[-12:]}: {info.get('error', '')}",
                )
    for problem in sample.problems:
        table.add_row("now", Text(problem, style="yellow"))
    if not table.rows:
        table.add_row("", "none")
    return table


def render(sample: Sample, before: Sample | None = None) -> Group:
    """The whole dashboard for ``sample`` (rates against ``before``)."""
    ident = sample.ident
    head = Text.assemble(
        ("pinion top", "bold"),
        f"  peer {ident.get('peername', '?')} ({ident.get('id', '?')})",
        f"  cluster peers: {len(sample.peers)}",
        f"  version {ident.get('version', '?')}",
        "   q: quit",
    )
    return Group(
        Panel(head),
        peers_table(sample),
        status_table(sample, before),
        node_table(sample, before),
        events_table(sample),
    )


# ---------------------------------------------------------------- I/O
class PeerReader:
    """Reads one peer's REST API (through :class:`~node.cli.cluster_client.ClusterClient`) and its Prometheus endpoint."""

    def __init__(self, client: ClusterClient, metrics_url: str | None, timeout: float = 10.0):
        self.client = client
        self.metrics_url = metrics_url.rstrip("/") if metrics_url else None
        self.timeout = timeout

    def json(self, path: str) -> Any:
        """GET a JSON document of the REST API."""
        try:
            return self.client.json("GET", path)
        except ClusterClientError as exc:
            raise TopError(str(exc)) from None

    def stream(self, path: str, limit: int) -> list[Any]:
        """The first ``limit`` objects of an NDJSON stream of the REST API (the rest is not read)."""
        items = self.client.stream("GET", path)
        try:
            return list(itertools.islice(items, limit))
        except ClusterClientError as exc:
            raise TopError(str(exc)) from None
        finally:
            items.close()

    def prometheus(self) -> dict[str, float]:
        """This peer's Prometheus samples ({} when no metrics URL is known)."""
        if self.metrics_url is None:
            return {}
        url = self.metrics_url + "/metrics"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                return parse_prometheus(resp.read().decode())
        except (urllib.error.URLError, OSError) as exc:
            raise TopError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def collect(reader: PeerReader) -> Sample:
    """Take one sample; ``/id`` must answer (TopError), other parts degrade to ``problems``."""
    ident = reader.json("/id")
    problems: list[str] = []

    def part(what: str, fn: Any, default: Any) -> Any:
        try:
            return fn()
        except (TopError, ValueError) as exc:
            problems.append(f"{what}: {exc}")
            return default

    peers = part("peers", lambda: reader.stream("/peers", 10_000), [ident])
    names = part("metric names", lambda: reader.json("/monitor/metrics") or [], [])
    metrics = {n: part(f"metric {n}", lambda n=n: reader.json(f"/monitor/metrics/{n}") or [], []) for n in names}
    counts = part("pin counts", lambda: reader.json("/health/pins") or {}, {})
    alerts = part("alerts", lambda: reader.json("/health/alerts") or [], [])
    errors = part("pin errors", lambda: reader.stream("/pins?filter=error,pin_failed", ERRORS_SHOWN), [])
    prom = part("metrics", reader.prometheus, {})
    return Sample(time.time(), ident, peers, metrics, counts, alerts, errors, prom, problems)


@dataclass
class _Keys:
    """Single keypresses from a terminal in cbreak mode (restored on exit)."""

    fd: int
    saved: list[Any] = field(default_factory=list)

    def __enter__(self) -> "_Keys":
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def wait(self, seconds: float) -> Iterator[str]:
        """Keys pressed within ``seconds`` (returns at the first key)."""
        ready, _, _ = select.select([self.fd], [], [], seconds)
        if ready:
            yield os.read(self.fd, 16).decode(errors="replace")


def run(reader: PeerReader, interval: float = 2.0, console: Console | None = None, once: bool = False) -> int:
    """The dashboard loop (see module docstring); returns the exit status."""
    console = console or Console()
    interactive = console.is_terminal and sys.stdin.isatty() and not once
    sample = collect(reader)
    if not interactive:
        console.print(render(sample))
        return 0
    before: Sample | None = None
    with _Keys(sys.stdin.fileno()) as keys, Live(render(sample), console=console, screen=True, auto_refresh=False) as live:
        while True:
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:
                for key in keys.wait(left):
                    if key.lower().startswith("q"):
                        return 0
            before, sample = sample, _collect_or_keep(reader, sample)
            live.update(render(sample, before), refresh=True)


def _collect_or_keep(reader: PeerReader, last: Sample) -> Sample:
    """A new sample, or the last one with the error shown (a peer restarting should not end the dashboard)."""
    try:
        return collect(reader)
    except TopError as exc:
        return Sample(time.time(), last.ident, last.peers, last.metrics, last.counts, last.alerts, last.errors, {}, [str(exc)])


# ---------------------------------------------------------------- CLI
def _default_metrics(host_given: bool) -> str | None:
    """The local repo's Prometheus endpoint (when ``--host`` was not given and a daemon runs here)."""
    from ..repo import ENDPOINTS_FILE, repo_path

    if host_given:
        return None
    try:
        ep = json.loads((repo_path() / ENDPOINTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return api_url(ep["metrics"]) if ep.get("metrics") else None


def cmd_top(args: argparse.Namespace) -> int:
    """``pinion top``."""
    client = ClusterClient(args.host or default_host(), basic_auth=args.basic_auth, bearer=args.bearer, timeout=10.0)
    metrics = api_url(args.metrics) if args.metrics else _default_metrics(bool(args.host))
    try:
        return run(PeerReader(client, metrics), interval=args.interval, once=args.once)
    except TopError as exc:
        raise ClusterClientError(str(exc)) from None


def add_parser(sub: Any) -> None:
    """Mount ``top`` on the ``pinion`` parser."""
    s = sub.add_parser("top", help="live dashboard of the cluster (q quits)")
    s.add_argument("--host", help="REST API multiaddr or URL of any peer (default: this repo's daemon)")
    s.add_argument("--metrics", help="that peer's Prometheus endpoint, multiaddr or URL (default: this repo's daemon)")
    s.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    s.add_argument("--once", action="store_true", help="print the dashboard once and exit")
    s.add_argument("--basic-auth", help="user:password")
    s.add_argument("--bearer", help="a token from POST /token")
    s.set_defaults(func=cmd_top)
