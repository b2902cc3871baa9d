"""A synchronous client of a running daemon's kubo RPC, shaped like :class:`node.core.CoreAPI`.

The CLI uses it when ``$PINION_PATH/api`` names a daemon that answers: same method names, same
return types, same exceptions (:class:`~node.errors.NotFound`,
:class:`~node.errors.BadRequest`, :class:`~node.errors.CoreError`), so every
command works the same online and offline. Uploads are sent as kubo's client
sends them (multipart, chunked, streamed from disk); downloads stream.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import urlencode

from blockstore.carimport import CarImportResult
from blockstore.cid import CidError, cid_from_str, cid_to_str, multihash_of
from blockstore.exporter import DirEntry
from blockstore.importer import AddedEntry

from ..config import ConfigError, tcp_host_port
from ..errors import BadRequest, CoreError, NotFound
from .multipart_body import READ_SIZE, multipart_body, walk_parts

Progress = Callable[[int], None] | None

_TYPE_NAMES = {1: "directory", 2: "file", 3: "metadata", 4: "symlink"}


def _cid(text: str) -> bytes:
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise CoreError(f"daemon answered an invalid CID: {exc}") from None


def _bool(v: bool) -> str:
    return "true" if v else "false"


#: seconds the CLI waits for a TCP connection to the address of the ``api`` file
PROBE_TIMEOUT = 2.0


def api_answers(api_multiaddr: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether something accepts TCP connections at the daemon API address ``api_multiaddr``
    (False for a malformed address)."""
    import socket

    try:
        host, port = tcp_host_port(api_multiaddr)
    except ConfigError:
        return False
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class KuboClient:
    """The node's operations over the daemon's RPC API at ``api_multiaddr``."""

    def __init__(self, api_multiaddr: str, timeout: float | None = None, auth: tuple[str, str] | None = None) -> None:
        """``auth``: (user, password) sent as Basic credentials (``API.BasicAuthCredentials``)."""
        try:
            self.host, self.port = tcp_host_port(api_multiaddr)
        except ConfigError as exc:
            raise CoreError(f"bad daemon API address in the api file: {exc}") from None
        if self.host in ("0.0.0.0", "::"):
            self.host = "127.0.0.1"
        self.api = api_multiaddr
        self.timeout = timeout
        self._auth_header: dict[str, str] = {}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._auth_header = {"Authorization": f"Basic {token}"}

    # ------------------------------------------------------------ transport
    def _open(
        self,
        command: str,
        args: list[str] | tuple[str, ...] = (),
        opts: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        query = [("arg", a) for a in args]
        for k, v in (opts or {}).items():
            if v is None:
                continue
            query.append((k, _bool(v) if isinstance(v, bool) else str(v)))
        url = f"/api/v0/{command}" + (("?" + urlencode(query)) if query else "")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(
                "POST",
                url,
                body=body,
                headers={**self._auth_header, **(headers or {})},
                encode_chunked=body is not None and not isinstance(body, bytes),
            )
            resp = conn.getresponse()
        except ConnectionRefusedError:
            conn.close()
            raise CoreError(
                f"cannot reach the daemon at {self.api} (is it running? a stale 'api' file in the repo can be removed)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise CoreError(f"daemon request {command} failed: {exc}") from None
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            raise _error_of(resp.status, raw)
        return resp

    def _json(self, command: str, args: list[str] | tuple[str, ...] = (), opts: dict[str, Any] | None = None) -> Any:
        resp = self._open(command, args, opts)
        try:
            return json.loads(resp.read())
        finally:
            resp.close()

    def _lines(self, resp: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
        try:
            for line in resp:
                line = line.strip()
                if line:
                    yield json.loads(line)
        finally:
            resp.close()

    def _stream(self, resp: http.client.HTTPResponse) -> Iterator[bytes]:
        try:
            while True:
                try:
                    chunk = resp.read1(READ_SIZE)
                except http.client.IncompleteRead as exc:
                    raise CoreError(f"the daemon's stream ended early: {exc}") from None
                if not chunk:
                    break
                yield chunk
        finally:
            resp.close()

    # ------------------------------------------------------------ add
    def add_path(
        self,
        path: str,
        params: Any,
        *,
        recursive: bool = False,
        pin: bool = True,
        progress: Progress = None,
    ) -> Iterator[Any]:
        """Upload a file or (with ``recursive``) a directory tree; yield the ``added`` entries."""
        if not os.path.lexists(path):
            raise BadRequest(f"{path}: no such file or directory")
        if os.path.isdir(path) and not recursive:
            raise BadRequest(f"{path} is a directory, use -r to add directories")
        hidden = bool(getattr(params, "hidden", False))
        parts = walk_parts(path, hidden)
        return self._add(parts, params, pin=pin, progress=progress)

    def add_stream(
        self, stream: IO[bytes], name: str, params: Any, *, pin: bool = True, progress: Progress = None
    ) -> Any:
        """Upload one file read from ``stream``; return its entry."""
        entries = list(self._add(iter([(name, "application/octet-stream", stream)]), params, pin=pin, progress=progress))
        if not entries:
            raise CoreError("the daemon returned no entry for the upload")
        last = entries[-1]
        return AddedEntry(name=name or "", cid=last.cid, size=last.size)

    def _add(self, parts: Iterator[tuple[str, str, Any]], params: Any, *, pin: bool, progress: Progress) -> Iterator[Any]:
        opts = _params_to_options(params)
        opts["pin"] = pin
        opts["progress"] = progress is not None
        boundary = uuid.uuid4().hex
        body = multipart_body(parts, boundary)
        resp = self._open("add", (), opts, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        reported: dict[str, int] = {}
        for obj in self._lines(resp):
            if "Hash" in obj:
                yield AddedEntry(name=obj.get("Name", ""), cid=_cid(obj["Hash"]), size=int(obj.get("Size") or 0))
            elif "Bytes" in obj and progress is not None:
                name = obj.get("Name", "")
                n = int(obj["Bytes"])
                delta = n - reported.get(name, 0)
                reported[name] = n
                if delta > 0:
                    progress(delta)

    # ------------------------------------------------------------ read
    def cat(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a file's bytes."""
        if offset < 0 or (length is not None and length < 0):
            raise BadRequest("offset and length must not be negative")
        yield from self._stream(self._open("cat", [path], {"offset": offset or None, "length": length}))

    def ls(self, path: str) -> list[DirEntry]:
        """The entries of a directory."""
        out = self._json("ls", [path])
        entries = []
        for obj in out.get("Objects", []):
            for link in obj.get("Links", []):
                t = _TYPE_NAMES.get(int(link.get("Type", 0)), "unknown")
                size = int(link.get("Size") or 0) if t in ("file", "symlink") else None
                target = link.get("Target") or None
                entries.append(DirEntry(name=link["Name"], cid=_cid(link["Hash"]), size=size, type=t, target=target))
        return entries

    def resolve(self, path: str) -> bytes:
        """The CID a path points to."""
        out = self._json("resolve", [path])
        return _cid(out["Path"].removeprefix("/ipfs/"))

    # ------------------------------------------------------------ CAR
    def car_import(self, stream: IO[bytes], *, pin_roots: bool = True, progress: Progress = None) -> CarImportResult:
        """Upload a CAR; return its roots and counts."""
        boundary = uuid.uuid4().hex
        body = multipart_body(iter([("", "application/octet-stream", _Counting(stream, progress))]), boundary)
        resp = self._open(
            "dag/import",
            (),
            {"pin-roots": pin_roots, "stats": True},
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        roots: list[bytes] = []
        blocks = nbytes = 0
        failed = None
        for obj in self._lines(resp):
            if "Root" in obj:
                roots.append(_cid(obj["Root"]["Cid"]["/"]))
                if obj["Root"].get("PinErrorMsg") and failed is None:
                    failed = f"pinning root {obj['Root']['Cid']['/']!r} FAILED: {obj['Root']['PinErrorMsg']}"
            elif "Stats" in obj:
                blocks = int(obj["Stats"]["BlockCount"])
                nbytes = int(obj["Stats"]["BlockBytesCount"])
        if failed is not None:
            raise CoreError(failed)
        return CarImportResult(roots=roots, blocks=blocks, bytes=nbytes)

    def car_export(self, path: str) -> Iterator[bytes]:
        """Stream a CARv1 of the DAG under ``path``."""
        yield from self._stream(self._open("dag/export", [path]))

    # ------------------------------------------------------------ blocks
    def block_get(self, cid: bytes) -> bytes:
        """One raw block."""
        resp = self._open("block/get", [cid_to_str(cid)])
        try:
            return resp.read()
        finally:
            resp.close()

    def block_put(
        self, data: bytes, *, codec: str = "raw", mhtype: str = "sha2-256", cid_version: int = 1, pin: bool = False
    ) -> tuple[bytes, int]:
        """Store ``data`` as a block; return (cid, size)."""
        boundary = uuid.uuid4().hex
        body = b"".join(multipart_body(iter([("", "application/octet-stream", data)]), boundary))
        opts: dict[str, Any] = {"mhtype": mhtype, "pin": pin}
        if cid_version == 0:
            opts["format"] = "v0"
        else:
            opts["cid-codec"] = codec
        resp = self._open("block/put", (), opts, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        objs = list(self._lines(resp))
        if not objs:
            raise CoreError("the daemon returned no key for the block")
        return _cid(objs[-1]["Key"]), int(objs[-1]["Size"])

    def block_stat(self, cid: bytes) -> tuple[bytes, int]:
        """(cid, size) of a stored block."""
        out = self._json("block/stat", [cid_to_str(cid)])
        return _cid(out["Key"]), int(out["Size"])

    def block_rm(self, cid: bytes) -> None:
        """Remove a block."""
        for obj in self._lines(self._open("block/rm", [cid_to_str(cid)])):
            err = obj.get("Error")
            if err:
                raise (NotFound(err) if "could not find" in err else CoreError(err))

    # ------------------------------------------------------------ pins
    def pin_add(self, path: str, *, recursive: bool = True, progress: Progress = None, name: str = "") -> bytes:
        """Pin what ``path`` points to (named ``name``); ``progress(n)`` is told of each new block fetched."""
        opts: dict[str, Any] = {"recursive": recursive, "name": name or None}
        if progress is None:
            return _cid(self._json("pin/add", [path], opts)["Pins"][0])
        seen = 0
        for obj in self._lines(self._open("pin/add", [path], {**opts, "progress": True})):
            if obj.get("Type") == "error":
                raise CoreError(obj.get("Message", "pin failed"))
            if "Progress" in obj:
                progress(int(obj["Progress"]) - seen)
                seen = int(obj["Progress"])
            elif "Pins" in obj:
                return _cid(obj["Pins"][0])
        raise CoreError("the daemon's pin/add stream ended without a result")

    def pin_rm(self, path: str) -> bytes:
        """Unpin what ``path`` points to."""
        return _cid(self._json("pin/rm", [path])["Pins"][0])

    def pin_ls(self, kind: str = "all") -> Iterator[tuple[bytes, str]]:
        """(cid, type) of every local pin, or of one type."""
        for obj in self._lines(self._open("pin/ls", (), {"type": kind, "stream": True})):
            yield _cid(obj["Cid"]), obj["Type"]

    # ------------------------------------------------------------ repo
    def id(self) -> dict[str, Any]:
        """The daemon's identity (``id``)."""
        return self._json("id")

    def swarm_peers(self) -> list[dict[str, str]]:
        """Connected swarm peers as ``[{"Addr", "Peer"}]``."""
        return self._json("swarm/peers").get("Peers") or []

    def swarm_connect(self, addr: str) -> str:
        """Connect the daemon's swarm host to ``addr``; returns kubo's result line."""
        return " ".join(self._json("swarm/connect", [addr]).get("Strings") or [])

    def repo_stat(self) -> dict[str, Any]:
        """Blocks, sizes and limits."""
        return dict(self._json("repo/stat"))

    def repo_gc(self) -> Iterator[bytes]:
        """Run garbage collection; yield each removed block's multihash."""
        for obj in self._lines(self._open("repo/gc")):
            if "Key" in obj:
                yield multihash_of(_cid(obj["Key"]["/"]))


# --------------------------------------------------------------------------- helpers
def _error_of(status: int, raw: bytes) -> CoreError:
    try:
        obj = json.loads(raw)
        message = str(obj.get("Message", "")) or f"HTTP {status}"
    except (ValueError, AttributeError):
        message = raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
    if status == 404:
        return NotFound(message)
    if 400 <= status < 500:
        return BadRequest(message)
    return CoreError(message)


def _params_to_options(params: Any) -> dict[str, Any]:
    """kubo ``add`` query options for an ``ImportParams``."""
    opts: dict[str, Any] = {}
    mapping = {
        "cid_version": "cid-version",
        "raw_leaves": "raw-leaves",
        "trickle": "trickle",
        "wrap_with_directory": "wrap-with-directory",
        "max_links": "max-file-links",
    }
    for attr, name in mapping.items():
        if hasattr(params, attr):
            opts[name] = getattr(params, attr)
    chunk = getattr(params, "chunk_size", None)
    if chunk:
        opts["chunker"] = f"size-{chunk}"
    # The HAMT settings have no kubo option: name the profile that carries them.
    from blockstore.importer import PROFILES

    hamt = ("hamt_threshold", "hamt_estimation", "hamt_fanout")
    for name, prof in PROFILES.items():
        if all(getattr(prof, a) == getattr(params, a, None) for a in hamt):
            opts["profile"] = name
            break
    return opts


class _Counting:
    """A read-through wrapper that reports bytes read to a progress callback."""

    def __init__(self, stream: IO[bytes], progress: Progress) -> None:
        self._stream = stream
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data and self._progress is not None:
            self._progress(len(data))
        return data
