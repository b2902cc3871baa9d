"""Peer metrics and the peer set: what the informers broadcast and what the allocator reads.

- :class:`Metric`: IPFS Cluster's ``api.Metric`` (name, peer, value string,
  expiry in unix ns, validity, weight, partitionable), with its REST JSON
  shape and a DAG-CBOR encoding for gossipsub (short keys as upstream's).
- :class:`Alert`: a metric that expired without being renewed.
- :class:`MetricStore`: the last ``window`` metrics per (peer, name); the
  peer set is this peer plus every peer with a valid, unexpired ``ping``; a
  check raises one alert per expired metric of a known peer until a fresh one
  arrives. Thread-safe: the informer's receive task and the API read it.

Sans-I/O: the caller passes the current time (unix ns) to every call.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import libipld

from .pin import ns_to_rfc3339
from .errors import InvalidRequest

#: the metric whose freshness defines the peer set
PING = "ping"
#: alerts kept for /health/alerts
MAX_ALERTS = 1000
#: largest encoded metric accepted from the network, in bytes
MAX_METRIC_BYTES = 16 * 1024


class MetricError(InvalidRequest):
    """A metric that cannot be decoded or used; the message names the problem."""


@dataclass(frozen=True)
class Metric:
    """One measurement a peer broadcast (IPFS Cluster's ``api.Metric``)."""

    name: str
    peer: str
    value: str
    expire: int  #: unix ns after which the metric is stale
    valid: bool = True
    weight: int = 0
    partitionable: bool = False
    received_at: int = 0  #: unix ns, set by the receiver

    def expired(self, now_ns: int) -> bool:
        """Whether the metric is past its expiry at ``now_ns``."""
        return now_ns >= self.expire

    def to_json(self) -> dict[str, Any]:
        """The REST API shape (``/monitor/metrics/{name}``)."""
        return {
            "name": self.name,
            "peer": self.peer,
            "value": self.value,
            "expire": self.expire,
            "valid": self.valid,
            "weight": self.weight,
            "partitionable": self.partitionable,
            "received_at": self.received_at,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Metric:
        """Inverse of :meth:`to_json`; MetricError on a malformed object."""
        if not isinstance(obj, dict):
            raise MetricError("a metric must be a JSON object")
        return cls._checked(
            obj.get("name"),
            obj.get("peer"),
            obj.get("value", ""),
            obj.get("expire", 0),
            obj.get("valid", True),
            obj.get("weight", 0),
            obj.get("partitionable", False),
            obj.get("received_at", 0),
        )

    def encode(self) -> bytes:
        """DAG-CBOR for gossipsub (``received_at`` is the receiver's business and is left out)."""
        return libipld.encode_dag_cbor(
            {
                "n": self.name,
                "p": self.peer,
                "v": self.value,
                "e": self.expire,
                "d": self.valid,
                "w": self.weight,
                "o": self.partitionable,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Metric:
        """Inverse of :meth:`encode`; MetricError on malformed input."""
        if len(data) > MAX_METRIC_BYTES:
            raise MetricError(f"metric of {len(data)} bytes exceeds {MAX_METRIC_BYTES}")
        try:
            obj = libipld.decode_dag_cbor(data)
        except Exception as exc:  # libipld raises assorted ValueError/TypeError variants
            raise MetricError(f"metric is not DAG-CBOR: {exc}") from None
        if not isinstance(obj, dict):
            raise MetricError("metric must be a map")
        return cls._checked(
            obj.get("n"), obj.get("p"), obj.get("v"), obj.get("e"), obj.get("d", True), obj.get("w", 0), obj.get("o", False), 0
        )

    @classmethod
    def _checked(
        cls, name: Any, peer: Any, value: Any, expire: Any, valid: Any, weight: Any, partitionable: Any, received_at: Any
    ) -> Metric:
        if not isinstance(name, str) or not name:
            raise MetricError("metric name must be a non-empty string")
        if not isinstance(peer, str) or not peer:
            raise MetricError(f"metric {name!r} has no peer")
        if not isinstance(value, str):
            raise MetricError(f"metric {name!r} value must be a string")
        for what, v in (("expire", expire), ("weight", weight), ("received_at", received_at)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise MetricError(f"metric {name!r} {what} must be an integer")
        if not isinstance(valid, bool) or not isinstance(partitionable, bool):
            raise MetricError(f"metric {name!r} valid/partitionable must be booleans")
        return cls(name, peer, value, expire, valid, weight, partitionable, received_at)


@dataclass(frozen=True)
class Alert:
    """A metric of a known peer that expired without a fresher one."""

    metric: Metric
    triggered_at: int  #: unix ns

    def to_json(self) -> dict[str, Any]:
        """The REST shape: the metric's fields plus ``triggered_at`` (RFC 3339)."""
        return {**self.metric.to_json(), "triggered_at": ns_to_rfc3339(self.triggered_at)}


class MetricStore:
    """Recent metrics of every peer, the peer set and alerts (see module docstring)."""

    def __init__(self, self_peer: str, window: int = 25) -> None:
        if window < 1:
            raise ValueError("the metric window must hold at least one metric")
        self.self_peer = self_peer
        self.window = window
        self._lock = threading.Lock()
        self._metrics: dict[tuple[str, str], deque[Metric]] = {}  # (name, peer) -> oldest..newest
        self._alerted: set[tuple[str, str]] = set()  # (name, peer) alerted since its last fresh metric
        self._alerts: deque[Alert] = deque(maxlen=MAX_ALERTS)
        #: bumped by every change of the metrics held (what reads them may cache until it moves)
        self.version = 0

    def add(self, m: Metric) -> bool:
        """Record a metric (a newer one of the same peer and name clears its alert); False when
        it is not newer than the latest one held (gossip may deliver old messages again)."""
        key = (m.name, m.peer)
        with self._lock:
            window = self._metrics.get(key)
            if window is None:
                window = self._metrics[key] = deque(maxlen=self.window)
            elif window and m.expire <= window[-1].expire:
                return False
            window.append(m)
            self._alerted.discard(key)
            self.version += 1
            return True

    def _latest(self, name: str, peer: str) -> Metric | None:
        window = self._metrics.get((name, peer))
        return window[-1] if window else None

    def _peerset(self, now_ns: int) -> set[str]:
        peers = {self.self_peer}
        for (name, peer), window in self._metrics.items():
            if name == PING and window and window[-1].valid and not window[-1].expired(now_ns):
                peers.add(peer)
        return peers

    def latest(self, name: str, now_ns: int) -> list[Metric]:
        """The latest valid, unexpired ``name`` metric of every peer of the peer set, sorted by peer."""
        with self._lock:
            peers = self._peerset(now_ns)
            out = []
            for (n, peer), window in self._metrics.items():
                if n != name or peer not in peers or not window:
                    continue
                m = window[-1]
                if m.valid and not m.expired(now_ns):
                    out.append(m)
        return sorted(out, key=lambda m: m.peer)

    def latest_for(self, name: str, peer: str, now_ns: int) -> Metric | None:
        """The latest valid, unexpired ``name`` metric of ``peer`` (None when there is none)."""
        with self._lock:
            m = self._latest(name, peer)
        return m if m is not None and m.valid and not m.expired(now_ns) else None

    def next_expiry(self, now_ns: int) -> int | None:
        """The earliest expiry after ``now_ns`` of a latest metric (when what :meth:`latest` and
        :meth:`peerset` return next changes without a new metric); None when none expires later."""
        with self._lock:
            return min((w[-1].expire for w in self._metrics.values() if w and w[-1].expire > now_ns), default=None)

    def history(self, name: str, peer: str) -> list[Metric]:
        """The window of ``name`` metrics of ``peer``, oldest first."""
        with self._lock:
            return list(self._metrics.get((name, peer), ()))

    def names(self) -> list[str]:
        """Every metric name seen, sorted."""
        with self._lock:
            return sorted({name for name, _peer in self._metrics})

    def peerset(self, now_ns: int) -> list[str]:
        """This peer and every peer with a valid, unexpired ping, sorted."""
        with self._lock:
            return sorted(self._peerset(now_ns))

    def check(self, now_ns: int) -> list[Alert]:
        """Alerts for metrics of other peers that expired since the last check (one per metric until renewed)."""
        new: list[Alert] = []
        with self._lock:
            for key, window in self._metrics.items():
                if key[1] == self.self_peer or key in self._alerted or not window:
                    continue
                m = window[-1]
                if m.expired(now_ns):
                    self._alerted.add(key)
                    alert = Alert(m, now_ns)
                    self._alerts.append(alert)
                    new.append(alert)
        return new

    def alerts(self) -> list[Alert]:
        """Recent alerts, newest first (at most 1,000)."""
        with self._lock:
            return list(reversed(self._alerts))

    def last_seen(self, peer: str) -> int | None:
        """When ``peer``'s latest ping arrived (its ``received_at``, else its expiry), unix ns."""
        with self._lock:
            m = self._latest(PING, peer)
        if m is None:
            return None
        return m.received_at or m.expire

    def forget(self, peer: str) -> None:
        """Drop every metric of ``peer`` (a peer removed from the cluster)."""
        with self._lock:
            for key in [k for k in self._metrics if k[1] == peer]:
                del self._metrics[key]
                self._alerted.discard(key)
            self.version += 1


def with_received(m: Metric, now_ns: int) -> Metric:
    """``m`` stamped with its arrival time."""
    return replace(m, received_at=now_ns)
