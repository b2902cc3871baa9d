"""Pin options from query parameters, as IPFS Cluster's REST API takes them (``PinOptions.FromQuery``).

:func:`pin_from_query` turns ``?name=..&replication=2&meta-owner=me&expire-in=1h...``
into a :class:`~cluster.pin.Pin` for a CID, or raises :class:`PinOptionsError`
naming the bad parameter. :func:`parse_duration` reads Go durations
(``1h30m``, ``500ms``, ``2.5s``) as int64 nanoseconds, as Go does.

:func:`check_user_options` is the gate every pin a user sends passes before it
enters the pinset, whichever API it came through: every peer keeps a pin for
ever, so garbage is refused here (peer IDs that are not peer IDs, origins that
are not multiaddrs with ``/p2p/<peer ID>``, unbounded lists, names and
metadata, numbers out of range), each with a message naming the option.
"""

from __future__ import annotations

import re
import time
from fractions import Fraction
from collections.abc import Mapping
from typing import Any

import multiaddr
from multiformats import multibase

from blockstore.cid import LIBP2P_KEY, CidError, cid_from_str, codec_of, read_varint

from .pin import Pin, PinError, rfc3339_to_ns
from .errors import InvalidRequest

#: nanoseconds per Go duration unit
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


#: Go's time.Duration is an int64 of nanoseconds (about 292 years)
MAX_DURATION_NS = 2**63 - 1
#: largest replication factor, shard size and depth accepted (Go's int32 range for factors)
MAX_REPLICATION = 2**31 - 1
MAX_INT64 = 2**63 - 1
#: at most this many user allocations and origins (the pinning service spec allows 20 origins)
MAX_USER_ALLOCATIONS = 100
MAX_ORIGINS = 20
#: longest name (characters), most metadata entries, longest metadata key and value
MAX_NAME = 1020
MAX_METADATA = 1000
MAX_META_KEY = 255
MAX_META_VALUE = 4096
#: longest peer ID or origin multiaddr string
MAX_ADDR = 1024


class PinOptionsError(InvalidRequest):
    """A pin option that cannot be used; the message names the parameter."""


def check_peer_id(text: object, what: str) -> str:
    """``text`` if it is a libp2p peer ID (base58 multihash, identity or sha2-256, or a
    CIDv1 with the libp2p-key codec); PinOptionsError naming ``what`` otherwise."""
    if not isinstance(text, str) or not text or len(text) > MAX_ADDR:
        raise PinOptionsError(f"{what}: {str(text)[:80]!r} is not a peer ID")
    try:
        if text[0] in "1Q":
            mh = multibase.decode("z" + text)
            code, p = read_varint(mh, 0)
            size, p = read_varint(mh, p)
            if code not in (0x00, 0x12) or (code == 0x12 and size != 32) or p + size != len(mh):
                raise ValueError("not an identity or sha2-256 multihash")
        elif codec_of(cid_from_str(text)) != LIBP2P_KEY:
            raise ValueError("not a libp2p-key CID")
    except (ValueError, KeyError, IndexError) as exc:
        raise PinOptionsError(f"{what}: {text[:80]!r} is not a peer ID ({exc})") from None
    return text


def check_origin(text: object) -> str:
    """``text`` if it is a multiaddr ending in ``/p2p/<peer ID>``; PinOptionsError otherwise."""
    if not isinstance(text, str) or len(text) > MAX_ADDR:
        raise PinOptionsError(f"origins: {str(text)[:80]!r} is not a multiaddr")
    try:
        peer = multiaddr.Multiaddr(text).value_for_protocol("p2p")
    except Exception as exc:  # noqa: BLE001 - the multiaddr library raises several kinds
        raise PinOptionsError(f"origins: {text[:80]!r} is not a multiaddr with /p2p/<peer ID> ({exc})") from None
    if not peer or not text.rstrip("/").endswith(str(peer)):
        raise PinOptionsError(f"origins: {text[:80]!r} does not end with /p2p/<peer ID>")
    return text


def check_user_options(pin: Pin) -> None:
    """Refuse a pin a user sent whose options could not be kept in the pinset (see module docstring)."""
    if len(pin.name) > MAX_NAME:
        raise PinOptionsError(f"name: longer than {MAX_NAME} characters")
    for label, value in (("replication_factor_min", pin.replication_factor_min), ("replication_factor_max", pin.replication_factor_max)):
        if not -1 <= value <= MAX_REPLICATION:
            raise PinOptionsError(f"{label}: {value} is out of range (-1..{MAX_REPLICATION})")
    if not 0 <= pin.shard_size <= MAX_INT64:
        raise PinOptionsError(f"shard_size: out of range (0..{MAX_INT64})")
    if not -1 <= pin.max_depth <= MAX_REPLICATION:
        raise PinOptionsError(f"max_depth: out of range (-1..{MAX_REPLICATION})")
    if not 0 <= pin.expire_at <= MAX_INT64:
        raise PinOptionsError("expire_at: out of range (after the year 2262)")
    if len(pin.user_allocations) > MAX_USER_ALLOCATIONS:
        raise PinOptionsError(f"user-allocations: more than {MAX_USER_ALLOCATIONS} peers")
    if len(set(pin.user_allocations)) != len(pin.user_allocations):
        raise PinOptionsError("user-allocations: a peer is listed twice")
    for peer in pin.user_allocations:
        check_peer_id(peer, "user-allocations")
    if len(pin.origins) > MAX_ORIGINS:
        raise PinOptionsError(f"origins: more than {MAX_ORIGINS} multiaddrs")
    for origin in pin.origins:
        check_origin(origin)
    if len(pin.metadata) > MAX_METADATA:
        raise PinOptionsError(f"metadata: more than {MAX_METADATA} entries")
    for key, value in pin.metadata.items():
        if not key or len(key) > MAX_META_KEY or len(value) > MAX_META_VALUE:
            raise PinOptionsError(
                f"metadata {key[:40]!r}: keys must have 1..{MAX_META_KEY} characters, values at most {MAX_META_VALUE}"
            )


def parse_duration(text: str) -> int:
    """A Go duration string (``"1h30m"``, ``"2s"``, ``"-5m"``) in nanoseconds."""
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    total = Fraction(0)
    pos = 0
    if not s:
        raise PinOptionsError(f"invalid duration {text[:80]!r}")
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise PinOptionsError(f"invalid duration {text[:80]!r} (examples: 90s, 1h30m, 500ms)")
        number = m.group(1)
        if len(number) > 40:
            raise PinOptionsError(f"duration {text[:80]!r} is out of range (at most about 292 years)")
        total += Fraction(number) * _UNITS[m.group(2)]  # exact: no float rounding, no overflow
        if total > MAX_DURATION_NS:
            raise PinOptionsError(f"duration {text[:80]!r} is out of range (at most about 292 years)")
        pos = m.end()
    return sign * int(total)


def _int(query: Mapping[str, str], name: str, lo: int = -1, hi: int = MAX_REPLICATION) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > 20:
        raise PinOptionsError(f"parameter {name}: {raw[:40]!r} is out of range ({lo}..{hi})")
    try:
        value = int(raw)
    except ValueError:
        raise PinOptionsError(f"parameter {name}: {raw[:40]!r} is not an integer") from None
    if not lo <= value <= hi:
        raise PinOptionsError(f"parameter {name}: {value} is out of range ({lo}..{hi})")
    return value


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (raw or "").split(",") if p.strip())


def pin_from_query(cid: bytes, query: Mapping[str, str], *, now_ns: int | None = None) -> tuple[Pin, bool]:
    """The Pin that ``query`` asks for on ``cid``, and whether the cluster's replication
    defaults apply (False when the user asked for replication -1 = everywhere explicitly)."""
    now = now_ns if now_ns is not None else time.time_ns()
    fields: dict[str, Any] = {}
    name = query.get("name")
    if name is not None:
        if len(name) > 255 * 4:
            raise PinOptionsError("parameter name: longer than 1020 characters")
        fields["name"] = name
    mode = query.get("mode", "recursive") or "recursive"
    if mode not in ("recursive", "direct"):
        raise PinOptionsError(f"parameter mode: {mode!r} is not recursive or direct")
    fields["max_depth"] = -1 if mode == "recursive" else 0

    defaults = True
    rep, rmin, rmax = _int(query, "replication"), _int(query, "replication-min"), _int(query, "replication-max")
    if rep is not None:
        rmin = rmax = rep
    if rmin == 0:
        rmin = None  # 0 means "the cluster default", as upstream
    if rmax == 0:
        rmax = None
    if rmin is not None or rmax is not None:
        if rmin is None or rmax is None:
            # only one given: the other follows it (min alone -> max = min; max alone -> min = 1)
            rmin, rmax = (rmin, rmin) if rmax is None else (min(1, rmax) if rmax != -1 else -1, rmax)
        fields["replication_factor_min"], fields["replication_factor_max"] = rmin, rmax
        defaults = False

    shard_size = _int(query, "shard-size", 0, MAX_INT64)
    if shard_size is not None:
        fields["shard_size"] = shard_size
    users = _list(query.get("user-allocations"))
    if users:
        fields["user_allocations"] = users
    expire_at = query.get("expire-at")
    expire_in = query.get("expire-in")
    if expire_at:
        try:
            fields["expire_at"] = rfc3339_to_ns(expire_at)
        except PinError as exc:
            raise PinOptionsError(f"parameter expire-at: {exc}") from None
    elif expire_in:
        try:
            d = parse_duration(expire_in)
        except PinOptionsError as exc:
            raise PinOptionsError(f"parameter expire-in: {exc}") from None
        if d < 10**9:
            raise PinOptionsError("parameter expire-in: must be at least 1s")
        fields["expire_at"] = now + d
    if fields.get("expire_at") and fields["expire_at"] <= now:
        raise PinOptionsError("expire-at is in the past")
    meta = {k[5:]: v for k, v in query.items() if k.startswith("meta-") and len(k) > 5}
    if meta:
        fields["metadata"] = meta
    origins = _list(query.get("origins"))
    if origins:
        fields["origins"] = origins
    update = query.get("pin-update")
    if update:
        try:
            fields["pin_update"] = cid_from_str(update)
        except CidError as exc:
            raise PinOptionsError(f"parameter pin-update: {exc}") from None
    try:
        pin = Pin(cid, timestamp=now, **fields)
    except PinError as exc:
        raise PinOptionsError(str(exc)) from None
    check_user_options(pin)
    return pin, defaults
