"""The kubo RPC subset (``/api/v0/...``) as an aiohttp application.

POST only (other methods: 405; OPTIONS: 204), options in the query string,
file inputs as ``multipart/form-data``, errors as kubo's error JSON. The
node's synchronous operations (:class:`node.core.CoreAPI`) run in worker
threads, driven by :class:`node.fetching.FetchingCore` so that blocks missing
from the store are awaited on the event loop, never in a thread; uploads
stream through :func:`node.rpc.upload.drive_upload` with bounded memory (in
their own pool, ``uploads``); downloads stream chunk by chunk.
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientPayloadError, web

from blockstore import car, importer
from blockstore.carimport import CarImporter, CarImportResult
from blockstore.cid import RAW, CidError, HashMismatch, make_cid
from blockstore.db import disk_full_message
from blockstore.store import BlockTooLarge
from blockstore.pins import RECURSIVE

from ..core import BadRequest, CoreAPI, CoreError, NotFound
from ..fetching import FetchingCore
from ..p2p.identity import public_key_b64
from ..restapi.auth import AuthError, authenticate, unauthorized
from .add import AddOptions, AddWorker
from .multipart import PartStart
from .options import CODE_NORMAL, CODE_NOT_FOUND, Options, RpcError, format_cid, parse_cid_arg
from .pipe import ItemPipe, PartReader, UploadAborted
from .upload import BODY_IDLE_TIMEOUT, drive_upload
from ..workers import PoolBusy

API_PREFIX = "/api/v0/"
VERSION = "0.1.0"
AGENT_VERSION = f"pinion/{VERSION}"

Handler = Callable[[web.Request, "RpcContext", Options], Awaitable[web.StreamResponse]]


@dataclass
class RpcContext:
    """What the RPC handlers work with.

    ``p2p`` is the running :class:`node.p2p.service.P2PService` (swarm
    identity, connect, peers); ``None`` when the daemon runs offline.
    ``executor`` runs reads (the daemon's reads pool), ``uploads`` the uploads
    (its imports pool; None: ``executor``), ``fetching`` fetches missing blocks
    on the event loop (None: built over ``executor`` without a network).
    """

    core: CoreAPI
    config: dict[str, Any]
    metrics: Any | None = None
    executor: Executor | None = None
    p2p: Any | None = None
    upload_limit: int = 8 * 1024 * 1024
    extra_routes: dict[str, Handler] = field(default_factory=dict)
    uploads: Executor | None = None
    fetching: FetchingCore | None = None
    #: one ``repo/gc`` at a time holds a thread; the others wait on the event loop
    gc_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def writer_lock(self) -> Any:
        """The core's import/GC exclusion, held while an upload writes blocks."""
        return self.core.import_guard()

    def reader(self) -> FetchingCore:
        """CoreAPI's operations with network waits on the event loop (node/fetching.py)."""
        if self.fetching is None:
            self.fetching = FetchingCore(self.core, None, self.executor)
        return self.fetching

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking call in the worker pool (the blocks it lacks are fetched on the loop, then it runs again)."""
        return await self.reader().call(fn, *args)


# --------------------------------------------------------------------------- responses
def json_response(obj: Any, status: int = 200) -> web.Response:
    """One JSON object, newline-terminated as go-ipfs-cmds writes it."""
    return web.Response(
        body=json.dumps(obj).encode() + b"\n",
        status=status,
        headers={"Content-Type": "application/json", "Vary": "Origin", "Trailer": "X-Stream-Error"},
    )


def ndjson_response(objs: list[dict[str, Any]]) -> web.Response:
    """Several JSON objects, one per line (``X-Chunked-Output``)."""
    body = b"".join(json.dumps(o).encode() + b"\n" for o in objs)
    return web.Response(
        body=body,
        headers={"Content-Type": "application/json", "X-Chunked-Output": "1", "Vary": "Origin", "Trailer": "X-Stream-Error"},
    )


def error_response(err: RpcError) -> web.Response:
    """kubo's error JSON with the error's HTTP status."""
    return web.Response(body=err.body(), status=err.status, headers={"Content-Type": "application/json"})


def _core_error(exc: CoreError) -> RpcError:
    if isinstance(exc, NotFound):
        return RpcError(str(exc), CODE_NOT_FOUND)
    if isinstance(exc, BadRequest):
        return RpcError(str(exc))
    return RpcError(str(exc), CODE_NORMAL)


async def stream_chunks(
    request: web.Request,
    ctx: RpcContext,
    chunks: AsyncIterator[bytes],
    *,
    content_type: str = "text/plain",
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Stream byte chunks (node/fetching.py's streams); errors before the first byte become error JSON.

    An error after the response started cannot change the status any more:
    the connection is closed before the end so the client sees a truncated body.
    """
    sentinel: Any = object()
    async with aclosing(chunks):
        it = aiter(chunks)
        first = await anext(it, sentinel)
        resp = web.StreamResponse(
            headers={"Content-Type": content_type, "X-Stream-Output": "1", "Vary": "Origin", **(headers or {})}
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = first
        try:
            while chunk is not sentinel:
                await resp.write(chunk)
                chunk = await anext(it, sentinel)
        except (CoreError, OSError, ValueError) as exc:
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError(f"stream failed after it started: {exc}") from None
    await resp.write_eof()
    return resp


# --------------------------------------------------------------------------- simple commands
async def h_version(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``version``: kubo's shape with Pinion's values."""
    return json_response(
        {
            "Version": VERSION,
            "Commit": "",
            "Repo": "1",
            "System": f"{platform.machine()}/{sys.platform}",
            "Golang": f"python{platform.python_version()}",
        }
    )


async def h_id(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``id``: this node's identity (other peers cannot be looked up)."""
    ident = ctx.config["Identity"]
    args = o.args()
    if args and args[0] != ident["PeerID"]:
        raise RpcError(f"peer {args[0]} is not known to this node (only its own identity is answered)", CODE_NOT_FOUND)
    try:
        pub = public_key_b64(ident["PrivKey"]) if ident.get("PrivKey") else ""
    except ValueError as exc:
        raise RpcError(str(exc), CODE_NORMAL) from None
    if ctx.p2p is not None:
        info = await ctx.p2p.id("swarm")
        return json_response({**info, "AgentVersion": info.get("AgentVersion") or AGENT_VERSION})
    return json_response(
        {"ID": ident["PeerID"], "PublicKey": pub, "Addresses": [], "AgentVersion": AGENT_VERSION, "Protocols": []}
    )


def _need_p2p(ctx: RpcContext) -> Any:
    if ctx.p2p is None:
        raise RpcError("this node runs offline (started with --offline): no swarm", CODE_NORMAL)
    return ctx.p2p


async def h_swarm_peers(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``swarm/peers``: ``{"Peers":[{"Addr","Peer"}]}`` (``null`` when none, as kubo)."""
    for flag in ("verbose", "streams", "latency", "direction", "identify"):
        o.boolean(flag, False)
    peers = await _need_p2p(ctx).peers("swarm")
    return json_response({"Peers": [{"Addr": p["Addr"], "Peer": p["Peer"]} for p in peers] or None})


async def h_swarm_connect(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``swarm/connect``: dial ``/.../p2p/<id>`` addresses -> ``{"Strings":["connect <id> success"]}``."""
    args = o.args()
    if not args:
        raise RpcError("argument 'address' is required")
    p2p = _need_p2p(ctx)
    from node.p2p.hosts import P2PError

    out = []
    for addr in args:
        try:
            peer = await p2p.connect(addr, "swarm")
        except P2PError as exc:
            raise RpcError(f"connect {addr} failure: {exc}", CODE_NORMAL) from None
        except ValueError as exc:
            raise RpcError(f"invalid peer address {addr!r}: {exc}") from None
        out.append(f"connect {peer} success")
    return json_response({"Strings": out})


# --------------------------------------------------------------------------- files
async def h_cat(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``cat``: a file's bytes (``offset``, ``length``)."""
    args = o.args()
    if not args:
        raise RpcError("argument 'ipfs-path' is required")
    offset = o.integer("offset", 0, minimum=0) or 0
    length = o.integer("length", None, minimum=0)

    async def chunks() -> AsyncIterator[bytes]:
        for path in args:
            async with aclosing(ctx.reader().cat(path, offset, length)) as part:
                async for chunk in part:
                    yield chunk

    return await stream_chunks(request, ctx, chunks())


_TYPE_CODES = {"directory": 1, "hamt-shard": 1, "file": 2, "raw": 2, "symlink": 4, "metadata": 3}


async def h_ls(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``ls``: directory listings ``{"Objects":[{"Hash","Links":[...]}]}``."""
    args = o.args()
    if not args:
        raise RpcError("argument 'ipfs-path' is required")
    base = o.string("cid-base", None)
    objects = []
    for path in args:
        entries = await ctx.reader().ls(path)
        links = [
            {
                "Name": e.name,
                "Hash": format_cid(e.cid, base),
                "Size": e.size if e.size is not None else 0,
                "Type": _TYPE_CODES.get(str(e.type), 0),
                "Target": getattr(e, "target", None) or "",
            }
            for e in entries
        ]
        objects.append({"Hash": path, "Links": links})
    return json_response({"Objects": objects})


def _add_options(o: Options) -> AddOptions:
    for name in ("nocopy", "fscache", "to-files", "inline"):
        if o.boolean(name, False) if name != "to-files" else o.has(name):
            raise RpcError(f"option {name!r} is not supported by this node")
    hash_fn = o.string("hash", "sha2-256")
    if hash_fn != "sha2-256":
        raise RpcError(f"option 'hash': unsupported hash function {hash_fn!r} (only sha2-256)")
    cid_version = o.integer("cid-version", None)
    if cid_version not in (None, 0, 1):
        raise RpcError(f"option 'cid-version': unknown CID version {cid_version} (0 or 1)")
    wrap = o.boolean("wrap-with-directory", False)
    try:
        params = importer.ImportParams.from_options(
            profile=o.string("profile", None) or None,
            cid_version=cid_version,
            raw_leaves=o.optional_bool("raw-leaves"),
            chunker=o.string("chunker", None) or None,
            trickle=o.boolean("trickle", False),
            hidden=o.boolean("hidden", False),
            wrap_with_directory=wrap,
            max_links=o.integer("max-file-links", None, minimum=1),
        )
    except ValueError as exc:
        raise RpcError(str(exc)) from None
    base = o.string("cid-base", None)
    if base:
        format_cid(make_cid(1, RAW, b"\x12\x20" + bytes(32)), base)
    return AddOptions(
        params=params,
        pin=o.boolean("pin", True),
        wrap=wrap,
        progress=o.boolean("progress", False),
        quieter=o.boolean("quieter", False),
        only_hash=o.boolean("only-hash", False),
        cid_base=base,
    )


async def h_add(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``add``: multipart files/directories -> NDJSON ``{"Name","Hash","Size"}`` (+ progress)."""
    opts = _add_options(o)
    o.boolean("quiet", False)
    worker = AddWorker(ctx.core, opts, ctx.writer_lock)
    out = await _upload(request, ctx, worker, "add")
    if ctx.metrics is not None:
        ctx.metrics.blocks_written(worker.new_blocks)
    return ndjson_response(out)


async def _upload(request: web.Request, ctx: RpcContext, worker: Callable[[ItemPipe], Any], endpoint: str) -> Any:
    on_bytes = None
    if ctx.metrics is not None:
        m = ctx.metrics

        def on_bytes(n: int) -> None:
            m.add_upload_bytes(endpoint, n)

    max_bytes = int(ctx.config.get("Datastore", {}).get("MaxUploadSize", 0))
    idle = float(ctx.config.get("HTTP", {}).get("BodyTimeout", BODY_IDLE_TIMEOUT))
    return await drive_upload(
        request,
        worker,
        executor=ctx.uploads or ctx.executor,
        limit=ctx.upload_limit,
        on_bytes=on_bytes,
        max_bytes=max_bytes,
        idle_timeout=idle,
    )


# --------------------------------------------------------------------------- blocks
async def h_block_get(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``block/get``: one raw block."""
    cid = parse_cid_arg(o.one_arg("cid"))
    try:
        data = await ctx.run(ctx.core.block_get, cid)
    except NotFound:
        if ctx.metrics is not None:
            ctx.metrics.block_got(False)
        raise
    if ctx.metrics is not None:
        ctx.metrics.block_got(True)
    return web.Response(body=data, headers={"Content-Type": "text/plain", "X-Stream-Output": "1"})


async def h_block_stat(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``block/stat``: ``{"Key","Size"}``."""
    cid = parse_cid_arg(o.one_arg("cid"))
    cid, size = await ctx.run(ctx.core.block_stat, cid)
    return json_response({"Key": format_cid(cid, o.string("cid-base", None)), "Size": size})


async def h_block_rm(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``block/rm``: ``{"Hash","Error"}`` per block."""
    args = o.args()
    if not args:
        raise RpcError("argument 'cid' is required")
    cids = [(a, parse_cid_arg(a)) for a in args]
    force = o.boolean("force", False)
    quiet = o.boolean("quiet", False)
    out = []
    for text, cid in cids:
        try:
            await ctx.run(ctx.core.block_rm, cid)
            err = ""
        except NotFound as exc:
            err = "" if force else str(exc)
        except CoreError as exc:
            err = str(exc)
        if err or not quiet:
            out.append({"Hash": text, "Error": err})
    return ndjson_response(out)


_CODEC_ALIASES = {"v0": ("dag-pb", 0), "protobuf": ("dag-pb", 0), "cbor": ("dag-cbor", 1)}


async def h_block_put(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``block/put``: each multipart part is one block -> ``{"Key","Size"}`` per block."""
    codec = o.string("cid-codec", None) or "raw"
    version = 1
    fmt = o.string("format", None)
    if fmt:
        if fmt not in _CODEC_ALIASES and fmt not in ("raw", "dag-pb", "dag-cbor"):
            raise RpcError(f"option 'format': unsupported block format {fmt!r}")
        codec, version = _CODEC_ALIASES.get(fmt, (fmt, 1))
    mhtype = o.string("mhtype", "sha2-256") or "sha2-256"
    mhlen = o.integer("mhlen", -1)
    if mhlen not in (-1, 32):
        raise RpcError(f"option 'mhlen': unsupported digest length {mhlen} (32)")
    if codec not in ("raw", "dag-pb", "dag-cbor"):
        raise RpcError(f"option 'cid-codec': unsupported codec {codec!r} (raw, dag-pb, dag-cbor)")
    if mhtype not in ("sha2-256", "blake2b-256"):
        raise RpcError(f"option 'mhtype': unsupported hash {mhtype!r} (sha2-256, blake2b-256)")
    if version == 0 and (codec != "dag-pb" or mhtype != "sha2-256"):
        version = 1
    pin = o.boolean("pin", False)
    base = o.string("cid-base", None)
    max_size = ctx.core.store.max_block_size

    def worker(pipe: ItemPipe) -> list[dict[str, Any]]:
        out = []
        while True:
            ev = pipe.get()
            if ev is None:
                break
            if not isinstance(ev, PartStart):
                raise UploadAborted("multipart data outside a part")
            reader = PartReader(pipe)
            data = reader.read(max_size + 1)
            if len(data) > max_size:
                reader.drain()
                raise RpcError(f"block too large: over the node's maximum of {max_size} bytes")
            reader.drain()
            cid, size = ctx.core.block_put(data, codec=codec, mhtype=mhtype, cid_version=version, pin=pin)
            out.append({"Key": format_cid(cid, base), "Size": size})
        if not out:
            raise RpcError("no block was sent (expected a multipart part named 'file')")
        return out

    out = await _upload(request, ctx, worker, "block/put")
    if ctx.metrics is not None:
        ctx.metrics.blocks_written(len(out))
    return ndjson_response(out)


# --------------------------------------------------------------------------- DAG / CAR
async def h_dag_import(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``dag/import``: CAR uploads -> ``{"Root":{"Cid":{"/":..},"PinErrorMsg":""}}`` (+ ``Stats``)."""
    pin_roots = o.boolean("pin-roots", True)
    stats = o.boolean("stats", False)
    o.boolean("allow-big-block", False)
    o.boolean("local-only", False)
    base = o.string("cid-base", None)

    def import_one(reader: PartReader) -> CarImportResult:
        """Feed one CAR part to the push-style importer as its pieces arrive (no re-chunking)."""
        imp = CarImporter(ctx.core.store)
        try:
            while not imp.done and (data := reader.next_data()) is not None:
                imp.feed(data)
            result = imp.finish()
        except car.CarError as exc:
            raise RpcError(f"malformed CAR: {exc}") from None
        except (HashMismatch, BlockTooLarge, CidError) as exc:
            raise RpcError(f"rejected CAR: {exc}") from None
        finally:
            imp.abort()  # a no-op after finish(); rolls back otherwise
        reader.drain()  # anything after the CAR data (a CARv2 index) is not read
        return result

    def worker(pipe: ItemPipe) -> tuple[list[bytes], int, int]:
        roots: list[bytes] = []
        blocks = nbytes = 0
        seen_part = False
        with ctx.writer_lock():
            while True:
                ev = pipe.get()
                if ev is None:
                    break
                if not isinstance(ev, PartStart):
                    raise UploadAborted("multipart data outside a part")
                seen_part = True
                res = import_one(PartReader(pipe))
                for r in res.roots:
                    if r not in roots:
                        roots.append(r)
                blocks += res.blocks
                nbytes += res.bytes
            if not seen_part:
                raise RpcError("no CAR was sent (expected a multipart part named 'file')")
            if pin_roots and roots:
                ctx.core.pins.add_many(roots, RECURSIVE)
        return roots, blocks, nbytes

    roots, blocks, nbytes = await _upload(request, ctx, worker, "dag/import")
    if ctx.metrics is not None:
        ctx.metrics.blocks_written(blocks)
    out: list[dict[str, Any]] = [{"Root": {"Cid": {"/": format_cid(r, base)}, "PinErrorMsg": ""}} for r in roots]
    if stats:
        out.append({"Stats": {"BlockCount": blocks, "BlockBytesCount": nbytes}})
    return ndjson_response(out)


async def h_dag_export(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``dag/export``: a CARv1 of the DAG (DFS, no duplicates)."""
    path = o.one_arg("root")
    o.boolean("progress", False)
    o.boolean("local-only", False)
    return await stream_chunks(request, ctx, ctx.reader().car_export(path), content_type="application/vnd.ipld.car")


# --------------------------------------------------------------------------- pins
async def h_pin_add(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``pin/add``: ``{"Pins":[...]}``."""
    args = o.args()
    if not args:
        raise RpcError("argument 'ipfs-path' is required")
    recursive = o.boolean("recursive", True)
    progress = o.boolean("progress", False)
    base = o.string("cid-base", None)
    if progress:
        return await _pin_add_with_progress(request, ctx, args, recursive, base)
    pinned = []
    for path in args:
        cid = await ctx.reader().pin_add(path, recursive=recursive)
        pinned.append(format_cid(cid, base))
    return json_response({"Pins": pinned})


async def _pin_add_with_progress(
    request: web.Request, ctx: RpcContext, args: list[str], recursive: bool, base: str | None
) -> web.StreamResponse:
    """``pin/add?progress=true`` as kubo streams it: ``{"Progress": blocks}`` lines while the DAG
    is fetched, then ``{"Pins": [...]}``; an error after the stream started is an error line."""
    loop = asyncio.get_running_loop()
    counts: asyncio.Queue[int] = asyncio.Queue()
    resp = web.StreamResponse(headers={"Content-Type": "application/json", "X-Chunked-Output": "1"})
    await resp.prepare(request)
    pinned = []
    try:
        for path in args:
            job = asyncio.ensure_future(
                ctx.reader().pin_add(path, recursive=recursive, progress=lambda n: loop.call_soon_threadsafe(counts.put_nowait, n))
            )
            last = 0
            while not job.done():
                getter = asyncio.ensure_future(counts.get())
                await asyncio.wait({job, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done() and getter.result() > last:
                    last = getter.result()
                    await resp.write(json.dumps({"Progress": last}).encode() + b"\n")
                else:
                    getter.cancel()
            pinned.append(format_cid(job.result(), base))
        await resp.write(json.dumps({"Pins": pinned}).encode() + b"\n")
    except (CoreError, RpcError) as exc:
        message = exc.message if isinstance(exc, RpcError) else str(exc)
        await resp.write(json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode() + b"\n")
    await resp.write_eof()
    return resp


async def h_pin_rm(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``pin/rm``: ``{"Pins":[...]}``."""
    args = o.args()
    if not args:
        raise RpcError("argument 'ipfs-path' is required")
    o.boolean("recursive", True)
    base = o.string("cid-base", None)
    removed = []
    for path in args:
        cid = await ctx.run(ctx.core.pin_rm, path)
        removed.append(format_cid(cid, base))
    return json_response({"Pins": removed})


async def h_pin_ls(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``pin/ls``: ``{"Keys":{cid:{"Type","Name"}}}``, or NDJSON with ``stream``."""
    kind = o.choice("type", ("all", "recursive", "direct", "indirect"), "all")
    if kind == "indirect":
        raise RpcError("listing indirect pins is not supported by this node (types: all, recursive, direct)")
    stream = o.boolean("stream", False)
    quiet = o.boolean("quiet", False)
    o.boolean("names", False)
    base = o.string("cid-base", None)
    args = o.args()

    def collect() -> list[tuple[bytes, str]]:
        if not args:
            return list(ctx.core.pin_ls(kind))
        found = []
        for path in args:
            cid = ctx.core.resolve(path)
            pin_kind = ctx.core.pins.get(cid)
            if pin_kind is None or (kind != "all" and pin_kind != kind):
                raise RpcError(f"path '{path}' is not pinned", CODE_NORMAL)
            found.append((cid, pin_kind))
        return found

    pins = await ctx.run(collect)
    if stream:
        return ndjson_response([{"Cid": format_cid(c, base), "Name": "", "Type": k} for c, k in pins])
    keys = {format_cid(c, base): ({"Type": k} if quiet else {"Type": k, "Name": ""}) for c, k in pins}
    return json_response({"Keys": keys})


# --------------------------------------------------------------------------- repo
async def h_repo_stat(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``repo/stat``: ``{"RepoSize","StorageMax","NumObjects","RepoPath","Version"}``."""
    st = await ctx.run(ctx.core.repo_stat)
    if o.boolean("size-only", False):
        return json_response({"RepoSize": st["RepoSize"], "StorageMax": st["StorageMax"]})
    o.boolean("human", False)
    return json_response(
        {
            "RepoSize": st["RepoSize"],
            "StorageMax": st["StorageMax"],
            "NumObjects": st["NumObjects"],
            "RepoPath": st["RepoPath"],
            "Version": st["Version"],
            "DataSize": st["DataSize"],
        }
    )


async def h_repo_gc(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``repo/gc``: ``{"Key":{"/":cid}}`` per removed block (CIDv1 raw of its multihash)."""
    quiet = o.boolean("quiet", False)
    o.boolean("stream-errors", False)
    base = o.string("cid-base", None)

    def run_gc() -> list[bytes]:
        return list(ctx.core.repo_gc())

    async with ctx.gc_lock:
        removed = await ctx.run(run_gc)
    if quiet:
        return ndjson_response([])
    return ndjson_response([{"Key": {"/": format_cid(make_cid(1, RAW, mh), base)}} for mh in removed])


async def h_resolve(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``resolve``: ``{"Path":"/ipfs/<cid>"}`` of an IPFS path."""
    path = o.one_arg("name")
    o.boolean("recursive", True)
    cid = await ctx.reader().resolve(path)
    return json_response({"Path": "/ipfs/" + format_cid(cid, o.string("cid-base", None))})


async def h_config_show(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``config/show``: the config without private keys or the cluster secret (as kubo hides PrivKey)."""
    import copy

    cfg = copy.deepcopy(ctx.config)
    cfg.get("Identity", {}).pop("PrivKey", None)
    cluster = cfg.get("Cluster", {})
    cluster.pop("PrivKey", None)
    cluster.pop("Secret", None)
    return json_response(cfg)


ROUTES: dict[str, Handler] = {
    "config/show": h_config_show,
    "resolve": h_resolve,
    "swarm/peers": h_swarm_peers,
    "swarm/connect": h_swarm_connect,
    "add": h_add,
    "cat": h_cat,
    "ls": h_ls,
    "block/get": h_block_get,
    "block/put": h_block_put,
    "block/stat": h_block_stat,
    "block/rm": h_block_rm,
    "dag/import": h_dag_import,
    "dag/export": h_dag_export,
    "pin/add": h_pin_add,
    "pin/rm": h_pin_rm,
    "pin/ls": h_pin_ls,
    "id": h_id,
    "version": h_version,
    "repo/stat": h_repo_stat,
    "repo/gc": h_repo_gc,
}


def _origin_allowed(request: web.Request) -> bool:
    """Browsers' cross-origin requests are refused, as kubo does without CORS config."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = request.host
    return origin in (f"http://{host}", f"https://{host}")


def make_rpc_app(ctx: RpcContext) -> web.Application:
    """The aiohttp app serving ``/api/v0/<command>`` for every command of :data:`ROUTES`."""
    routes = {**ROUTES, **ctx.extra_routes}
    credentials: dict[str, str] | None = (ctx.config.get("API") or {}).get("BasicAuthCredentials") or None

    async def dispatch(request: web.Request) -> web.StreamResponse:
        command = request.match_info["command"].strip("/")
        t0 = time.perf_counter()
        status = 500
        try:
            handler = routes.get(command)
            if handler is None:
                raise RpcError(f"unknown command {command!r}", CODE_NOT_FOUND)
            if request.method == "OPTIONS":
                status = 204
                return web.Response(status=204, headers={"Allow": "POST, OPTIONS"})
            if request.method != "POST":
                raise RpcError(f"405 - Method Not Allowed: use POST for /api/v0/{command}", status=405)
            if credentials is not None:
                try:
                    authenticate(request, credentials)
                except AuthError as exc:
                    status = 401
                    return unauthorized(str(exc))
            if not _origin_allowed(request):
                raise RpcError("403 - Forbidden: cross-origin request refused", status=403)
            resp = await handler(request, ctx, Options(request.query))
            status = resp.status
            return resp
        except RpcError as exc:
            status = exc.status
            return _error_with_allow(exc)
        except CoreError as exc:
            err = _core_error(exc)
            status = err.status
            return error_response(err)
        except UploadAborted as exc:
            err = RpcError(f"upload aborted: {exc}")
            status = err.status
            return error_response(err)
        except PoolBusy as exc:
            status = 503
            resp = error_response(RpcError(str(exc), CODE_NORMAL, status=503))
            resp.headers["Retry-After"] = str(exc.retry_after)
            return resp
        except (ConnectionResetError, ClientPayloadError):
            # The client went away (or a stream failed after it started): nobody to answer.
            status = 499
            return web.Response(status=499)
        except ValueError as exc:
            err = RpcError(str(exc))
            status = err.status
            return error_response(err)
        except Exception as exc:  # noqa: BLE001 - answered as kubo's error JSON, not a bare 500 page
            full = disk_full_message(exc)
            if full is not None:
                err = RpcError(full, CODE_NORMAL, status=507)
            else:
                err = RpcError(f"internal error: {type(exc).__name__}: {exc}", CODE_NORMAL)
            status = err.status
            return error_response(err)
        finally:
            if ctx.metrics is not None:
                ctx.metrics.observe_rpc(command if command in routes else "unknown", status, time.perf_counter() - t0)

    app = web.Application()
    app.router.add_route("*", API_PREFIX + "{command:.+}", dispatch)
    return app


def _error_with_allow(err: RpcError) -> web.Response:
    resp = error_response(err)
    if err.status == 405:
        resp.headers["Allow"] = "POST, OPTIONS"
    return resp
