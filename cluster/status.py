"""Pin statuses: IPFS Cluster's TrackerStatus, one peer's view of a CID, and the cluster-wide view.

- :data:`STATUSES`: TrackerStatus names and their bit values as IPFS Cluster
  1.1 has them, plus our ``pin_failed`` (8192): a pin that used up its
  retries and waits for an explicit recover (an open request upstream).
- :func:`parse_filter`: the ``filter`` query parameter of ``GET /pins``.
- :class:`PinInfo`: one peer's status of one CID, with a compact DAG-CBOR
  encoding for the peer RPC.
- :func:`global_pin_info`: the ``GlobalPinInfo`` JSON of the REST API.
- :func:`pinsvc_status`: the pinning service API's status of a CID.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import libipld

from blockstore.cid import CidError, cid_to_str, parse_cid

from .pin import Pin, ns_to_rfc3339
from .errors import InvalidRequest

#: TrackerStatus name -> bit (IPFS Cluster's values; ``pin_failed`` is ours)
STATUSES: dict[str, int] = {
    "undefined": 0,
    "cluster_error": 2,
    "pin_error": 4,
    "unpin_error": 8,
    "pinned": 16,
    "pinning": 32,
    "unpinning": 64,
    "unpinned": 128,
    "remote": 256,
    "pin_queued": 512,
    "unpin_queued": 1024,
    "sharded": 2048,
    "unexpectedly_unpinned": 4096,
    "pin_failed": 8192,
}
_BY_BIT = {bit: name for name, bit in STATUSES.items()}
#: composite filter names
COMPOSITES: dict[str, int] = {
    "error": STATUSES["cluster_error"] | STATUSES["pin_error"] | STATUSES["unpin_error"],
    "queued": STATUSES["pin_queued"] | STATUSES["unpin_queued"],
}
#: statuses that count as errors for the pinning service API (``failed``)
ERROR_STATUSES = frozenset({"cluster_error", "pin_error", "unpin_error", "pin_failed", "unexpectedly_unpinned"})


class StatusError(InvalidRequest):
    """A status, filter or encoded PinInfo that cannot be used; the message names it."""


def status_bit(name: str) -> int:
    """The bit of a status name (0 for unknown names, like ``undefined``)."""
    return STATUSES.get(name, 0)


def status_name(bit: int) -> str:
    """The name of a single status bit (``undefined`` for anything else)."""
    return _BY_BIT.get(bit, "undefined")


def parse_filter(text: str) -> int:
    """The bit mask of a comma-separated filter (names and ``error``/``queued``).

    Unknown names are ignored as upstream; a filter that resolves to nothing
    raises StatusError naming it. An empty text is "no filter" (0).
    """
    if not text.strip():
        return 0
    mask = 0
    for part in text.split(","):
        part = part.strip()
        mask |= COMPOSITES.get(part, STATUSES.get(part, 0))
    if mask == 0:
        raise StatusError(f"invalid filter value: {text!r}")
    return mask


@dataclass(frozen=True)
class PinInfo:
    """One peer's view of one CID (IPFS Cluster's ``PinInfoShort`` plus the CID and peer)."""

    cid: bytes
    peer: str
    peername: str = ""
    status: str = "undefined"
    timestamp: int = 0  #: unix ns of the last status change
    error: str = ""
    attempt_count: int = 0
    priority_pin: bool = False
    ipfs_peer_id: str = ""
    ipfs_peer_addresses: tuple[str, ...] = ()

    def with_identity(self, peername: str, ipfs_peer_id: str, ipfs_peer_addresses: tuple[str, ...]) -> PinInfo:
        """A copy naming the peer (its peer name, IPFS ID and addresses); what status streams
        do for every pin, so built directly (``dataclasses.replace`` costs twice as much)."""
        return PinInfo(
            cid=self.cid,
            peer=self.peer,
            peername=peername,
            status=self.status,
            timestamp=self.timestamp,
            error=self.error,
            attempt_count=self.attempt_count,
            priority_pin=self.priority_pin,
            ipfs_peer_id=ipfs_peer_id,
            ipfs_peer_addresses=ipfs_peer_addresses,
        )

    def to_json(self) -> dict[str, Any]:
        """The ``peer_map`` entry of a GlobalPinInfo."""
        out: dict[str, Any] = {
            "peername": self.peername,
            "status": self.status,
            "timestamp": ns_to_rfc3339(self.timestamp),
            "error": self.error,
            "attempt_count": self.attempt_count,
            "priority_pin": self.priority_pin,
        }
        if self.ipfs_peer_id:
            out["ipfs_peer_id"] = self.ipfs_peer_id
            out["ipfs_peer_addresses"] = list(self.ipfs_peer_addresses)
        return out

    def encode(self) -> bytes:
        """Compact DAG-CBOR for the peer RPC (peer names and addresses are added by the receiver)."""
        obj: dict[str, Any] = {"c": self.cid, "p": self.peer, "s": status_bit(self.status), "t": self.timestamp}
        if self.error:
            obj["e"] = self.error
        if self.attempt_count:
            obj["a"] = self.attempt_count
        if self.priority_pin:
            obj["r"] = True
        return libipld.encode_dag_cbor(obj)

    @classmethod
    def decode(cls, data: bytes) -> PinInfo:
        """Inverse of :meth:`encode`; StatusError on malformed input."""
        try:
            obj = libipld.decode_dag_cbor(data)
        except Exception as exc:  # libipld raises assorted ValueError/TypeError variants
            raise StatusError(f"PinInfo is not DAG-CBOR: {exc}") from None
        if not isinstance(obj, dict):
            raise StatusError("PinInfo must be a map")
        cid, peer, bit, ts = obj.get("c"), obj.get("p"), obj.get("s"), obj.get("t", 0)
        if not isinstance(cid, bytes):
            raise StatusError("PinInfo lacks its CID")
        try:
            parse_cid(cid)
        except CidError as exc:
            raise StatusError(f"PinInfo CID: {exc}") from None
        if not isinstance(peer, str) or not isinstance(bit, int) or bit not in _BY_BIT:
            raise StatusError("PinInfo has a bad peer or status")
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise StatusError("PinInfo has a bad timestamp")
        error, attempts, priority = obj.get("e", ""), obj.get("a", 0), obj.get("r", False)
        if not isinstance(error, str) or not isinstance(attempts, int) or not isinstance(priority, bool):
            raise StatusError("PinInfo has a bad error, attempt count or priority")
        return cls(
            cid=cid,
            peer=peer,
            status=status_name(bit),
            timestamp=ts,
            error=error,
            attempt_count=attempts,
            priority_pin=priority,
        )


def global_pin_info(cid: bytes, pin: Pin | None, infos: Iterable[PinInfo]) -> dict[str, Any]:
    """IPFS Cluster's ``GlobalPinInfo`` JSON for ``cid`` (``pin`` None: not in the pinset)."""
    return {
        "cid": cid_to_str(cid),
        "name": pin.name if pin else "",
        "allocations": list(pin.allocations) if pin else [],
        "origins": list(pin.origins) if pin else [],
        "created": ns_to_rfc3339(pin.timestamp if pin else 0),
        "metadata": dict(pin.metadata) if pin else {},
        "peer_map": {info.peer: info.to_json() for info in infos},
    }


def pinsvc_status(statuses: Iterable[str]) -> str | None:
    """The pinning service status of a CID from its peers' statuses (None: undefined, hidden).

    As upstream: any error -> ``failed``; else any ``pin_queued`` -> ``queued``;
    else any ``pinning`` -> ``pinning``; else any ``pinned`` -> ``pinned``.
    """
    seen = set(statuses)
    if seen & ERROR_STATUSES:
        return "failed"
    for status, answer in (("pin_queued", "queued"), ("pinning", "pinning"), ("pinned", "pinned")):
        if status in seen:
            return answer
    return None
