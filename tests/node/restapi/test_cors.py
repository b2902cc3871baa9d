"""node/restapi/cors.py: the cross-origin rules, as a pure policy and as the middleware of a live aiohttp app."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any

from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from node.restapi.auth import middlewares, response_headers
from node.restapi.cors import CorsPolicy

OWN = ("http://api.local:9094", "https://api.local:9094")
APP = "https://app.example"


def test_defaults_follow_ipfs_cluster_any_origin_get_only_never_credentials_for_star() -> None:
    policy = CorsPolicy.from_config({"CORSAllowedOrigins": ["*"], "CORSAllowedMethods": ["GET"], "CORSAllowCredentials": True})
    get = policy.decide("GET", "http://evil.example", OWN)
    assert get.allowed and get.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in get.headers
    for method in ("POST", "DELETE", "PUT", "PATCH"):
        assert not policy.decide(method, "http://evil.example", OWN).allowed
        assert not policy.decide("OPTIONS", "http://evil.example", OWN, request_method=method).allowed
    assert policy.decide("POST", None, OWN).allowed  # no Origin: not a browser's cross-origin request
    assert policy.decide("POST", OWN[0], OWN).allowed  # the API's own origin
    assert not policy.decide("POST", "null", OWN).allowed  # sandboxed frames, file:// pages


def test_a_listed_origin_gets_its_methods_and_credentials() -> None:
    policy = CorsPolicy.from_config(
        {"CORSAllowedOrigins": [APP], "CORSAllowedMethods": ["GET", "POST"], "CORSAllowCredentials": True, "CORSMaxAge": 600}
    )
    post = policy.decide("POST", APP, OWN)
    assert post.allowed and post.headers["Access-Control-Allow-Origin"] == APP
    assert post.headers["Access-Control-Allow-Credentials"] == "true"
    assert not policy.decide("DELETE", APP, OWN).allowed
    assert not policy.decide("GET", "http://evil.example", OWN).allowed
    pre = policy.decide("OPTIONS", APP, OWN, request_method="POST", request_headers="Content-Type, Authorization")
    assert pre.allowed and pre.preflight and pre.headers["Access-Control-Allow-Methods"] == "GET, POST, HEAD"
    assert pre.headers["Access-Control-Allow-Headers"] == "content-type, authorization"
    assert pre.headers["Access-Control-Max-Age"] == "600"
    assert not policy.decide("OPTIONS", APP, OWN, request_method="POST", request_headers="X-Custom").allowed
    no_creds = CorsPolicy.from_config({"CORSAllowedOrigins": [APP], "CORSAllowedMethods": ["GET"], "CORSAllowCredentials": False})
    assert "Access-Control-Allow-Credentials" not in no_creds.decide("GET", APP, OWN).headers


ORIGINS = st.sampled_from(["*", APP, "http://evil.example", "null", "http://api.local:9094"])
METHODS = st.sampled_from(["GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"])


@given(
    st.lists(ORIGINS, max_size=3),
    st.lists(METHODS.filter(lambda m: m != "OPTIONS"), max_size=4),
    st.booleans(),
    st.one_of(st.none(), ORIGINS.filter(lambda o: o != "*")),
    METHODS,
    st.one_of(st.none(), METHODS),
)
def test_never_credentials_for_an_unlisted_origin_never_an_unconfigured_method(
    origins: list[str], methods: list[str], creds: bool, origin: str | None, method: str, requested: str | None
) -> None:
    policy = CorsPolicy.from_config({"CORSAllowedOrigins": origins, "CORSAllowedMethods": methods, "CORSAllowCredentials": creds})
    d = policy.decide(method, origin, OWN, request_method=requested if method == "OPTIONS" else None)
    if origin is None or origin in OWN:
        assert d.allowed and not d.headers
        return
    if d.headers.get("Access-Control-Allow-Origin") == origin:
        assert origin in origins  # echoed only when listed by name
    if d.headers.get("Access-Control-Allow-Credentials"):
        assert creds and origin in origins and d.headers["Access-Control-Allow-Origin"] == origin
    granted = {m.strip() for m in d.headers.get("Access-Control-Allow-Methods", "").split(",") if m.strip()}
    assert granted <= set(policy.methods)
    if d.allowed and not d.preflight and method != "OPTIONS":
        assert method in policy.methods and (origin in origins or "*" in origins)


def _run_app(config: dict[str, Any], checks: Any) -> None:
    async def main() -> None:
        async def ok(_r: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()  # streamed, as the REST API's lists: headers still added
            await resp.prepare(_r)
            await resp.write(b"done")
            return resp

        app = web.Application(middlewares=middlewares(config))
        app.on_response_prepare.append(response_headers(config))
        app.router.add_route("*", "/x", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            await asyncio.to_thread(checks, runner.addresses[0][1])
        finally:
            await runner.cleanup()

    asyncio.run(main())


def _call(port: int, method: str, headers: dict[str, str]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, "/x", headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.headers
    finally:
        conn.close()


def test_middleware_with_an_operator_listed_origin() -> None:
    config = {"CORSAllowedOrigins": [APP], "CORSAllowedMethods": ["GET", "POST"], "CORSAllowCredentials": True, "Headers": {"X-Extra": "1"}}

    def checks(port: int) -> None:
        status, headers = _call(port, "POST", {"Origin": APP})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == APP and headers["Access-Control-Allow-Credentials"] == "true"
        assert headers["X-Extra"] == "1"
        assert _call(port, "DELETE", {"Origin": APP})[0] == 403
        assert _call(port, "POST", {"Origin": "http://evil.example"})[0] == 403
        assert _call(port, "GET", {"Origin": "http://evil.example"})[0] == 403
        status, headers = _call(port, "OPTIONS", {"Origin": APP, "Access-Control-Request-Method": "POST"})
        assert status == 204 and headers["Access-Control-Allow-Methods"] == "GET, POST, HEAD"
        assert _call(port, "OPTIONS", {"Origin": APP, "Access-Control-Request-Method": "DELETE"})[0] == 403
        assert _call(port, "DELETE", {})[0] == 200  # no Origin: a CLI, not a page

    _run_app(config, checks)
