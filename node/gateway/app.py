"""The gateway's aiohttp application: request routing, the raw/CAR/UnixFS responses and common headers."""

from __future__ import annotations

import email.utils
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from blockstore.cid import DAG_CBOR, DAG_PB, RAW, CidError, codec_of
from blockstore.unixfs import DIRECTORY, FILE, HAMT_SHARD, RAW as UNIXFS_RAW, SYMLINK, UnixFSData
from blockstore.unixfs_walk import dir_find

from . import car_http, cidtext, mime, params
from .errors import GatewayError
from .answers import Answer, AnswerCache, answer_key
from .limits import gateway_middleware
from .nodecache import DecodedNode, NodeCache, decoded
from .params import DIR_LISTING_CACHE, IMMUTABLE, RAW_TYPE, ContentPath, Wanted
from .source import BlockSource
from .unixfs_http import file_size, listing_etag, path_escape, read_file, render_listing
from .walk import Resolved, fetch, resolve_path, run

__all__ = ["make_gateway_app", "CORS_HEADERS"]

#: headers on every gateway response (the gateway is public and read-only)
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Range, User-Agent, X-Requested-With",
    "Access-Control-Expose-Headers": (
        "Content-Length, Content-Range, X-Chunked-Output, X-Stream-Output, X-Ipfs-Path, X-Ipfs-Roots"
    ),
}
_ALLOW = "GET, HEAD, OPTIONS"
_CODEC_TYPES = {
    DAG_CBOR: ("application/vnd.ipld.dag-cbor", "dag-cbor"),
    0x0129: ("application/vnd.ipld.dag-json", "dag-json"),
    0x51: ("application/cbor", "cbor"),
    0x0200: ("application/json", "json"),
}
#: file bodies up to this size are read whole and sent as one response (headers and body in one
#: write); larger ones are streamed. A streamed body also sits up to ~64 KiB deep in the socket's
#: write buffer (asyncio's high-water mark), so this holds no more per connection than streaming.
SMALL_BODY = 64 * 1024
#: the fixed headers of every content response, and of every response about an immutable file
#: (prebuilt sets, copied per request; the CORS headers are in them, so the ``_cors`` hook has
#: nothing to add to these)
_VARY = {"Vary": "Accept", **CORS_HEADERS}
#: set on a request whose answer is made of one block alone, the CID's own (see :mod:`node.gateway.answers`)
_ONE_BLOCK = web.RequestKey("gateway_one_block", bytes)
_FILE_HEADERS = {**_VARY, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}


def _query_of(query_string: str) -> dict[str, str]:
    """Query parameters (first value wins), parsed from the raw query string without building a URL object."""
    if not query_string:
        return {}
    if "&" not in query_string and "%" not in query_string and "+" not in query_string:
        key, _, value = query_string.partition("=")  # one pair, nothing to unescape (e.g. format=raw)
        return {key: value}
    out: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        out.setdefault(key, value)
    return out


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


class _Request:
    """One gateway request after parsing: what was asked and what the path resolved to."""

    def __init__(
        self,
        request: web.Request,
        source: BlockSource,
        nodes: NodeCache,
        cpath: ContentPath,
        wanted: Wanted,
        query: dict[str, str],
    ) -> None:
        self.http = request
        self.source = source
        self.nodes = nodes
        self.cpath = cpath
        self.wanted = wanted
        self.head = request.method == "HEAD"
        self.path, _, self.query_string = request.raw_path.partition("?")
        self.query = query

    def base_headers(self, resolved: Resolved, etag: str, fixed: dict[str, str] | None = None) -> dict[str, str]:
        """Headers of every content response: X-Ipfs-Path/Roots, Etag, Vary, Content-Location (and ``fixed``)."""
        roots = resolved.roots
        headers = {
            "X-Ipfs-Path": self.path,
            "X-Ipfs-Roots": cidtext.text(roots[0]) if len(roots) == 1 else ",".join(cidtext.text(c) for c in roots),
            "Etag": etag,
            **(fixed or _VARY),
        }
        if self.wanted.via_accept:
            fmt = "raw" if self.wanted.kind == "raw" else "car"
            query = [(k, v) for k, v in self.query.items() if k != "format"] + [("format", fmt)]
            headers["Content-Location"] = f"{self.path}?{urlencode(query)}"
        return headers

    def made_of_root(self, resolved: Resolved, cid: bytes) -> None:
        """Note that the answer being built is ``cid``'s block alone, when that block is the path's root
        and nothing else was read for it (only such answers may be prebuilt)."""
        if cid == resolved.cid and len(resolved.trail) == 1:
            self.http[_ONE_BLOCK] = cid

    def not_modified(self, etag: str) -> bool:
        """Whether the request's If-None-Match matches ``etag`` (answer 304)."""
        inm = self.http.headers.get("If-None-Match")
        return inm is not None and params.etag_matches(inm, etag)


async def _stream(req: _Request, status: int, headers: dict[str, str], length: int | None) -> web.StreamResponse:
    resp = web.StreamResponse(status=status, headers=headers)
    if length is not None:
        resp.content_length = length
    await resp.prepare(req.http)
    return resp


async def _abort(req: _Request, resp: web.StreamResponse) -> web.StreamResponse:
    """A block went missing after the status was sent: cut the connection so the body is visibly incomplete."""
    transport = req.http.transport
    if transport is not None:
        transport.abort()
    return resp


# ----------------------------------------------------------------------------- raw blocks


async def _serve_raw(req: _Request, resolved: Resolved) -> web.StreamResponse:
    cid_text = cidtext.text(resolved.cid)
    etag = f'"{cid_text}.raw"'
    headers = req.base_headers(resolved, etag)
    headers.update({"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff", "Accept-Ranges": "bytes"})
    headers["Content-Disposition"] = params.content_disposition("attachment", req.query.get("filename") or f"{cid_text}.bin")
    if req.not_modified(etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = RAW_TYPE
    req.made_of_root(resolved, resolved.cid)
    return await _send_bytes(req, headers, resolved.block)


async def _send_bytes(req: _Request, headers: dict[str, str], data: bytes) -> web.StreamResponse:
    """Send a small in-memory body in one response (headers and body in one write), honouring a single Range."""
    status, body = 200, data
    rng = req.http.headers.get("Range")
    if rng:
        try:
            spans = params.parse_range(rng, len(data))
        except GatewayError as exc:
            return _text(416, exc.message, {"Content-Range": f"bytes */{len(data)}"})
        if spans:
            first, last = spans[0]
            status, body = 206, data[first : last + 1]
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    headers["Content-Length"] = str(len(body))
    return web.Response(status=status, headers=headers, body=None if req.head else body)


# ----------------------------------------------------------------------------- CAR


async def _serve_car(req: _Request, resolved: Resolved) -> web.StreamResponse:
    car = req.wanted.car
    assert car is not None
    root_text = req.cpath.cid_text
    etag = params.car_etag(cidtext.text(resolved.roots[0]), req.path, car)
    headers = req.base_headers(resolved, etag)
    name = f"{cidtext.text(resolved.roots[0])}_{req.cpath.segments[-1]}" if req.cpath.segments else root_text
    headers.update(
        {
            "Cache-Control": IMMUTABLE,
            "X-Content-Type-Options": "nosniff",
            "Accept-Ranges": "none",
            "Content-Disposition": params.content_disposition("attachment", req.query.get("filename") or f"{name}.car"),
        }
    )
    if req.not_modified(etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = car_http.car_content_type(car)
    resp = await _stream(req, 200, headers, None)
    if req.head:
        return resp
    await resp.write(car_http.car_header(resolved.roots[0]))
    try:
        async for cid, block in car_http.CarWalk(req.source, resolved, car).blocks():
            for piece in car_http.car_section(cid, block):
                await resp.write(piece)
    except GatewayError:
        return await _abort(req, resp)
    return resp


# ----------------------------------------------------------------------------- UnixFS


def _last_modified(fs: UnixFSData | None) -> str | None:
    if fs is None or fs.mtime is None:
        return None
    return email.utils.formatdate(fs.mtime[0], usegmt=True)


async def _serve_file(
    req: _Request, resolved: Resolved, cid: bytes, block: bytes, node: DecodedNode | None, etag: str, name: str | None
) -> web.StreamResponse:
    """A UnixFS file (``node``) or raw block (``node`` None): a small one-block file whole in one
    response, anything else streamed block by block; a single range honoured."""
    fs = node.fs if node is not None else None
    size = file_size(cid, block, fs)
    headers = req.base_headers(resolved, etag, _FILE_HEADERS)
    modified = _last_modified(fs)
    if modified:
        headers["Last-Modified"] = modified
    filename = req.query.get("filename")
    if filename:
        disposition = "attachment" if req.query.get("download") == "true" else "inline"
        headers["Content-Disposition"] = params.content_disposition(disposition, filename)
    if req.not_modified(etag):
        return web.Response(status=304, headers=headers)
    whole = _one_block_body(block, node, size)
    kind = mime.type_by_name(filename or name or "")
    if kind is None:
        kind = _sniffed(node, whole) if whole is not None else await _sniff_head(req, cid, block, size)
    headers["Content-Type"] = "text/html" if kind.startswith("text/html") else kind
    if whole is not None:
        req.made_of_root(resolved, cid)
        return await _send_bytes(req, headers, whole)
    first, last, status = 0, size - 1, 200
    rng = req.http.headers.get("Range")
    if rng:
        try:
            spans = params.parse_range(rng, size)
        except GatewayError as exc:
            return _text(416, exc.message, {"Content-Range": f"bytes */{size}"})
        if spans:
            (first, last), status = spans[0], 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    resp = await _stream(req, status, headers, last - first + 1)
    if req.head or last < first:
        return resp
    try:
        async for piece in read_file(req.source, cid, block, first, last):
            await resp.write(piece)
    except GatewayError:
        return await _abort(req, resp)
    return resp


def _one_block_body(block: bytes, node: DecodedNode | None, size: int) -> bytes | None:
    """The whole content of a file of at most :data:`SMALL_BODY` bytes held in its one block, else None."""
    if size > SMALL_BODY:
        return None
    if node is None:
        return block  # a raw block is its own content
    return node.inline


def _sniffed(node: DecodedNode | None, content: bytes) -> str:
    """The sniffed type of a one-block file's ``content``, sniffed once per cached node."""
    if node is None:
        return mime.sniff(content[:512])
    if node.sniffed is None:
        node.sniffed = mime.sniff(content[:512])
    return node.sniffed


async def _sniff_head(req: _Request, cid: bytes, block: bytes, size: int) -> str:
    """The sniffed type of a file over several blocks (reads the blocks under its first 512 bytes)."""
    head = bytearray()
    if size:
        async for piece in read_file(req.source, cid, block, 0, min(size, 512) - 1):
            head += piece
    return mime.sniff(bytes(head))


def _dir_url(cpath: ContentPath, query_string: str) -> str:
    url = f"/{cpath.namespace}/{cpath.cid_text}" + "".join("/" + path_escape(s) for s in cpath.segments) + "/"
    return f"{url}?{query_string}" if query_string else url


async def _serve_dir(req: _Request, resolved: Resolved) -> web.StreamResponse:
    if not req.cpath.trailing_slash and req.query.get("go-get") != "1":
        return web.Response(status=301, headers={"Location": _dir_url(req.cpath, req.query_string)})
    index = await run(dir_find(resolved.cid, resolved.block, b"index.html"), req.source)
    if index is not None:
        block = await fetch(req.source, index.hash, "index.html")
        node = decoded(req.nodes, index.hash, block) if codec_of(index.hash) == DAG_PB else None
        return await _serve_file(req, resolved, index.hash, block, node, f'"{cidtext.text(resolved.cid)}"', "index.html")
    etag = listing_etag(resolved.cid)
    headers = req.base_headers(resolved, etag)
    headers["Cache-Control"] = DIR_LISTING_CACHE
    if req.not_modified(etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "text/html"
    resp = await _stream(req, 200, headers, None)
    if req.head:
        return resp
    try:
        async for piece in render_listing(req.source, req.cpath.cid_text, req.cpath.segments, resolved.cid, resolved.block):
            await resp.write(piece.encode("utf-8"))
    except GatewayError:
        return await _abort(req, resp)
    return resp


async def _serve_unixfs(req: _Request, resolved: Resolved) -> web.StreamResponse:
    cid, block = resolved.cid, resolved.block
    name = req.cpath.segments[-1] if req.cpath.segments else None
    codec = codec_of(cid)
    cid_text = cidtext.text(cid)
    if codec == RAW:
        return await _serve_file(req, resolved, cid, block, None, f'"{cid_text}"', name)
    if codec == DAG_PB:
        node = decoded(req.nodes, cid, block)
        fs = node.fs
        if fs is None or fs.type in (DIRECTORY, HAMT_SHARD):
            return await _serve_dir(req, resolved)
        if fs.type in (FILE, UNIXFS_RAW):
            return await _serve_file(req, resolved, cid, block, node, f'"{cid_text}"', name)
        if fs.type == SYMLINK:
            etag = f'"{cid_text}"'
            headers = req.base_headers(resolved, etag)
            headers.update({"Cache-Control": IMMUTABLE, "Content-Type": "inode/symlink"})
            if req.not_modified(etag):
                return web.Response(status=304, headers=headers)
            req.made_of_root(resolved, cid)
            return await _send_bytes(req, headers, fs.data or b"")
        raise GatewayError(501, f"{cid_text} is a UnixFS node of type {fs.type} that has no HTTP representation")
    ctype, suffix = _CODEC_TYPES.get(codec, ("application/octet-stream", "bin"))
    etag = f'"{cid_text}.{suffix}"'
    headers = req.base_headers(resolved, etag)
    headers.update({"Cache-Control": IMMUTABLE, "Content-Type": ctype, "Accept-Ranges": "bytes"})
    if req.not_modified(etag):
        return web.Response(status=304, headers=headers)
    req.made_of_root(resolved, cid)
    return await _send_bytes(req, headers, block)


# ----------------------------------------------------------------------------- routing


class _Gateway:
    """The gateway's one route handler, holding what every request reads (no app lookups per request)."""

    def __init__(self, source: BlockSource, nodes: NodeCache, answers: AnswerCache) -> None:
        self.source = source
        self.nodes = nodes
        self.answers = answers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one /ipfs/ or /ipns/ request: a prebuilt answer when there is one (see
        :mod:`node.gateway.answers`), else the pipeline, whose small 200 GET answers are kept."""
        key = answer_key(request.method, request.raw_path, request.headers)
        if key is None:
            return await self.answer(request)
        prebuilt = self.answers.get(key)
        if prebuilt is None:
            resp = await self.answer(request)
            if request.method == "GET" and resp.status == 200 and type(resp) is web.Response:
                body = resp.body
                cid = request.get(_ONE_BLOCK)
                if cid is not None and type(body) is bytes:
                    self.answers.keep(key, Answer(cid, resp.headers.copy(), body))
            return resp
        try:
            await fetch(self.source, prebuilt.cid)  # the block must still be there (as the pipeline reads it)
        except GatewayError as exc:
            return _text(exc.status, exc.message)
        return web.Response(status=200, headers=prebuilt.headers, body=None if request.method == "HEAD" else prebuilt.body)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        """Answer one request through the pipeline (errors as a status and one line of text)."""
        source, nodes = self.source, self.nodes
        if request.method == "OPTIONS":
            return web.Response(status=200, headers={"Allow": _ALLOW})
        if request.method not in ("GET", "HEAD"):
            return _text(405, f"method {request.method} not allowed: the gateway is read-only", {"Allow": _ALLOW})
        raw_path = request.raw_path
        try:
            cpath = params.parse_content_path(raw_path)
            if cpath.namespace == "ipns":
                raise GatewayError(501, "/ipns/ paths are not supported by this gateway (no IPNS or DNSLink resolver)")
            if request.headers.get("Service-Worker") == "script" and not cpath.trailing_slash:
                raise GatewayError(400, "registering a service worker is not allowed on a content path")
            try:
                root = cidtext.parse(cpath.cid_text)
            except CidError as exc:
                raise GatewayError(400, f"invalid CID in path: {exc}") from None
            query = _query_of(raw_path.partition("?")[2])
            wanted = params.choose_response(query, request.headers.get("Accept"))
            if params.only_if_cached(request.headers.get("Cache-Control")) and not await source.has_local(root):
                path = raw_path.split("?", 1)[0]
                return _text(412, f'"{path}" not in local datastore')
            req = _Request(request, source, nodes, cpath, wanted, query)
            resolved = await resolve_path(source, root, cpath.segments)
            if wanted.kind == "raw":
                return await _serve_raw(req, resolved)
            if wanted.kind == "car":
                return await _serve_car(req, resolved)
            return await _serve_unixfs(req, resolved)
        except GatewayError as exc:
            return _text(exc.status, exc.message)


async def _cors(_request: web.Request, response: web.StreamResponse) -> None:
    """The CORS headers on every response of the app (content responses carry them already)."""
    headers = response.headers
    if "Access-Control-Expose-Headers" in headers:
        return
    for key, value in CORS_HEADERS.items():
        headers.setdefault(key, value)


def make_gateway_app(
    blocks: BlockSource,
    *,
    metrics: Any = None,
    max_url: int = 8192,
    per_client: int = 256,
    nodes: NodeCache | None = None,
    answers: AnswerCache | None = None,
) -> web.Application:
    """The path + trustless gateway over ``blocks`` (``metrics``: an object with ``observe_request``;
    ``max_url``/``per_client``: see :mod:`node.gateway.limits`; ``nodes``: the cache of decoded
    small nodes, see :mod:`node.gateway.nodecache`; ``answers``: the prebuilt answers, see
    :mod:`node.gateway.answers`; default-sized ones when None)."""
    app = web.Application(middlewares=[gateway_middleware(max_url=max_url, per_client=per_client, metrics=metrics)])
    gateway = _Gateway(blocks, nodes if nodes is not None else NodeCache(), answers if answers is not None else AnswerCache())
    app.on_response_prepare.append(_cors)
    app.router.add_route("*", "/ipfs/{tail:.*}", gateway.handle)
    app.router.add_route("*", "/ipns/{tail:.*}", gateway.handle)
    return app
