"""Authentication, CORS and TLS of the cluster APIs (REST and pinning service).

- Auth is on when ``ClusterAPI.BasicAuthCredentials`` (user -> password) is
  set. Basic credentials, or a Bearer JWT (HS256, ``iss`` = a configured user,
  signed with that user's password). Unlike upstream, tokens from
  ``POST /token`` carry ``exp`` (``ClusterAPI.JWTExpiry`` seconds; 0: none)
  and expired tokens are refused. Comparisons are constant-time. ``OPTIONS``
  and ``GET /health`` need no credentials; a refusal is 401 with both
  ``WWW-Authenticate`` challenges.
- CORS: ``CORSAllowedOrigins``/``CORSAllowedMethods``; preflights answered.
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

REALM = 'Basic realm="Restricted IPFS Cluster API"'
EXPOSED = "Content-Type, X-Stream-Output, X-Chunked-Output, X-Content-Length, X-Stream-Error"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AuthError(ValueError):
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
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
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


def unauthorized(message: str) -> web.Response:
    """401 with both challenges, as IPFS Cluster answers."""
    resp = web.json_response({"code": 401, "message": f"Unauthorized: {message}"}, status=401)
    resp.headers.add("WWW-Authenticate", 'Bearer error="invalid_token"')
    resp.headers.add("WWW-Authenticate", REALM)
    return resp


def _origin_ok(origin: str, allowed: list[str]) -> bool:
    return "*" in allowed or origin in allowed


def middlewares(api_config: dict[str, Any]) -> list[Any]:
    """aiohttp middlewares for extra headers, CORS and auth from the ``ClusterAPI`` config section."""
    credentials: dict[str, str] | None = api_config.get("BasicAuthCredentials") or None
    origins = list(api_config.get("CORSAllowedOrigins") or ["*"])
    methods = [m.upper() for m in (api_config.get("CORSAllowedMethods") or ["GET"])]
    extra = {str(k): str(v) for k, v in (api_config.get("Headers") or {}).items()}

    @web.middleware
    async def headers_and_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
            wanted = request.headers["Access-Control-Request-Method"].upper()
            if not _origin_ok(origin, origins) or wanted not in methods:
                return web.Response(status=403, text="CORS request not allowed")
            return web.Response(
                status=204,
                headers={
                    **extra,
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ", ".join(methods),
                    "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", ""),
                    "Access-Control-Allow-Credentials": "true",
                    "Vary": "Origin",
                },
            )
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = exc
        if not resp.prepared:
            for k, v in extra.items():
                resp.headers.setdefault(k, v)
            if origin and _origin_ok(origin, origins):
                resp.headers["Access-Control-Allow-Origin"] = origin
                resp.headers["Access-Control-Allow-Credentials"] = "true"
                resp.headers["Access-Control-Expose-Headers"] = EXPOSED
                resp.headers["Vary"] = "Origin"
        if isinstance(resp, web.HTTPException):
            raise resp
        return resp

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if credentials is None or request.method == "OPTIONS" or (request.method == "GET" and request.path == "/health"):
            return await handler(request)
        try:
            request["user"] = authenticate(request, credentials)
        except AuthError as exc:
            return unauthorized(str(exc))
        return await handler(request)

    return [headers_and_cors, auth]


def token_handler(api_config: dict[str, Any]) -> Handler:
    """``POST /token``: a JWT for the authenticated user (401 when auth is not configured)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        credentials = api_config.get("BasicAuthCredentials") or None
        user = request.get("user")
        if credentials is None or user is None:
            return unauthorized("tokens need BasicAuthCredentials in the ClusterAPI config")
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
