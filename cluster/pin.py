"""The cluster Pin: what the pinset holds for each pinned CID.

Fields follow IPFS Cluster's ``api.Pin`` (PinOptions embedded). Inside Pinion
CIDs are bytes and times are integer unix nanoseconds (0 = unset). Two
encodings:

- DAG-CBOR via libipld (:meth:`Pin.to_cbor` / :meth:`Pin.from_cbor`), the
  value stored in the CRDT. Default-valued fields are left out, map keys are
  sorted by the codec, so equal pins encode to equal bytes.
- IPFS Cluster's REST JSON shape (:meth:`Pin.to_json` / :meth:`Pin.from_json`):
  CIDs as strings (``null`` when unset), times RFC3339 with nanoseconds.

:func:`pin_fields` reads a stored pin for listings without building a Pin:
the decoded map, checked as :meth:`Pin.from_cbor` checks it.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

import libipld

from blockstore.cid import SHA2_256, SHA2_512, CidError, cid_from_str, cid_to_str, encode_varint, parse_cid

from .errors import InvalidRequest

RECURSIVE = "recursive"
DIRECT = "direct"
PIN_TYPES = ("pin", "meta-pin", "clusterdag-pin", "shard-pin")
ZERO_TIME = "0001-01-01T00:00:00Z"


class PinError(InvalidRequest):
    """A pin that cannot be decoded or breaks a rule of the pin format."""


@dataclass(frozen=True)
class Pin:
    """One pin of the cluster pinset."""

    cid: bytes
    name: str = ""
    type: str = "pin"
    max_depth: int = -1
    replication_factor_min: int = -1
    replication_factor_max: int = -1
    shard_size: int = 0
    user_allocations: tuple[str, ...] = ()
    allocations: tuple[str, ...] = ()
    expire_at: int = 0  #: unix ns, 0 = never
    metadata: dict[str, str] = field(default_factory=dict)
    origins: tuple[str, ...] = ()
    reference: bytes | None = None
    timestamp: int = 0  #: unix ns, set by the peer that pins
    pin_update: bytes | None = None

    def __post_init__(self) -> None:
        _check_cid(self.cid, "cid")
        if self.reference is not None:
            _check_cid(self.reference, "reference")
        if self.pin_update is not None:
            _check_cid(self.pin_update, "pin_update")
        if self.type not in PIN_TYPES:
            raise PinError(f"unknown pin type {self.type!r}")
        if self.max_depth < -1:
            raise PinError(f"max_depth must be >= -1, got {self.max_depth}")
        rmin, rmax = self.replication_factor_min, self.replication_factor_max
        if rmin < -1 or rmax < -1 or rmin == 0 or rmax == 0 or ((rmin == -1) != (rmax == -1)) or rmin > rmax:
            raise PinError(
                f"invalid replication factors min={rmin} max={rmax}: both -1, or 1 <= min <= max"
            )
        for k, v in self.metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise PinError("pin metadata keys and values must be strings")

    @property
    def mode(self) -> str:
        """``recursive`` (max_depth -1) or ``direct`` (any other depth)."""
        return RECURSIVE if self.max_depth == -1 else DIRECT

    def is_allocated_to(self, peer: str) -> bool:
        """Whether ``peer`` must hold this pin (empty allocations: every peer)."""
        return not self.allocations or peer in self.allocations

    def with_(self, **changes: Any) -> Pin:
        """A copy with some fields changed (as ``dataclasses.replace``; the checks of
        ``__post_init__`` run again only when a field they check changed)."""
        if not _CHECKED.isdisjoint(changes):
            return replace(self, **changes)
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"Pin has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(Pin)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    # ------------------------------------------------------------------ DAG-CBOR
    def to_cbor(self) -> bytes:
        """DAG-CBOR bytes of this pin (default fields omitted)."""
        node: dict[str, Any] = {"cid": self.cid}
        if self.name:
            node["name"] = self.name
        if self.type != "pin":
            node["type"] = self.type
        if self.max_depth != -1:
            node["max_depth"] = self.max_depth
        if self.replication_factor_min != -1:
            node["rmin"] = self.replication_factor_min
            node["rmax"] = self.replication_factor_max
        if self.shard_size:
            node["shard_size"] = self.shard_size
        if self.user_allocations:
            node["user_allocations"] = list(self.user_allocations)
        if self.allocations:
            node["allocations"] = list(self.allocations)
        if self.expire_at:
            node["expire_at"] = self.expire_at
        if self.metadata:
            node["metadata"] = dict(self.metadata)
        if self.origins:
            node["origins"] = list(self.origins)
        if self.reference is not None:
            node["reference"] = self.reference
        if self.timestamp:
            node["timestamp"] = self.timestamp
        if self.pin_update is not None:
            node["pin_update"] = self.pin_update
        return libipld.encode_dag_cbor(node)

    @classmethod
    def from_cbor(cls, data: bytes) -> Pin:
        """Decode :meth:`to_cbor` bytes; PinError names what is wrong."""
        try:
            node = libipld.decode_dag_cbor(data)
        except (ValueError, TypeError, OverflowError) as exc:
            raise PinError(f"pin is not valid DAG-CBOR: {exc}") from None
        if not isinstance(node, dict):
            raise PinError(f"pin must be a map, got {type(node).__name__}")
        kwargs: dict[str, Any] = {}
        for name, value in node.items():
            spec = _CBOR_FIELDS.get(name)
            if spec is None:
                raise PinError(f"pin has unknown field {name!r}")
            attr, kind = spec
            if kind is int:
                if type(value) is not int:
                    raise PinError(f"pin field {name!r} must be an integer, got {type(value).__name__}")
            elif kind is tuple:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise PinError(f"pin field {name!r} must be a list of strings")
                value = tuple(value)
            elif not isinstance(value, kind):
                raise PinError(f"pin field {name!r} must be {kind.__name__}, got {type(value).__name__}")
            kwargs[attr] = value
        if "cid" not in kwargs:
            raise PinError("pin has no cid")
        return cls(**kwargs)

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """IPFS Cluster's REST JSON shape of this pin."""
        return {
            "replication_factor_min": self.replication_factor_min,
            "replication_factor_max": self.replication_factor_max,
            "name": self.name,
            "mode": self.mode,
            "shard_size": self.shard_size,
            "user_allocations": list(self.user_allocations) or None,
            "expire_at": ns_to_rfc3339(self.expire_at),
            "metadata": dict(self.metadata),
            "pin_update": cid_to_str(self.pin_update) if self.pin_update is not None else None,
            "origins": list(self.origins),
            "cid": cid_to_str(self.cid),
            "type": self.type,
            "allocations": list(self.allocations),
            "max_depth": self.max_depth,
            "reference": cid_to_str(self.reference) if self.reference is not None else None,
            "timestamp": ns_to_rfc3339(self.timestamp),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Pin:
        """Parse the REST JSON shape (as written by :meth:`to_json` or IPFS Cluster)."""
        if not isinstance(obj, dict):
            raise PinError(f"pin JSON must be an object, got {type(obj).__name__}")
        if "cid" not in obj:
            raise PinError("pin JSON has no cid")
        mode = obj.get("mode") or RECURSIVE
        if mode not in (RECURSIVE, DIRECT):
            raise PinError(f"unknown pin mode {mode!r}")
        depth = obj.get("max_depth")
        if depth is None:
            depth = -1 if mode == RECURSIVE else 0
        name = obj.get("name") or ""
        if not isinstance(name, str):
            raise PinError("pin name must be a string")
        return cls(
            cid=_json_cid(obj["cid"], "cid"),
            name=name,
            type=obj.get("type") or "pin",
            max_depth=_json_int(depth, "max_depth"),
            replication_factor_min=_json_int(obj.get("replication_factor_min", -1), "replication_factor_min"),
            replication_factor_max=_json_int(obj.get("replication_factor_max", -1), "replication_factor_max"),
            shard_size=_json_int(obj.get("shard_size") or 0, "shard_size"),
            user_allocations=_json_strs(obj.get("user_allocations"), "user_allocations"),
            allocations=_json_strs(obj.get("allocations"), "allocations"),
            expire_at=rfc3339_to_ns(obj.get("expire_at") or ZERO_TIME),
            metadata=_json_map(obj.get("metadata")),
            origins=_json_strs(obj.get("origins"), "origins"),
            reference=_json_cid(obj["reference"], "reference") if obj.get("reference") else None,
            timestamp=rfc3339_to_ns(obj.get("timestamp") or ZERO_TIME),
            pin_update=_json_cid(obj["pin_update"], "pin_update") if obj.get("pin_update") else None,
        )


# ---------------------------------------------------------------------- listings
#: stored fields :func:`pin_fields` checks itself; a pin with any other field goes through Pin.from_cbor
_LISTED = frozenset({"cid", "name", "allocations", "origins", "metadata", "timestamp", "rmin", "rmax"})


def pin_fields(value: bytes) -> dict[str, Any]:
    """The fields of a stored pin (DAG-CBOR map names: ``cid``, ``name``, ``allocations``,
    ``origins``, ``metadata``, ``timestamp``; absent = default) without building a Pin.

    Accepts exactly what :meth:`Pin.from_cbor` accepts (PinError otherwise, with its
    message): the common pin is checked here; a pin with rarer fields, or a CID that
    needs parsing, is checked by building the Pin.
    """
    try:
        node = libipld.decode_dag_cbor(value)
    except (ValueError, TypeError, OverflowError):
        node = None
    if type(node) is dict and node.keys() <= _LISTED and _listed_ok(node):
        return node
    pin = Pin.from_cbor(value)  # raises the PinError that names the problem
    return pin_as_fields(pin)


def _listed_ok(node: dict[str, Any]) -> bool:
    """Pin.from_cbor's (and Pin.__post_init__'s) rules for the fields of :data:`_LISTED`.

    ``"".join`` of a list (or of the metadata values) is how the strings are checked: it
    accepts only strings and is several times cheaper than a generator over them."""
    get = node.get
    cid = get("cid")
    if type(cid) is not bytes or not fast_cid_shape(cid):
        return False
    allocations, origins, meta = get("allocations", _EMPTY), get("origins", _EMPTY), get("metadata", _EMPTY_MAP)
    if type(allocations) is not list or type(origins) is not list or type(meta) is not dict:
        return False
    try:
        "".join(allocations), "".join(origins), "".join(meta.values())
    except TypeError:
        return False
    ts, rmin, rmax = get("timestamp", 0), get("rmin", -1), get("rmax", -1)
    if type(get("name", "")) is not str or type(ts) is not int or type(rmin) is not int or type(rmax) is not int:
        return False
    if rmin == -1 and rmax == -1:
        return True
    return 1 <= rmin <= rmax


_EMPTY: list[str] = []
_EMPTY_MAP: dict[str, str] = {}


def pin_as_fields(pin: Pin) -> dict[str, Any]:
    """The :func:`pin_fields` of a Pin already built."""
    return {
        "cid": pin.cid,
        "name": pin.name,
        "allocations": list(pin.allocations),
        "origins": list(pin.origins),
        "metadata": pin.metadata,
        "timestamp": pin.timestamp,
    }


#: the fields ``Pin.__post_init__`` checks (a copy changing none of them needs no check)
_CHECKED = frozenset({"cid", "reference", "pin_update", "type", "max_depth", "replication_factor_min", "replication_factor_max", "metadata"})
_FIELDS = frozenset(f.name for f in fields(Pin))


# ---------------------------------------------------------------------- index terms
def name_term(name: str) -> bytes:
    """Index term of a pin name."""
    return b"n=" + name.encode()


def meta_term(key: str, value: str) -> bytes:
    """Index term of one metadata entry."""
    k = key.encode()
    return b"m=" + encode_varint(len(k)) + k + value.encode()


#: the DAG-CBOR encodings of the map keys "name" and "metadata" (RFC 8949 section 3.1, major type 3)
_NAME_KEY = b"\x64name"
_META_KEY = b"\x68metadata"


def pin_index_terms(key: bytes, value: bytes) -> Iterator[bytes]:
    """Index terms of a stored pin (name and each metadata key=value).

    Reads only the two fields it needs (the value was validated when the pin
    was made); a value that is not a pin map has no terms. A DAG-CBOR map key is a
    text string with a one-byte header here, so a value holding neither key's bytes
    has neither field and is not decoded at all (most pins have no name or metadata).
    """
    if _NAME_KEY not in value and _META_KEY not in value:
        return
    try:
        node = libipld.decode_dag_cbor(value)
    except (ValueError, TypeError, OverflowError):
        return
    if not isinstance(node, dict):
        return
    name = node.get("name")
    if isinstance(name, str) and name:
        yield name_term(name)
    meta = node.get("metadata")
    if isinstance(meta, dict):
        for k, v in meta.items():
            if isinstance(k, str) and isinstance(v, str):
                yield meta_term(k, v)


# ---------------------------------------------------------------------- times
@functools.lru_cache(maxsize=4096)
def _utc_seconds(secs: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of Unix seconds (cached: a status stream formats the same seconds over and over)."""
    return _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def ns_to_rfc3339(ns: int) -> str:
    """Unix nanoseconds -> RFC3339 UTC with nanoseconds (0 -> Go's zero time)."""
    if ns == 0:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    base = _utc_seconds(secs)
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def rfc3339_to_ns(text: str) -> int:
    """RFC3339 time (any offset, up to nanoseconds) -> unix nanoseconds (Go's zero time -> 0)."""
    if not isinstance(text, str):
        raise PinError(f"time must be an RFC3339 string, got {type(text).__name__}")
    if text.startswith("0001-01-01T00:00:00"):
        return 0
    s = text.strip()
    frac_ns = 0
    try:
        if "." in s:
            head, rest = s.split(".", 1)
            digits = ""
            while rest and rest[0].isdigit():
                digits, rest = digits + rest[0], rest[1:]
            if not digits or len(digits) > 9:
                raise ValueError("bad fraction")
            frac_ns = int(digits.ljust(9, "0"))
            s = head + rest
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        when = _dt.datetime.fromisoformat(s)
    except ValueError:
        raise PinError(f"invalid RFC3339 time {text!r}") from None
    if when.tzinfo is None:
        raise PinError(f"RFC3339 time {text!r} has no time zone")
    return int(when.timestamp()) * 1_000_000_000 + frac_ns


# ---------------------------------------------------------------------- helpers
#: DAG-CBOR field -> (Pin attribute, expected type; tuple = list of strings)
_CBOR_FIELDS: dict[str, tuple[str, type]] = {
    "cid": ("cid", bytes),
    "name": ("name", str),
    "type": ("type", str),
    "max_depth": ("max_depth", int),
    "rmin": ("replication_factor_min", int),
    "rmax": ("replication_factor_max", int),
    "shard_size": ("shard_size", int),
    "user_allocations": ("user_allocations", tuple),
    "allocations": ("allocations", tuple),
    "expire_at": ("expire_at", int),
    "metadata": ("metadata", dict),
    "origins": ("origins", tuple),
    "reference": ("reference", bytes),
    "timestamp": ("timestamp", int),
    "pin_update": ("pin_update", bytes),
}


def fast_cid_shape(cid: bytes) -> bool:
    """Whether ``cid`` is, at a glance, a CID ``parse_cid`` accepts: a CIDv0, or a CIDv1 whose
    codec, hash code and digest length are one-byte varints with the digest length its hash
    has (sha2-256, identity CIDs...). False means "parse it to know", not "invalid"."""
    n = len(cid)
    if n == 34 and cid[0] == 0x12 and cid[1] == 0x20:
        return True
    if n < 4 or cid[0] != 1 or cid[1] >= 0x80 or cid[2] >= 0x80 or n != 4 + cid[3]:
        return False  # (n == 4 + cid[3] also makes the digest length a one-byte varint)
    return _ONE_BYTE_SIZES.get(cid[2], cid[3]) == cid[3]


#: digest lengths of the hashes with one-byte codes whose digests have a fixed length
_ONE_BYTE_SIZES = {SHA2_256: 32, SHA2_512: 64}


def _check_cid(cid: object, what: str) -> None:
    if not isinstance(cid, bytes):
        raise PinError(f"pin {what} must be CID bytes, got {type(cid).__name__}")
    if fast_cid_shape(cid):
        return
    try:
        parse_cid(cid)
    except CidError as exc:
        raise PinError(f"pin {what} is not a valid CID: {exc}") from None


def _json_cid(text: object, what: str) -> bytes:
    if isinstance(text, dict) and "/" in text:  # pre-1.0 IPFS Cluster shape
        text = text["/"]
    if not isinstance(text, str):
        raise PinError(f"pin {what} must be a CID string")
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise PinError(f"pin {what}: {exc}") from None


def _json_strs(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PinError(f"pin {what} must be a list of strings")
    return tuple(value)


def _json_map(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PinError("pin metadata must be an object of strings")
    return dict(value)


def _json_int(value: object, what: str) -> int:
    if type(value) is not int:
        raise PinError(f"pin {what} must be an integer, got {value!r}")
    return value
