"""Pin options from query parameters, as IPFS Cluster's REST API takes them (``PinOptions.FromQuery``).

:func:`pin_from_query` turns ``?name=..&replication=2&meta-owner=me&expire-in=1h...``
into a :class:`~cluster.pin.Pin` for a CID, or raises :class:`PinOptionsError`
naming the bad parameter. :func:`parse_duration` reads Go durations
(``1h30m``, ``500ms``, ``2.5s``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from blockstore.cid import CidError, cid_from_str

from .pin import Pin, PinError, rfc3339_to_ns

#: nanoseconds per Go duration unit
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class PinOptionsError(ValueError):
    """A pin option that cannot be used; the message names the parameter."""


def parse_duration(text: str) -> int:
    """A Go duration string (``"1h30m"``, ``"2s"``, ``"-5m"``) in nanoseconds."""
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    total = 0.0
    pos = 0
    if not s:
        raise PinOptionsError(f"invalid duration {text!r}")
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise PinOptionsError(f"invalid duration {text!r} (examples: 90s, 1h30m, 500ms)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * int(total)


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise PinOptionsError(f"parameter {name}: {raw!r} is not an integer") from None


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

    shard_size = _int(query, "shard-size")
    if shard_size is not None:
        if shard_size < 0:
            raise PinOptionsError("parameter shard-size: must be >= 0")
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
        d = parse_duration(expire_in)
        if d < 10**9:
            raise PinOptionsError("parameter expire-in: must be at least 1s")
        fields["expire_at"] = now + d
    if fields.get("expire_at") and fields["expire_at"] <= now:
        raise PinOptionsError("expire-at is in the past")
    meta = {k[5:]: v for k, v in query.items() if k.startswith("meta-") and len(k) > 5}
    if meta:
        fields["metadata"] = meta
    origins = _list(query.get("origins"))
    for origin in origins:
        if not origin.startswith("/") or "/p2p/" not in origin:
            raise PinOptionsError(f"parameter origins: {origin!r} is not a multiaddr with /p2p/<peer ID>")
    if origins:
        fields["origins"] = origins
    update = query.get("pin-update")
    if update:
        try:
            fields["pin_update"] = cid_from_str(update)
        except CidError as exc:
            raise PinOptionsError(f"parameter pin-update: {exc}") from None
    try:
        return Pin(cid, timestamp=now, **fields), defaults
    except PinError as exc:
        raise PinOptionsError(str(exc)) from None
