"""Pin statuses: IPFS Cluster's TrackerStatus, one peer's view of a CID, and the cluster-wide view.

- :data:`STATUSES`: TrackerStatus names and their bit values as IPFS Cluster
  1.1 has them, plus our ``pin_failed`` (8192): a pin that used up its
  retries and waits for an explicit recover (an open request upstream).
- :func:`parse_filter`: the ``filter`` query parameter of ``GET /pins``.
- :class:`PinInfo`: one peer's status of one CID, with a compact DAG-CBOR
  encoding for the peer RPC (:func:`encode_status` / :func:`decode_status`
  are that encoding without the object, for the status streams).
- :func:`global_pin_info`: the ``GlobalPinInfo`` JSON of the REST API.
- :class:`PeerEntries` and :class:`GpiText`: the same ``GlobalPinInfo``
  written as JSON text straight from a pin's stored fields and status rows
  (what ``GET /pins`` streams: no object per pin, the parts that are the same
  for every pin of a peer made once). Byte for byte what ``json.dumps`` of
  :func:`global_pin_info` writes (a property test holds them together).
- :func:`pinsvc_status`: the pinning service API's status of a CID.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import libipld

from blockstore.cid import CidError, cid_to_str, parse_cid

from .errors import InvalidRequest
from .pin import Pin, fast_cid_shape, ns_to_rfc3339

#: one peer's status of one CID as the streams carry it:
#: (status name, unix ns of the last change, error, attempt count, priority pin)
StatusRow = tuple[str, int, str, int, bool]

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
        return encode_status(self.cid, self.peer, self.row())

    def row(self) -> StatusRow:
        """The status fields as a :data:`StatusRow`."""
        return (self.status, self.timestamp, self.error, self.attempt_count, self.priority_pin)

    @classmethod
    def decode(cls, data: bytes) -> PinInfo:
        """Inverse of :meth:`encode`; StatusError on malformed input."""
        cid, peer, (status, ts, error, attempts, priority) = decode_status(data)
        return cls(
            cid=cid,
            peer=peer,
            status=status,
            timestamp=ts,
            error=error,
            attempt_count=attempts,
            priority_pin=priority,
        )


def encode_status(cid: bytes, peer: str, row: StatusRow) -> bytes:
    """The peer RPC's DAG-CBOR of ``peer``'s status ``row`` of ``cid`` (default fields left out)."""
    status, ts, error, attempts, priority = row
    obj: dict[str, Any] = {"c": cid, "p": peer, "s": STATUSES.get(status, 0), "t": ts}
    if error:
        obj["e"] = error
    if attempts:
        obj["a"] = attempts
    if priority:
        obj["r"] = True
    return libipld.encode_dag_cbor(obj)


def decode_status(data: bytes) -> tuple[bytes, str, StatusRow]:
    """(CID, peer, row) of :func:`encode_status` bytes; StatusError names what is malformed
    (bytes that are not a CID, a status bit that is not one, a timestamp out of int64...)."""
    try:
        obj = libipld.decode_dag_cbor(data)
    except Exception as exc:  # libipld raises assorted ValueError/TypeError variants
        raise StatusError(f"PinInfo is not DAG-CBOR: {exc}") from None
    if type(obj) is not dict:
        raise StatusError("PinInfo must be a map")
    get = obj.get
    cid, peer, bit, ts = get("c"), get("p"), get("s"), get("t", 0)
    if type(cid) is not bytes:
        raise StatusError("PinInfo lacks its CID")
    if not fast_cid_shape(cid):
        try:
            parse_cid(cid)
        except CidError as exc:
            raise StatusError(f"PinInfo CID: {exc}") from None
    if type(peer) is not str or type(bit) is not int or bit not in _BY_BIT:
        raise StatusError("PinInfo has a bad peer or status")
    if type(ts) is not int or not _INT64_MIN <= ts <= _INT64_MAX:
        raise StatusError("PinInfo has a bad timestamp")
    error, attempts, priority = get("e", ""), get("a", 0), get("r", False)
    if type(error) is not str or type(attempts) is not int or type(priority) is not bool:
        raise StatusError("PinInfo has a bad error, attempt count or priority")
    return cid, peer, (_BY_BIT[bit], ts, error, attempts, priority)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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


# ---------------------------------------------------------------------- GlobalPinInfo as JSON text
#: a JSON string literal of ``text``, as ``json.dumps`` writes it (ASCII, the C encoder when present)
_esc = json.encoder.encode_basestring_ascii
_STATUS_JSON = {name: _esc(name) for name in STATUSES}
#: how many made-up entries (fixed timestamps) one peer remembers per page
_MEMO = 64


def _json_strs(items: Sequence[str] | None) -> str:
    return "[" + ",".join(map(_esc, items)) + "]" if items else "[]"


def _json_map(items: Mapping[str, str] | None) -> str:
    if not items:
        return "{}"
    return "{" + ",".join([_esc(k) + ":" + _esc(v) for k, v in items.items()]) + "}"


class PeerEntries:
    """One peer's ``peer_map`` entries of GlobalPinInfo JSON text, for every pin of a listing.

    The peer's key, name and IPFS identity are escaped once (they are the same
    for every pin); rows whose timestamp is 0 or :attr:`now` (made up by the
    listing: ``remote``, ``pin_queued``, ``cluster_error``...) are written
    once per page. :meth:`json` is ``PinInfo.to_json`` of the decorated
    PinInfo, as text.
    """

    def __init__(self, peer: str, peername: str, ipfs_peer_id: str, ipfs_peer_addresses: Sequence[str], now: int) -> None:
        self.peer = peer
        self.peername = peername
        self.ipfs_peer_id = ipfs_peer_id
        self.ipfs_peer_addresses = tuple(ipfs_peer_addresses)
        self.now = now
        self._head = _esc(peer) + ':{"peername":' + _esc(peername) + ',"status":'
        if ipfs_peer_id:
            self._tail = ',"ipfs_peer_id":' + _esc(ipfs_peer_id) + ',"ipfs_peer_addresses":' + _json_strs(self.ipfs_peer_addresses) + "}"
        else:
            self._tail = "}"
        self._memo: dict[StatusRow, str] = {}

    def json(self, row: StatusRow) -> str:
        """``"<peer>":{...}`` of ``row`` (a member of the ``peer_map`` object)."""
        ts = row[1]
        if ts == 0 or ts == self.now:
            text = self._memo.get(row)
            if text is None:
                text = self._write(row)
                if len(self._memo) < _MEMO:
                    self._memo[row] = text
            return text
        return self._write(row)

    def _write(self, row: StatusRow) -> str:
        status, ts, error, attempts, priority = row
        return (
            f'{self._head}{_STATUS_JSON.get(status) or _esc(status)},"timestamp":"{ns_to_rfc3339(ts)}",'
            f'"error":{_esc(error)},"attempt_count":{attempts},"priority_pin":{"true" if priority else "false"}{self._tail}'
        )

    def info(self, cid: bytes, row: StatusRow) -> PinInfo:
        """The decorated PinInfo of ``row`` (what :meth:`json` writes as text)."""
        status, ts, error, attempts, priority = row
        return PinInfo(cid, self.peer, self.peername, status, ts, error, attempts, priority, self.ipfs_peer_id, self.ipfs_peer_addresses)


class GpiText:
    """GlobalPinInfo JSON text of the pins of one listing, from their stored fields.

    :meth:`line` is ``json.dumps(global_pin_info(...), separators=(",", ":")) + "\\n"``.
    What recurs from pin to pin is written once: the JSON of an allocation or
    origin list (the same few peers hold most pins; at most :data:`_LISTS` kept)
    and the ``created`` time of pins made in the same batch."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, ...], str] = {}
        self._ts = 0
        self._created = ns_to_rfc3339(0)

    def _list(self, items: Sequence[str] | None) -> str:
        if not items:
            return "[]"
        key = tuple(items)
        text = self._lists.get(key)
        if text is None:
            text = "[" + ",".join(map(_esc, items)) + "]"
            if len(self._lists) < _LISTS:
                self._lists[key] = text
        return text

    def head(self, cid: bytes, fields: Mapping[str, Any]) -> str:
        """The text of a pin up to its ``peer_map`` entries (``fields``: the stored pin's map as
        :func:`cluster.pin.pin_fields` returns it)."""
        get = fields.get
        name, meta, ts = get("name"), get("metadata"), get("timestamp", 0)
        if ts != self._ts:
            self._ts, self._created = ts, ns_to_rfc3339(ts)
        return (
            f'{{"cid":"{cid_to_str(cid)}","name":{_esc(name) if name else _EMPTY_STR}'
            f',"allocations":{self._list(get("allocations"))},"origins":{self._list(get("origins"))}'
            f',"created":"{self._created}","metadata":{_json_map(meta) if meta else "{}"},"peer_map":{{'
        )

    def line(self, cid: bytes, fields: Mapping[str, Any], entries: Iterable[str]) -> str:
        """One NDJSON line of a pin: its :meth:`head`, its peers' :meth:`PeerEntries.json` texts."""
        return self.head(cid, fields) + ",".join(entries) + "}}\n"


_EMPTY_STR = '""'
#: allocation and origin lists a listing keeps the JSON of
_LISTS = 4096


def gpi_line(cid: bytes, fields: Mapping[str, Any], entries: Iterable[str]) -> str:
    """:meth:`GpiText.line` of a single pin."""
    return GpiText().line(cid, fields, entries)
