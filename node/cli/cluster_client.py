"""A synchronous client of the IPFS Cluster REST API (a Pinion peer's, or IPFS Cluster's own).

``pinion ctl`` and ``pinion top`` use it. Addresses are multiaddrs
(``/ip4/127.0.0.1/tcp/9094``, ``/dns4/host/tcp/9094``) or URLs
(``http://``, ``https://``). Streams are read line by line as NDJSON and the
``X-Stream-Error`` trailer is checked at their end; error bodies
``{"code","message"}`` become one :class:`ClusterClientError` with the message.
Uploads stream from disk (multipart, chunked), never read whole into memory.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from .multipart_body import multipart_body, walk_parts
from ..errors import NodeError

DEFAULT_API = "/ip4/127.0.0.1/tcp/9094"


class ClusterClientError(NodeError, RuntimeError):
    """The API answered an error, or could not be reached; the message says which."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def api_url(addr: str) -> str:
    """An ``http(s)://host:port`` URL for a multiaddr or URL (ClusterClientError when neither)."""
    if addr.startswith(("http://", "https://")):
        return addr.rstrip("/")
    parts = addr.strip("/").split("/")
    if len(parts) >= 4 and parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6") and parts[2] == "tcp":
        host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        scheme = "https" if "https" in parts[4:] or "tls" in parts[4:] else "http"
        return f"{scheme}://{host}:{int(parts[3])}"
    raise ClusterClientError(f"bad API address {addr!r}: use a multiaddr like {DEFAULT_API} or an http(s):// URL")


def default_host() -> str:
    """The REST API of the local repo's running daemon, else IPFS Cluster's default address."""
    from ..repo import ENDPOINTS_FILE, repo_path

    try:
        ep = json.loads((Path(repo_path()) / ENDPOINTS_FILE).read_text())
        return str(ep.get("cluster_api") or DEFAULT_API)
    except (OSError, ValueError):
        return DEFAULT_API


class _TrailerResponse(http.client.HTTPResponse):
    """An HTTPResponse that keeps the trailer fields of a chunked body (http.client drops them)."""

    trailers: dict[str, str]

    def _read_and_discard_trailer(self) -> None:
        self.trailers = {}
        while True:
            line = self.fp.readline(65537)
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.trailers[name.strip().lower()] = value.strip()


class ClusterClient:
    """Calls of the REST API at ``addr`` (see module docstring)."""

    def __init__(self, addr: str = DEFAULT_API, *, basic_auth: str | None = None, bearer: str | None = None, timeout: float | None = 60.0) -> None:
        self.url = api_url(addr)
        split = urlsplit(self.url)
        self._https = split.scheme == "https"
        self._host = split.hostname or "127.0.0.1"
        self._port = split.port or (443 if self._https else 80)
        self.timeout = timeout
        self._headers: dict[str, str] = {}
        if basic_auth:
            if ":" not in basic_auth:
                raise ClusterClientError("--basic-auth must be user:password")
            self._headers["Authorization"] = "Basic " + base64.b64encode(basic_auth.encode()).decode()
        elif bearer:
            self._headers["Authorization"] = f"Bearer {bearer}"

    # ------------------------------------------------------------ transport
    def _conn(self) -> http.client.HTTPConnection:
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        conn.response_class = _TrailerResponse
        return conn

    def request(self, method: str, path: str, query: dict[str, Any] | list[tuple[str, str]] | None = None, *, body: Any = None, headers: dict[str, str] | None = None) -> _TrailerResponse:
        """Send a request; the open response (ClusterClientError on error statuses)."""
        items = query.items() if isinstance(query, dict) else (query or [])
        pairs = [(k, ("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in items if v is not None]
        url = path + (("?" + urlencode(pairs)) if pairs else "")
        conn = self._conn()
        try:
            conn.request(method, url, body=body, headers={**self._headers, **(headers or {})}, encode_chunked=body is not None and not isinstance(body, bytes))
            resp = conn.getresponse()
        except (ConnectionRefusedError, OSError) as exc:
            conn.close()
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
            raise ClusterClientError(f"cannot reach the cluster API at {self.url}: {reason}") from None
        except http.client.HTTPException as exc:
            conn.close()
            raise ClusterClientError(f"{method} {path} failed: {exc}") from None
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            raise ClusterClientError(_message(resp.status, raw), resp.status)
        return resp  # type: ignore[return-value]

    def json(self, method: str, path: str, query: Any = None) -> Any:
        """A request whose answer is one JSON value (None for 204)."""
        resp = self.request(method, path, query)
        try:
            data = resp.read()
        finally:
            resp.close()
        return json.loads(data) if data.strip() else None

    def stream(self, method: str, path: str, query: Any = None, *, body: Any = None, headers: dict[str, str] | None = None) -> Iterator[Any]:
        """An NDJSON stream's objects; ClusterClientError when the trailer reports an error."""
        resp = self.request(method, path, query, body=body, headers=headers)
        try:
            for line in resp:
                line = line.strip()
                if line:
                    yield json.loads(line)
            error = getattr(resp, "trailers", {}).get("x-stream-error", "")
            if error:
                raise ClusterClientError(f"the stream ended with an error: {error}")
        finally:
            resp.close()

    # ------------------------------------------------------------ API calls
    def id(self) -> dict[str, Any]:
        """``GET /id``."""
        return self.json("GET", "/id")

    def peers(self) -> list[dict[str, Any]]:
        """``GET /peers``."""
        return list(self.stream("GET", "/peers"))

    def peer_rm(self, peer: str) -> None:
        """``DELETE /peers/{peer}``."""
        self.json("DELETE", f"/peers/{peer}")

    def pin(self, cid_or_path: str, options: dict[str, Any]) -> dict[str, Any]:
        """``POST /pins/{cid}`` (or ``/pins/ipfs/...`` for a path) with pin options as query."""
        path = "/pins" + (cid_or_path if cid_or_path.startswith("/") else f"/{cid_or_path}")
        return self.json("POST", path, options)

    def pin_bulk(self, lines: Iterator[bytes]) -> int:
        """Pinion's bulk ``POST /pins``: an NDJSON stream of Pin objects, sent chunked; the count pinned."""
        resp = self.request("POST", "/pins", body=lines, headers={"Content-Type": "application/x-ndjson"})
        try:
            return int(json.loads(resp.read())["count"])
        finally:
            resp.close()

    def unpin(self, cid_or_path: str) -> dict[str, Any]:
        """``DELETE /pins/{cid}``."""
        path = "/pins" + (cid_or_path if cid_or_path.startswith("/") else f"/{cid_or_path}")
        return self.json("DELETE", path)

    def allocations(self, filter: str = "all", **query: str) -> Iterator[dict[str, Any]]:
        """``GET /allocations`` (pins of the pinset)."""
        return self.stream("GET", "/allocations", {"filter": filter, **query})

    def allocation(self, cid: str) -> dict[str, Any]:
        """``GET /allocations/{cid}``."""
        return self.json("GET", f"/allocations/{cid}")

    def status(self, cid: str, local: bool = False) -> dict[str, Any]:
        """``GET /pins/{cid}``."""
        return self.json("GET", f"/pins/{cid}", {"local": local} if local else None)

    def status_all(self, *, local: bool = False, filter: str = "", cids: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """``GET /pins`` (streamed GlobalPinInfo)."""
        query = {"local": local or None, "filter": filter or None, "cids": ",".join(cids) if cids else None}
        return self.stream("GET", "/pins", query)

    def recover(self, cid: str, local: bool = False) -> dict[str, Any]:
        """``POST /pins/{cid}/recover``."""
        return self.json("POST", f"/pins/{cid}/recover", {"local": local} if local else None)

    def recover_all(self, local: bool = False) -> Iterator[dict[str, Any]]:
        """``POST /pins/recover``."""
        return self.stream("POST", "/pins/recover", {"local": local} if local else None)

    def add(self, paths: list[str], query: dict[str, Any], *, recursive: bool = False, progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
        """``POST /add``: files and directories streamed from disk; yields AddedOutput objects."""
        hidden = bool(query.get("hidden"))
        boundary = uuid.uuid4().hex

        def parts() -> Iterator[tuple[str, str, Any]]:
            for path in paths:
                if os.path.isdir(path) and not recursive:
                    raise ClusterClientError(f"{path} is a directory, use -r to add directories")
                if not os.path.lexists(path):
                    raise ClusterClientError(f"{path}: no such file or directory")
                yield from walk_parts(path, hidden)

        def body() -> Iterator[bytes]:
            for chunk in multipart_body(parts(), boundary):
                if progress is not None:
                    progress(len(chunk))
                yield chunk

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return self.stream("POST", "/add", query, body=body(), headers=headers)

    def metric_names(self) -> list[str]:
        """``GET /monitor/metrics``."""
        return self.json("GET", "/monitor/metrics") or []

    def metrics(self, name: str) -> list[dict[str, Any]]:
        """``GET /monitor/metrics/{name}``."""
        return self.json("GET", f"/monitor/metrics/{name}") or []

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /health/alerts``."""
        return self.json("GET", "/health/alerts") or []

    def graph(self) -> dict[str, Any]:
        """``GET /health/graph``."""
        return self.json("GET", "/health/graph")


def _message(status: int, raw: bytes) -> str:
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict) and obj.get("message"):
            return str(obj["message"])
    except ValueError:
        pass
    text = raw.decode(errors="replace").strip()
    return f"HTTP {status}" + (f": {text[:300]}" if text else "")
