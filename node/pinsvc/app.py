"""The IPFS Pinning Service API (ipfs/pinning-services-api-spec) over the cluster peer (:class:`node.cluster.interfaces.ClusterAPI`).

What ``ipfs pin remote`` and other pinning-service clients speak. As IPFS
Cluster does, the ``requestid`` of a pin is its CID string (one request per
CID: pinning a CID again updates the same request), pins are cluster pins
with the default replication, and ``delegates`` are the IPFS addresses of
the peers that hold it. Unlike upstream, we follow the spec where upstream
deviates: 202 on create, replace and delete; ``status`` defaults to
``pinned`` in listings; results newest first; ``before``/``after``/``limit``
(1..1000, default 10); name ``match`` modes; ``meta`` as a JSON object.
Every error, 401 and refusals of the server itself included, is the spec's
``Failure`` ``{"error": {"reason", "details"}}`` (tested against the published
OpenAPI document with schemathesis); a request id that is not a CID is 404,
as is any id this service never issued. Pin bodies must be ``application/json``
(a plain HTML form cannot send one) and are decoded within bounds
(:mod:`node.jsonlimits`).
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from blockstore.cid import CidError, cid_from_str, cid_to_str
from cluster.pin import Pin, PinError, rfc3339_to_ns
from cluster.status import pinsvc_status

from cluster.pinoptions import PinOptionsError, check_origin

from ..cluster.interfaces import ClusterAPI
from ..httpserver import ERROR_RESPONSE
from ..jsonlimits import JsonLimitError, is_json_type
from ..jsonlimits import loads as json_loads
from ..restapi.app import RETRY_AFTER, error_of, health_response
from ..restapi.auth import middlewares, response_headers, token_handler
from ..workers import PoolBusy
from ..errors import NodeError

STATUSES = ("queued", "pinning", "pinned", "failed")
MATCHES = ("exact", "iexact", "partial", "ipartial")
MAX_LIMIT = 1000
INFO = {"source": "Pinion cluster peer", "requestid": "the pin's CID"}
#: the spec's bounds: at most 20 origins and delegates, 1000 meta entries
MAX_ORIGINS = 20
MAX_DELEGATES = 20
MAX_META = 1000
#: largest pin body accepted, bytes
MAX_BODY = 256 * 1024
#: the ``reason`` of an error by HTTP status (the spec's examples where it has one)
REASONS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
    507: "INSUFFICIENT_STORAGE",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InvalidPinRequest(NodeError, ValueError):
    """A request the spec says to refuse with 400; the message is the details."""

    status = 400


class UnknownRequest(NodeError, LookupError):
    """A request id this service never issued (404)."""

    status = 404


def _error(status: int, reason: str, details: str) -> web.Response:
    return web.json_response({"error": {"reason": reason, "details": details}}, status=status)


def failure(status: int, details: str) -> web.Response:
    """The spec's ``Failure`` body for ``status``."""
    return _error(status, REASONS.get(status, "ERROR" if status < 500 else "INTERNAL_SERVER_ERROR"), details)


def _cid(text: str) -> bytes:
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise InvalidPinRequest(f"invalid CID {text[:100]!r}: {exc}") from None


def _request_id(request: web.Request) -> bytes:
    """The CID a request id names; UnknownRequest (404) when it is not one of ours."""
    text = request.match_info["requestid"]
    try:
        return cid_from_str(text)
    except CidError:
        raise UnknownRequest(f"no pin request {text[:100]!r}") from None


def pin_status(gpi: dict[str, Any], pin: Pin | None) -> dict[str, Any]:
    """The spec's ``PinStatus`` of a GlobalPinInfo (``queued`` while no peer reports yet)."""
    statuses = [info["status"] for info in gpi["peer_map"].values()]
    allocated = set(gpi.get("allocations") or gpi["peer_map"])
    delegates: list[str] = []
    for peer, info in gpi["peer_map"].items():
        if peer in allocated:
            delegates.extend(a for a in info.get("ipfs_peer_addresses", [])[:1] if a not in delegates)
    delegates = delegates[:MAX_DELEGATES]
    body: dict[str, Any] = {"cid": gpi["cid"]}
    if pin is not None:
        if pin.name:
            body["name"] = pin.name
        if pin.origins:
            body["origins"] = list(pin.origins)
        if pin.metadata:
            body["meta"] = dict(pin.metadata)
    return {
        "requestid": gpi["cid"],
        "status": pinsvc_status(statuses) or "queued",
        "created": gpi["created"],
        "pin": body,
        "delegates": delegates,
        "info": INFO,
    }


def _matches(name: str, wanted: str, mode: str) -> bool:
    if mode == "exact":
        return name == wanted
    if mode == "iexact":
        return name.lower() == wanted.lower()
    if mode == "partial":
        return wanted in name
    return wanted.lower() in name.lower()


def _query(request: web.Request) -> dict[str, Any]:
    q = request.query
    out: dict[str, Any] = {}
    out["cids"] = [_cid(c.strip()) for c in q.get("cid", "").split(",") if c.strip()] or None
    if out["cids"] and len(out["cids"]) > 10:
        raise InvalidPinRequest("at most 10 CIDs per request")
    name = q.get("name")
    if name is not None and len(name) > 255:
        raise InvalidPinRequest("name is longer than 255 characters")
    out["name"] = name
    match = q.get("match", "exact")
    if match not in MATCHES:
        raise InvalidPinRequest(f"match must be one of {', '.join(MATCHES)}")
    out["match"] = match
    statuses = [s.strip() for s in q.get("status", "pinned").split(",") if s.strip()]
    for s in statuses:
        if s not in STATUSES:
            raise InvalidPinRequest(f"unknown status {s!r} (one of {', '.join(STATUSES)})")
    out["status"] = set(statuses) or {"pinned"}
    for key in ("before", "after"):
        try:
            out[key] = rfc3339_to_ns(q[key]) if key in q else None
        except PinError as exc:
            raise InvalidPinRequest(f"{key}: {exc}") from None
    try:
        limit = int(q.get("limit", "10"))
    except ValueError:
        raise InvalidPinRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidPinRequest(f"limit must be between 1 and {MAX_LIMIT}")
    out["limit"] = limit
    meta: dict[str, str] = {}
    if "meta" in q:
        try:
            meta = json_loads(q["meta"], max_depth=2, max_bytes=64 * 1024)
        except JsonLimitError:
            raise InvalidPinRequest("meta must be a JSON object") from None
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise InvalidPinRequest("meta must be a JSON object of strings")
    out["meta"] = meta
    return out


def _body_pin(body: Any) -> tuple[bytes, dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("cid"), str):
        raise InvalidPinRequest("the body must be a JSON object with a 'cid' string")
    fields: dict[str, Any] = {}
    name = body.get("name")
    if name is not None:
        if not isinstance(name, str) or len(name) > 255:
            raise InvalidPinRequest("name must be a string of at most 255 characters")
        fields["name"] = name
    origins = body.get("origins") or []
    if not isinstance(origins, list) or len(origins) > MAX_ORIGINS or len(set(map(str, origins))) != len(origins):
        raise InvalidPinRequest(f"origins must be a list of at most {MAX_ORIGINS} distinct multiaddrs with /p2p/<peer ID>")
    try:
        fields["origins"] = tuple(check_origin(o) for o in origins)
    except PinOptionsError as exc:
        raise InvalidPinRequest(str(exc)) from None
    meta = body.get("meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise InvalidPinRequest("meta must be an object of strings")
    if len(meta) > MAX_META:
        raise InvalidPinRequest(f"meta has more than {MAX_META} entries")
    if meta:
        fields["metadata"] = meta
    return _cid(body["cid"]), fields


def make_pinsvc_app(
    cluster: ClusterAPI, api_config: dict[str, Any], *, health: Callable[[], list[str]] | None = None
) -> web.Application:
    """The pinning service application (see module docstring); ``health`` as the REST API's
    (its 503 in the spec's ``Failure`` shape)."""
    app = web.Application(middlewares=[*middlewares(api_config, failure), _errors], client_max_size=MAX_BODY)
    app.on_response_prepare.append(response_headers(api_config))
    app[ERROR_RESPONSE] = failure

    async def status_of(cid: bytes) -> dict[str, Any]:
        pin = await cluster.get_pin(cid)
        return pin_status(await cluster.status(cid), pin)

    async def h_list(request: web.Request) -> web.StreamResponse:
        q = _query(request)
        exact_name = q["name"] if q["name"] is not None and q["match"] == "exact" else None
        count = 0
        newest: list[tuple[int, str, dict[str, Any]]] = []  # a heap of the `limit` newest matches
        async for gpi in cluster.status_all(cids=q["cids"], name=exact_name, meta=q["meta"] or None):
            pin_name = gpi.get("name", "")
            if q["name"] is not None and not _matches(pin_name, q["name"], q["match"]):
                continue
            created = rfc3339_to_ns(gpi["created"])
            if (q["before"] is not None and created >= q["before"]) or (q["after"] is not None and created <= q["after"]):
                continue
            statuses = [i["status"] for i in gpi["peer_map"].values()]
            status = pinsvc_status(statuses) or "queued"
            if status not in q["status"]:
                continue
            count += 1
            item = (created, gpi["cid"], gpi)
            if len(newest) < q["limit"]:
                heapq.heappush(newest, item)
            elif item > newest[0]:
                heapq.heapreplace(newest, item)
        results = []
        for _created, _cid_s, gpi in sorted(newest, reverse=True):
            pin = Pin(cid_from_str(gpi["cid"]), name=gpi.get("name", ""), metadata=gpi.get("metadata") or {},
                      origins=tuple(gpi.get("origins") or ()))
            results.append(pin_status(gpi, pin))
        return web.json_response({"count": count, "results": results})

    async def h_add(request: web.Request) -> web.StreamResponse:
        cid, fields = _body_pin(await _json(request))
        pin = await cluster.pin(Pin(cid, **fields))
        return web.json_response(pin_status(await cluster.status(cid), pin), status=202)

    async def h_get(request: web.Request) -> web.StreamResponse:
        return web.json_response(await status_of(_request_id(request)))

    async def h_replace(request: web.Request) -> web.StreamResponse:
        old = _request_id(request)
        await cluster.get_pin(old)  # 404 when there is nothing to replace
        cid, fields = _body_pin(await _json(request))
        pin = await cluster.pin(Pin(cid, pin_update=old if old != cid else None, **fields))
        if old != cid:
            await cluster.unpin(old)
        return web.json_response(pin_status(await cluster.status(cid), pin), status=202)

    async def h_delete(request: web.Request) -> web.StreamResponse:
        await cluster.unpin(_request_id(request))
        return web.Response(status=202)

    async def h_health(_r: web.Request) -> web.StreamResponse:
        return health_response(health, failure)

    r = app.router
    r.add_get("/pins", h_list)
    r.add_post("/pins", h_add)
    r.add_get("/pins/{requestid}", h_get)
    r.add_post("/pins/{requestid}", h_replace)
    r.add_delete("/pins/{requestid}", h_delete)
    r.add_get("/health", h_health)
    r.add_post("/token", token_handler(api_config, failure))
    return app


async def _json(request: web.Request) -> Any:
    """The request's JSON body: 415 unless it says it is JSON, 400 when it is not JSON or too deep."""
    if not is_json_type(request.content_type):
        raise web.HTTPUnsupportedMediaType(reason=f"the body must be application/json, not {request.content_type}")
    try:
        return json_loads(await request.read(), max_bytes=MAX_BODY)
    except JsonLimitError as exc:
        raise InvalidPinRequest(f"the body: {exc}") from None


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors in the spec's shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404:
            return failure(404, f"no route {request.method} {request.path[:200]}")
        if exc.status >= 400:
            resp = failure(exc.status, exc.reason)
            if "Allow" in exc.headers:
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        raise
    except Exception as exc:
        mapped = error_of(exc)
        if mapped is None:
            raise
        resp = failure(*mapped)
        if isinstance(exc, PoolBusy):
            resp.headers["Retry-After"] = str(exc.retry_after)
        elif mapped[0] == 429:  # a full pin queue (PinTracker.MaxPinQueueSize)
            resp.headers["Retry-After"] = str(RETRY_AFTER)
        return resp
