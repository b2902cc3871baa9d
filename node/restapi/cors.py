"""Cross-origin requests to the REST and pinning service APIs: who may call what from a web page.

The rules, from the ``ClusterAPI.CORS*`` keys (IPFS Cluster's ``cors_*`` REST API
settings and defaults: any origin, ``GET`` only, credentials allowed):

- A request without ``Origin``, or whose ``Origin`` is the API's own
  (``http(s)://<Host>``), is not cross-origin: these rules do not apply.
- A cross-origin request is served only when its origin is allowed
  (``CORSAllowedOrigins``, ``"*"`` = any) **and** its method is allowed
  (``CORSAllowedMethods``). Anything else is refused with 403 before it reaches
  a handler or needs credentials, as the kubo RPC refuses cross-origin calls.
  Browsers send ``Origin`` with every cross-origin request and every ``POST``,
  so a page cannot pin, unpin or upload through a user's browser unless the
  operator listed its origin and that method. (IPFS Cluster, through rs/cors,
  only leaves the CORS headers off and still runs the request.)
- ``Access-Control-Allow-Origin`` names the origin, with
  ``Access-Control-Allow-Credentials: true`` (``CORSAllowCredentials``), only for
  an origin listed by name. An origin allowed through ``"*"`` gets ``*`` and never
  credentials: an arbitrary page is never let to read answers sent with the
  user's credentials (https://fetch.spec.whatwg.org/#cors-protocol-and-credentials).
- A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) grants only a
  configured method and configured request headers (``CORSAllowedHeaders``;
  empty: ``Accept``, ``Content-Type``, ``Origin``, ``X-Requested-With`` as rs/cors,
  plus ``Authorization`` when the origin is listed by name); it is refused with 403
  otherwise. ``CORSMaxAge`` > 0 is sent as ``Access-Control-Max-Age``.

:class:`CorsPolicy` decides (plain data in, a :class:`CorsDecision` out);
:func:`cors_middleware` applies it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: methods browsers may send without a preflight, and the ones that change nothing
SAFE_METHODS = ("GET", "HEAD")
#: request headers granted when CORSAllowedHeaders is empty (rs/cors's defaults)
DEFAULT_HEADERS = ("accept", "content-type", "origin", "x-requested-with")


@dataclass(frozen=True)
class CorsDecision:
    """What to do with one request: serve it (with ``headers`` added) or refuse it (403, ``reason``)."""

    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    preflight: bool = False


@dataclass(frozen=True)
class CorsPolicy:
    """The cross-origin rules of one API (see module docstring)."""

    origins: tuple[str, ...] = ("*",)
    methods: tuple[str, ...] = ("GET",)
    headers: tuple[str, ...] = ()
    exposed: tuple[str, ...] = ()
    credentials: bool = True
    max_age: int = 0

    @classmethod
    def from_config(cls, api: dict[str, Any]) -> CorsPolicy:
        """The policy of a ``ClusterAPI`` config section."""
        methods = tuple(m.upper() for m in (api.get("CORSAllowedMethods") or ["GET"]))
        if "GET" in methods and "HEAD" not in methods:
            methods += ("HEAD",)
        return cls(
            origins=tuple(api.get("CORSAllowedOrigins") or ()),
            methods=methods,
            headers=tuple(h.lower() for h in (api.get("CORSAllowedHeaders") or ())),
            exposed=tuple(api.get("CORSExposedHeaders") or ()),
            credentials=bool(api.get("CORSAllowCredentials", True)),
            max_age=int(api.get("CORSMaxAge") or 0),
        )

    def _listed(self, origin: str) -> bool:
        return origin in self.origins

    def _origin_headers(self, origin: str) -> dict[str, str]:
        if self._listed(origin):
            out = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
            if self.credentials:
                out["Access-Control-Allow-Credentials"] = "true"
            return out
        return {"Access-Control-Allow-Origin": "*", "Vary": "Origin"}

    def decide(
        self,
        method: str,
        origin: str | None,
        own_origins: tuple[str, ...],
        request_method: str | None = None,
        request_headers: str = "",
    ) -> CorsDecision:
        """The decision for a request with this ``method`` and ``Origin`` header.

        ``own_origins``: the API's own origins (``http://host:port`` as the client
        addressed it). ``request_method``/``request_headers``: the preflight's
        ``Access-Control-Request-Method``/``-Headers`` (None: not a preflight)."""
        method = method.upper()
        if origin is None or origin in own_origins:
            return CorsDecision(True)
        origin_ok = self._listed(origin) or "*" in self.origins
        if method == "OPTIONS" and request_method is not None:
            wanted = request_method.strip().upper()
            if not origin_ok:
                return CorsDecision(False, reason=f"origin {origin} is not allowed", preflight=True)
            if wanted not in self.methods:
                return CorsDecision(False, reason=f"method {wanted} is not allowed from another origin", preflight=True)
            asked = [h.strip().lower() for h in request_headers.split(",") if h.strip()]
            granted = self.headers or DEFAULT_HEADERS + (("authorization",) if self._listed(origin) else ())
            refused = [h for h in asked if h not in granted]
            if refused:
                return CorsDecision(False, reason=f"request header {refused[0]} is not allowed", preflight=True)
            headers = self._origin_headers(origin)
            headers["Access-Control-Allow-Methods"] = ", ".join(self.methods)
            if asked:
                headers["Access-Control-Allow-Headers"] = ", ".join(asked)
            if self.max_age > 0:
                headers["Access-Control-Max-Age"] = str(self.max_age)
            return CorsDecision(True, headers, preflight=True)
        if not origin_ok:
            return CorsDecision(False, reason=f"origin {origin} is not allowed")
        if method not in self.methods and method != "OPTIONS":
            return CorsDecision(False, reason=f"method {method} is not allowed from another origin")
        headers = self._origin_headers(origin)
        if self.exposed:
            headers["Access-Control-Expose-Headers"] = ", ".join(self.exposed)
        return CorsDecision(True, headers)


def own_origins(request: web.Request) -> tuple[str, ...]:
    """The origins a page served by this API itself would send."""
    return (f"http://{request.host}", f"https://{request.host}")


#: the CORS headers the middleware decided for a request, added when its response is prepared
CORS_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("pinion_cors_headers")


def cors_middleware(policy: CorsPolicy, refuse: Callable[[int, str], web.StreamResponse]) -> Any:
    """An aiohttp middleware applying ``policy``; ``refuse(403, message)`` makes the refusal body.
    Register :func:`add_cors_headers` on the app's ``on_response_prepare`` too (streamed
    responses are prepared inside their handler)."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        decision = policy.decide(
            request.method,
            request.headers.get("Origin"),
            own_origins(request),
            request.headers.get("Access-Control-Request-Method") if request.method == "OPTIONS" else None,
            request.headers.get("Access-Control-Request-Headers", ""),
        )
        if not decision.allowed:
            resp = refuse(403, f"cross-origin request refused: {decision.reason}")
            resp.headers["Vary"] = "Origin"
            return resp
        if decision.preflight:
            return web.Response(status=204, headers=decision.headers)
        request[CORS_HEADERS] = decision.headers
        return await handler(request)

    return cors


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` signal: the CORS headers decided for the request."""
    headers = request.get(CORS_HEADERS)
    if headers:
        response.headers.update(headers)
