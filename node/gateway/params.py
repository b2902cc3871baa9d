"""Sans-I/O request parsing and header decisions for the gateway.

Nothing here touches the network or the block store: request text in, plain values (or a
:class:`~node.gateway.errors.GatewayError` naming the problem) out.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple
from urllib.parse import quote, unquote

from .errors import GatewayError

__all__ = [
    "RAW_TYPE",
    "CAR_TYPE",
    "IMMUTABLE",
    "DIR_LISTING_CACHE",
    "ContentPath",
    "Wanted",
    "CarParams",
    "parse_content_path",
    "parse_accept",
    "choose_response",
    "parse_entity_bytes",
    "entity_span",
    "parse_range",
    "etag_matches",
    "content_disposition",
    "car_etag",
    "only_if_cached",
]

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
IMMUTABLE = "public, max-age=29030400, immutable"
DIR_LISTING_CACHE = "public, max-age=604800, stale-while-revalidate=2678400"

#: ``format=`` values and Accept types the gateway knows of but does not serve (answered 406)
_UNSERVED_FORMATS = {"tar", "dag-json", "dag-cbor", "json", "cbor", "ipns-record"}
_UNSERVED_TYPES = {
    "application/x-tar": "tar",
    "application/vnd.ipld.dag-json": "dag-json",
    "application/vnd.ipld.dag-cbor": "dag-cbor",
    "application/vnd.ipfs.ipns-record": "ipns-record",
}
_SCOPES = ("block", "entity", "all")


class ContentPath(NamedTuple):
    """``/ipfs/<cid>/<segments...>`` split and percent-decoded once."""

    namespace: str
    cid_text: str
    segments: list[str]
    trailing_slash: bool


class CarParams(NamedTuple):
    """The CAR response options after query/Accept precedence."""

    order: str
    dups: bool
    scope: str
    entity_bytes: tuple[int, int | None] | None


class Wanted(NamedTuple):
    """What the client asked for: ``kind`` is ``raw``, ``car`` or ``unixfs`` (deserialized)."""

    kind: str
    car: CarParams | None
    via_accept: bool


def _decode_segment(path: str, seg: str) -> str:
    if "%" not in seg:
        return seg  # nothing to decode (the common case: a CID, a plain name)
    try:
        return unquote(seg, errors="strict")
    except UnicodeDecodeError:
        raise GatewayError(400, f"invalid content path {path!r}: a segment is not UTF-8 once percent-decoded") from None


def parse_content_path(raw_path: str) -> ContentPath:
    """Split a raw (still percent-encoded) request path; each segment is decoded once (``+`` stays literal)."""
    path = raw_path.split("?", 1)[0]
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] not in ("ipfs", "ipns"):
        raise GatewayError(400, f"invalid content path {path!r}: expected /ipfs/<cid>[/path]")
    namespace, cid_text = parts[1], _decode_segment(path, parts[2])
    rest = parts[3:]
    trailing = bool(rest) and rest[-1] == ""
    segments = []
    for seg in rest:
        if seg in ("", "."):
            continue
        if seg == "..":
            raise GatewayError(400, f"invalid content path {path!r}: '..' segments are not allowed")
        segments.append(_decode_segment(path, seg))
    if not cid_text:
        raise GatewayError(400, "invalid content path: missing CID")
    return ContentPath(namespace, cid_text, segments, trailing)


def parse_accept(header: str) -> list[tuple[str, dict[str, str]]]:
    """Media ranges of an Accept header, best ``q`` first (stable), with their parameters (``q`` removed)."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for i, item in enumerate(header.split(",")):
        fields = [f.strip() for f in item.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for f in fields[1:]:
            if not f:
                continue
            key, sep, value = f.partition("=")
            if not sep:
                raise GatewayError(400, f"unparsable Accept header parameter {f!r}")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    raise GatewayError(400, f"unparsable Accept q-value {value!r}") from None
            else:
                params[key] = value
        if q > 0:
            ranges.append((-q, i, media, params))
    ranges.sort()
    return [(m, p) for _, _, m, p in ranges]


def _car_params(query: dict[str, str], accept_params: dict[str, str]) -> CarParams:
    version = query.get("car-version", accept_params.get("version", "1"))
    if version != "1":
        raise GatewayError(400, f"unsupported CAR version {version!r}: only version=1 is supported")
    order = query.get("car-order", accept_params.get("order", "dfs"))
    if order not in ("dfs", "unk"):
        raise GatewayError(400, f"unsupported CAR block order {order!r}: use dfs or unk")
    dups_text = query.get("car-dups", accept_params.get("dups", "n"))
    if dups_text not in ("y", "n"):
        raise GatewayError(400, f"invalid CAR dups {dups_text!r}: use y or n")
    scope = query.get("dag-scope", "all")
    if scope not in _SCOPES:
        raise GatewayError(400, f"invalid dag-scope {scope!r}: use block, entity or all")
    entity = query.get("entity-bytes")
    span = parse_entity_bytes(entity) if entity is not None else None
    if span is not None:
        scope = "entity"
    return CarParams(order, dups_text == "y", scope, span)


#: the answer for a request with neither ``?format=`` nor an Accept that asks for raw or CAR
_DESERIALIZED = Wanted("unixfs", None, False)


def choose_response(query: dict[str, str], accept: str | None) -> Wanted:
    """Decide the response kind: ``?format=`` wins over Accept; CAR options from query beat Accept params."""
    if not accept and not query:
        return _DESERIALIZED
    fmt = query.get("format")
    if fmt is not None:
        accept_params: dict[str, str] = {}
        if fmt == "car" and accept:
            for media, params in parse_accept(accept):
                if media == CAR_TYPE:
                    accept_params = params
                    break
        if fmt == "raw":
            return Wanted("raw", None, False)
        if fmt == "car":
            return Wanted("car", _car_params(query, accept_params), False)
        if fmt in _UNSERVED_FORMATS:
            raise GatewayError(406, f"format {fmt!r} is not served by this gateway (use raw, car or no format)")
        raise GatewayError(400, f"unknown format {fmt!r}")
    if accept:
        for media, params in parse_accept(accept):
            if media == RAW_TYPE:
                return Wanted("raw", None, True)
            if media == CAR_TYPE:
                return Wanted("car", _car_params(query, params), True)
            if media in _UNSERVED_TYPES:
                raise GatewayError(406, f"{media} ({_UNSERVED_TYPES[media]}) is not served by this gateway")
            break
    return _DESERIALIZED


def parse_entity_bytes(text: str) -> tuple[int, int | None]:
    """Parse ``from:to`` (``to`` may be ``*``; either may be negative); 400 on anything else."""
    a, sep, b = text.partition(":")
    try:
        start = int(a)
        end = None if b == "*" else int(b)
    except ValueError:
        raise GatewayError(400, f"invalid entity-bytes {text!r}: expected <from>:<to> with integers or '*'") from None
    if not sep:
        raise GatewayError(400, f"invalid entity-bytes {text!r}: expected <from>:<to>")
    if end is not None and (start >= 0) == (end >= 0) and start > end:
        raise GatewayError(400, f"invalid entity-bytes {text!r}: from is after to")
    return start, end


def entity_span(span: tuple[int, int | None], size: int) -> tuple[int, int] | None:
    """Resolve an entity-bytes span against a file size: inclusive (first, last), or None if empty."""
    start, end = span
    if start < 0:
        start = max(size + start, 0)
    last = size - 1 if end is None else (size + end if end < 0 else min(end, size - 1))
    if size == 0 or start > last or start >= size:
        return None
    return start, last


def parse_range(header: str, size: int) -> list[tuple[int, int]] | None:
    """Parse ``Range: bytes=...`` into inclusive spans clamped to ``size``.

    Returns None when the header is not a bytes range (serve the whole entity). Raises a 416
    :class:`GatewayError` when no range is satisfiable.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spans = []
    for part in spec.split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if not dash:
            return None
        try:
            if first == "":
                n = int(last)
                if n <= 0:
                    continue
                spans.append((max(size - n, 0), size - 1))
            else:
                a = int(first)
                b = size - 1 if last == "" else min(int(last), size - 1)
                if a < 0 or (last != "" and int(last) < a):
                    return None
                if a < size:
                    spans.append((a, b))
        except ValueError:
            return None
    if not spans or size == 0:
        raise GatewayError(416, f"range {spec!r} not satisfiable for {size} bytes")
    return spans


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value matches ``etag`` (``*``, list members, weak or strong)."""
    def bare(tag: str) -> str:
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        return tag.strip()

    mine = bare(etag)
    for item in if_none_match.split(","):
        item = item.strip()
        if item == "*" or (item and bare(item) == mine):
            return True
    return False


def content_disposition(disposition: str, filename: str) -> str:
    """``<disposition>; filename="<ascii>"; filename*=UTF-8''<pct-encoded>`` (non-ASCII -> ``_``)."""
    if _UNRESERVED.issuperset(filename):  # e.g. "<cid>.bin": nothing to replace or percent-encode
        return f"{disposition}; filename=\"{filename}\"; filename*=UTF-8''{filename}"
    if filename.isascii() and filename.isprintable() and '"' not in filename and "\\" not in filename:
        ascii_name = filename
    else:
        ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


#: the characters ``quote(..., safe="")`` leaves as they are (RFC 3986 unreserved)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def car_etag(root_text: str, path: str, car: CarParams) -> str:
    """A weak Etag of a CAR response that varies with path, scope, order, dups and entity-bytes."""
    key = f"{path}\0scope={car.scope}\0order={car.order}\0dups={'y' if car.dups else 'n'}\0range={car.entity_bytes}"
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return f'W/"{root_text}.car.{base64.b32encode(digest).decode().rstrip("=").lower()}"'


def only_if_cached(cache_control: str | None) -> bool:
    """Whether a ``Cache-Control`` request header carries ``only-if-cached``."""
    if not cache_control:
        return False
    return any(d.strip().lower() == "only-if-cached" for d in cache_control.split(","))
