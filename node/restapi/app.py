"""The IPFS Cluster 1.1 REST API over the cluster peer (:class:`node.cluster.interfaces.ClusterAPI`).

Routes and JSON shapes are IPFS Cluster's (https://ipfscluster.io/documentation/reference/api/
and ``api/rest`` in github.com/ipfs-cluster/ipfs-cluster), so its clients (``ipfs-cluster-ctl``, asyncipfscluster, the
nft.storage client) work unchanged. Ours on top: ``GET /pins`` and
``GET /allocations`` filter by ``name`` and ``meta-<key>=<value>`` on the
server (from the pinset's index), ``GET /health/pins`` counts pins by status
on every peer, and tokens expire.

Errors are ``{"code","message"}``: 404 for what is not there, 400 for bad
input, 429 (with ``Retry-After``) when the pin queues a new pin needs are full
(``PinTracker.MaxPinQueueSize``), 500 otherwise. Streams are NDJSON with the ``X-Stream-Error`` trailer
and 204 when empty. A path ending in ``/`` is redirected (307) without it,
after auth, and always to a path on this host. Cross-origin requests follow
``cors.py``; JSON bodies need a JSON content type and are decoded within bounds
(:mod:`node.jsonlimits`).
Handlers stay thin: the cluster logic is in ``ClusterPeer``. Also ours: ``POST /pins``
with an NDJSON body pins many at once (bulk imports, ``pinion ctl state import``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from blockstore.cid import CidError, cid_from_str
from blockstore.db import disk_full_message
from cluster.allocator import AllocationError
from cluster.pin import PIN_TYPES, Pin, PinError
from cluster.pinoptions import pin_from_query
from cluster.status import parse_filter
from cluster.errors import ClusterError
from cluster.tracker import QueueFull

from ..cluster.interfaces import ClusterAPI
from ..errors import status_hint
from ..httpserver import ERROR_RESPONSE
from ..jsonlimits import is_json_type
from ..jsonlimits import loads as json_loads
from ..kuborpc.options import KuboRpcError
from ..uploads.drive import BODY_IDLE_TIMEOUT
from ..workers import PoolBusy
from .add import handle_add
from .auth import middlewares, response_headers, rest_error, token_handler
from .streams import stream_ndjson

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: pins per pinset write of a bulk ``POST /pins``
BULK_BATCH = 1000
#: longest line of a bulk ``POST /pins`` body
MAX_LINE = 64 * 1024


def error_of(exc: BaseException) -> tuple[int, str] | None:
    """HTTP status and message for an exception a handler raised (None: let aiohttp handle it).

    The status is the error's own hint (:func:`node.errors.status_hint`: 404 for a pin that is
    not there, 429 for a full pin queue, 400 for input that does not parse, 503 for busy
    workers, ...); a full disk is 507 whatever raised it; anything else is 500 naming its type."""
    if isinstance(exc, web.HTTPException):
        return None
    full = disk_full_message(exc)
    if full is not None:
        return 507, full
    status = status_hint(exc)
    if status is None:
        return (500, f"{type(exc).__name__}: {exc}") if isinstance(exc, Exception) else None
    if status != 500 or isinstance(exc, (ClusterError, KuboRpcError)):
        return status, str(exc)
    return status, f"{type(exc).__name__}: {exc}"


#: seconds a client is told to wait after a 429 (a full pin queue drains as pins complete)
RETRY_AFTER = 30


def _error(status: int, message: str) -> web.Response:
    resp = rest_error(status, message)
    if status == 429:
        resp.headers["Retry-After"] = str(RETRY_AFTER)
    return resp


def _cid(text: str) -> bytes:
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise ValueError(f"invalid CID {text!r}: {exc}") from None


def _bool(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    if value is None or value.lower() in ("false", "0", "no"):
        return False
    if value.lower() in ("", "true", "1", "yes"):
        return True
    raise ValueError(f"parameter {name}: {value!r} is not a boolean")


def _meta_filter(request: web.Request) -> dict[str, str]:
    return {k[5:]: v for k, v in request.query.items() if k.startswith("meta-") and len(k) > 5}


def make_rest_app(
    cluster: ClusterAPI,
    api_config: dict[str, Any],
    *,
    core: Any,
    executor: Executor | None = None,
    max_upload: int = 0,
    body_timeout: float = BODY_IDLE_TIMEOUT,
    health: Callable[[], list[str]] | None = None,
) -> web.Application:
    """The REST API application (see module docstring).

    ``executor`` runs uploads (the daemon's imports pool), whose client may send nothing
    for ``body_timeout`` seconds at most; ``health()`` lists what keeps the node from
    serving (``GET /health``: 204 when empty, else 503 naming it).
    """
    # auth before routing: _strict_slash's redirects come after the auth middlewares
    app = web.Application(middlewares=[*middlewares(api_config), _strict_slash, _errors], client_max_size=1024**4)
    app.on_response_prepare.append(response_headers(api_config))
    app[ERROR_RESPONSE] = _error

    async def respond_stream(request: web.Request, items: AsyncIterator[Any] | list[Any], stream: bool = True) -> web.StreamResponse:
        if isinstance(items, list):
            if not stream:
                return web.json_response(items)
            items = _aiter_list(items)
        return await stream_ndjson(request, items, to_error=error_of)

    # ------------------------------------------------------------ identity and peers
    async def h_id(_r: web.Request) -> web.StreamResponse:
        return web.json_response(await cluster.id())

    async def h_version(_r: web.Request) -> web.StreamResponse:
        return web.json_response({"version": (await cluster.id())["version"]})

    async def h_peers(request: web.Request) -> web.StreamResponse:
        return await respond_stream(request, await cluster.peers())

    async def h_peer_rm(request: web.Request) -> web.StreamResponse:
        await cluster.peer_rm(request.match_info["peer"])
        return web.Response(status=204)

    # ------------------------------------------------------------ pins
    async def h_allocations(request: web.Request) -> web.StreamResponse:
        wanted = [t.strip() for t in request.query.get("filter", "all").split(",") if t.strip()]
        for t in wanted:
            if t != "all" and t not in PIN_TYPES:
                raise ValueError(f"parameter filter: unknown pin type {t!r}")
        types = () if "all" in wanted or not wanted else tuple(wanted)

        async def items() -> AsyncIterator[dict[str, Any]]:
            async for pin in cluster.iter_pins(types=types, name=request.query.get("name") or None, meta=_meta_filter(request)):
                yield pin.to_json()

        return await respond_stream(request, items())

    async def h_allocation(request: web.Request) -> web.StreamResponse:
        return web.json_response((await cluster.get_pin(_cid(request.match_info["cid"]))).to_json())

    async def h_status_all(request: web.Request) -> web.StreamResponse:
        mask = parse_filter(request.query.get("filter", ""))
        cids = [_cid(c) for c in request.query.get("cids", "").split(",") if c.strip()] or None
        items = cluster.status_all(
            local=_bool(request, "local"),
            filter_mask=mask,
            cids=cids,
            name=request.query.get("name") or None,
            meta=_meta_filter(request),
        )
        return await respond_stream(request, items)

    async def h_status(request: web.Request) -> web.StreamResponse:
        return web.json_response(await cluster.status(_cid(request.match_info["cid"]), local=_bool(request, "local")))

    async def _pin(request: web.Request, cid: bytes) -> web.StreamResponse:
        pin, defaults = pin_from_query(cid, request.query)
        committed = await cluster.pin(pin, defaults=defaults)
        return web.json_response(committed.to_json())

    async def h_pin_bulk(request: web.Request) -> web.StreamResponse:
        """Ours: ``POST /pins`` with an NDJSON body of Pin objects (as ``/allocations`` and
        ``pinion state export`` write them) pins them all, 1,000 per pinset write. The cluster
        allocates again (``allocations`` of the input are ignored); a line without replication
        factors gets the cluster's defaults. A bad line stops the import with its number; the
        pins of the lines before it stay pinned."""
        if not is_json_type(request.content_type):
            raise web.HTTPUnsupportedMediaType(reason="the body must be application/x-ndjson (or application/json) Pin objects")
        done = 0
        batch: list[Pin] = []
        defaults: list[bool] = []
        lineno = 0

        async def flush() -> None:
            nonlocal done
            if batch:
                await cluster.pin_many(batch, defaults=defaults)
                done += len(batch)
                batch.clear()
                defaults.clear()

        try:
            async for raw in _lines(request.content):
                lineno += 1
                if not raw.strip():
                    continue
                try:
                    obj = json_loads(raw, max_bytes=MAX_LINE)
                    if not isinstance(obj, dict):
                        raise ValueError("not a JSON object")
                    pin = Pin.from_json({**obj, "allocations": []})
                except (ValueError, PinError) as exc:
                    raise ValueError(f"line {lineno}: {exc}") from None
                batch.append(pin)
                defaults.append("replication_factor_min" not in obj and "replication_factor_max" not in obj)
                if len(batch) >= BULK_BATCH:
                    await flush()
            await flush()
        except QueueFull as exc:
            raise QueueFull(f"{exc} ({done} pins before it were pinned)") from None
        except (ValueError, PinError, AllocationError) as exc:
            raise ValueError(f"{exc} ({done} pins before it were pinned)") from None
        return web.json_response({"count": done})

    async def h_pin(request: web.Request) -> web.StreamResponse:
        return await _pin(request, _cid(request.match_info["cid"]))

    async def h_pin_path(request: web.Request) -> web.StreamResponse:
        return await _pin(request, await cluster.resolve(_path(request)))

    async def h_unpin(request: web.Request) -> web.StreamResponse:
        return web.json_response((await cluster.unpin(_cid(request.match_info["cid"]))).to_json())

    async def h_unpin_path(request: web.Request) -> web.StreamResponse:
        return web.json_response((await cluster.unpin(await cluster.resolve(_path(request)))).to_json())

    async def h_recover(request: web.Request) -> web.StreamResponse:
        cid = _cid(request.match_info["cid"])
        return web.json_response(await cluster.recover(cid, local=_bool(request, "local")))

    async def h_recover_all(request: web.Request) -> web.StreamResponse:
        return await respond_stream(request, cluster.recover_all(local=_bool(request, "local")))

    async def h_add(request: web.Request) -> web.StreamResponse:
        return await handle_add(request, cluster, core, executor, respond_stream, max_upload, body_timeout)

    # ------------------------------------------------------------ health and metrics
    async def h_health(_r: web.Request) -> web.StreamResponse:
        return health_response(health)

    async def h_graph(_r: web.Request) -> web.StreamResponse:
        return web.json_response(await cluster.health_graph())

    async def h_alerts(_r: web.Request) -> web.StreamResponse:
        return web.json_response(cluster.alerts())

    async def h_pin_counts(_r: web.Request) -> web.StreamResponse:
        return web.json_response(await cluster.status_counts())

    async def h_metric_names(_r: web.Request) -> web.StreamResponse:
        return web.json_response(cluster.metric_names())

    async def h_metrics(request: web.Request) -> web.StreamResponse:
        return web.json_response(cluster.latest_metrics(request.match_info["name"]))

    r = app.router
    r.add_get("/id", h_id)
    r.add_get("/version", h_version)
    r.add_get("/peers", h_peers)
    r.add_delete("/peers/{peer}", h_peer_rm)
    r.add_post("/add", h_add)
    r.add_get("/allocations", h_allocations)
    r.add_get("/allocations/{cid}", h_allocation)
    r.add_get("/pins", h_status_all)
    r.add_post("/pins", h_pin_bulk)
    r.add_post("/pins/recover", h_recover_all)
    r.add_post("/pins/{cid}/recover", h_recover)
    r.add_post("/pins/{kind:ipfs|ipns|ipld}/{path:.+}", h_pin_path)
    r.add_delete("/pins/{kind:ipfs|ipns|ipld}/{path:.+}", h_unpin_path)
    r.add_get("/pins/{cid}", h_status)
    r.add_post("/pins/{cid}", h_pin)
    r.add_delete("/pins/{cid}", h_unpin)
    r.add_get("/health", h_health)
    r.add_get("/health/graph", h_graph)
    r.add_get("/health/alerts", h_alerts)
    r.add_get("/health/pins", h_pin_counts)
    r.add_get("/monitor/metrics", h_metric_names)
    r.add_get("/monitor/metrics/{name}", h_metrics)
    r.add_post("/token", token_handler(api_config))
    return app


def _path(request: web.Request) -> str:
    kind = request.match_info["kind"]
    if kind == "ipns":
        raise ValueError("/ipns paths cannot be resolved by this node (no IPNS)")
    return f"/{kind}/{request.match_info['path']}"


async def _lines(content: Any) -> AsyncIterator[bytes]:
    """The lines of a request body, read as they arrive (ValueError for an over-long line)."""
    buf = b""
    async for chunk in content.iter_chunked(256 * 1024):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line
        if len(buf) > MAX_LINE:
            raise ValueError(f"a line of the body is longer than {MAX_LINE} bytes")
    if buf:
        yield buf


async def _aiter_list(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


@web.middleware
async def _strict_slash(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A path ending in ``/`` is redirected (307) to the path without it, as upstream.

    The target is built from the raw (still percent-encoded) path with its leading
    slashes and backslashes collapsed to one ``/``: ``//evil.example/`` would otherwise
    send the client to another host (a network-path reference, RFC 3986 section 4.2)."""
    path = request.rel_url.raw_path
    if len(path) > 1 and path.endswith("/"):
        target = "/" + path.rstrip("/").lstrip("/\\")
        if request.query_string:
            target += "?" + request.rel_url.raw_query_string
        raise web.HTTPTemporaryRedirect(target)
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Exceptions as ``{"code","message"}`` JSON (404/400/500); unknown routes too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            resp = _error(exc.status, exc.reason if exc.status != 404 else f"404 page not found: {request.path}")
            for k in ("Allow",):
                if k in exc.headers:
                    resp.headers[k] = exc.headers[k]
            return resp
        raise
    except Exception as exc:
        mapped = error_of(exc)
        if mapped is None:
            raise
        resp = _error(*mapped)
        if isinstance(exc, PoolBusy):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp


def health_response(
    health: Callable[[], list[str]] | None, error: Callable[[int, str], web.Response] = rest_error
) -> web.Response:
    """``GET /health``: 204 when nothing keeps the node from serving, else 503 with the reasons
    (in the API's error body, ``error(status, message)``)."""
    problems = health() if health is not None else []
    if not problems:
        return web.Response(status=204)
    return error(503, "; ".join(problems))
