"""Authentication, CORS and TLS of the cluster APIs (REST and pinning service).

- Auth is on when ``ClusterAPI.BasicAuthCredentials`` (user -> password) is
  set. Basic credentials, or a Bearer JWT (HS256, ``iss`` = a configured user,
  signed with that user's password). Unlike upstream, tokens from
  ``POST /token`` carry ``exp`` (``ClusterAPI.JWTExpiry`` seconds; 0: none)
  and expired tokens are refused; a token is issued only against Basic
  credentials, never for another token. Comparisons are constant-time.
  ``OPTIONS`` and ``GET /health`` need no credentials; a refusal is 401 with
  both ``WWW-Authenticate`` challenges, in the API's own error body.
- CORS (``cors.py``): runs before auth, so a cross-origin request that is not
  allowed is refused (403) whatever credentials it carries.
- ``Headers``: extra headers on every response.
- TLS: :func:`ssl_context` from ``TLSCertFile``/``TLSKeyFile``.

A JWT is three base64url parts; HS256 is an HMAC-SHA256 over the first two,
about thirty lines with ``hmac``: no dependency needed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..jsonlimits import JsonLimitError
from ..jsonlimits import loads as json_loads
from .cors import CorsPolicy, add_cors_headers, cors_middleware
from ..errors import NodeError

REALM = 'Basic realm="Restricted IPFS Cluster API"'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: makes an API's error body: (HTTP status, message) -> response
ErrorBody = Callable[[int, str], web.StreamResponse]
#: the authenticated user of a request, and the scheme it used ("basic" or "bearer")
USER: web.RequestKey[str] = web.RequestKey("pinion_user")
SCHEME: web.RequestKey[str] = web.RequestKey("pinion_auth_scheme")


class AuthError(NodeError, ValueError):
    """Credentials that do not let the request in; the message says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthError("malformed token") from None


def make_jwt(user: str, password: str, expiry: float, now: float | None = None) -> str:
    """An HS256 JWT for ``user`` signed with ``password`` (``exp`` after ``expiry`` s; 0: none)."""
    now = time.time() if now is None else now
    claims: dict[str, Any] = {"iss": user, "iat": int(now)}
    if expiry > 0:
        claims["exp"] = int(now + expiry)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(password.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def verify_jwt(token: str, credentials: dict[str, str], now: float | None = None) -> str:
    """The user a valid token was issued to; AuthError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("malformed token")
    try:
        header = json_loads(_unb64(parts[0]), max_depth=4, max_bytes=4096)
        claims = json_loads(_unb64(parts[1]), max_depth=4, max_bytes=4096)
    except JsonLimitError:
        raise AuthError("malformed token") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise AuthError("only HS256 tokens are accepted")
    user = claims.get("iss")
    password = credentials.get(user) if isinstance(user, str) else None
    if password is None:
        raise AuthError("token issuer is not a known user")
    expected = hmac.new(password.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(parts[2])):
        raise AuthError("bad token signature")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, (int, float)) or (time.time() if now is None else now) >= exp):
        raise AuthError("token expired")
    return user


def check_basic(value: str, credentials: dict[str, str]) -> str:
    """The user of a valid ``Basic`` credential; AuthError otherwise (constant-time password check)."""
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("malformed basic credentials") from None
    expected = credentials.get(user)
    ok = hmac.compare_digest((expected or "\x00").encode(), password.encode())
    if expected is None or not ok:
        raise AuthError("wrong user or password")
    return user


def authenticate(request: web.Request, credentials: dict[str, str]) -> str:
    """The user behind the request's Authorization header; AuthError when missing or invalid."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        return check_basic(value.strip(), credentials)
    if scheme.lower() == "bearer" and value:
        return verify_jwt(value.strip(), credentials)
    raise AuthError("credentials required")


def unauthorized(message: str, error: ErrorBody | None = None) -> web.StreamResponse:
    """401 with both challenges, as IPFS Cluster answers; ``error(status, message)`` makes the
    body (default: the REST API's ``{"code","message"}``)."""
    text = f"Unauthorized: {message}"
    resp = error(401, text) if error is not None else web.json_response({"code": 401, "message": text}, status=401)
    resp.headers.add("WWW-Authenticate", 'Bearer error="invalid_token"')
    resp.headers.add("WWW-Authenticate", REALM)
    return resp


def rest_error(status: int, message: str) -> web.Response:
    """The REST API's error body ``{"code","message"}``."""
    return web.json_response({"code": status, "message": message}, status=status)


def middlewares(api_config: dict[str, Any], error: ErrorBody = rest_error) -> list[Any]:
    """aiohttp middlewares for CORS (node/restapi/cors.py) and auth from the ``ClusterAPI``
    config section, outermost first; ``error(status, message)`` makes refusal bodies. Register
    :func:`response_headers` on the app's ``on_response_prepare`` as well."""
    credentials: dict[str, str] | None = api_config.get("BasicAuthCredentials") or None

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if credentials is None or request.method == "OPTIONS" or (request.method == "GET" and request.path == "/health"):
            return await handler(request)
        try:
            request[USER] = authenticate(request, credentials)
        except AuthError as exc:
            return unauthorized(str(exc), error)
        request[SCHEME] = request.headers["Authorization"].partition(" ")[0].lower()
        return await handler(request)

    return [cors_middleware(CorsPolicy.from_config(api_config), error), auth]


def response_headers(api_config: dict[str, Any]) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """``on_response_prepare`` signal: the CORS headers and ``ClusterAPI.Headers`` on every
    response, streamed ones included."""
    extra = {str(k): str(v) for k, v in (api_config.get("Headers") or {}).items()}

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        for k, v in extra.items():
            response.headers.setdefault(k, v)
        await add_cors_headers(request, response)

    return add


def token_handler(api_config: dict[str, Any], error: ErrorBody = rest_error) -> Handler:
    """``POST /token``: a JWT for a user who sent Basic credentials. A Bearer token cannot
    buy a new one, so ``JWTExpiry`` bounds how long a stolen token works (IPFS Cluster
    renews tokens for their bearer). 401 when auth is not configured."""

    async def handler(request: web.Request) -> web.StreamResponse:
        credentials = api_config.get("BasicAuthCredentials") or None
        user = request.get(USER)
        if credentials is None or user is None:
            return unauthorized("tokens need BasicAuthCredentials in the ClusterAPI config", error)
        if request.get(SCHEME) != "basic":
            return unauthorized("tokens are issued only against Basic credentials", error)
        token = make_jwt(user, credentials[user], float(api_config.get("JWTExpiry", 0) or 0))
        return web.json_response({"token": token})

    return handler


def ssl_context(api_config: dict[str, Any]) -> ssl.SSLContext | None:
    """A server TLS context when ``TLSCertFile`` and ``TLSKeyFile`` are set (None: plain HTTP)."""
    cert, key = api_config.get("TLSCertFile") or "", api_config.get("TLSKeyFile") or ""
    if not cert and not key:
        return None
    if not cert or not key:
        raise ValueError("ClusterAPI TLS needs both TLSCertFile and TLSKeyFile")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx
