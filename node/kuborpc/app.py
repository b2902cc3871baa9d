"""The kubo RPC subset (``/api/v0/...``) as an aiohttp application.

POST only (other methods: 405; OPTIONS: 204), options in the query string,
file inputs as ``multipart/form-data``, errors as kubo's error JSON: HTTP
500 and code 0 for every command error, 400 and code 1 for requests that
cannot be parsed, plain-text 404/405/403 as go-ipfs-cmds answers an unknown
endpoint, a wrong method or a foreign origin (see options.py). The node's
synchronous operations (:class:`node.core.CoreAPI`) run in worker threads,
driven by :class:`node.fetching.FetchingCore` (``ctx.reader()``, ``ctx.run``)
so that blocks missing from the store are awaited on the event loop, never in
a thread; uploads stream through :func:`node.uploads.drive.drive_upload` with
bounded memory (in their own pool, ``uploads``); downloads stream in batches
(respond.py). Commands are grouped by module: this one (node, files, blocks,
CAR, repo), pins.py, dag.py (``dag put/resolve/stat``), refs.py and get.py.

Why one module of over 500 lines: the dispatch (one error mapping, auth, origin check, metrics)
and the handlers of the node, files, blocks, CAR and repo commands; the other command families
are in their own modules, as listed above.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientPayloadError, web

from blockstore import importer
from blockstore.cid import DAG_PB, RAW, codec_of, make_cid
from blockstore.db import disk_full_message
from blockstore.pins import LocalPinError, check_pin_name

from ..core import CarImportReport, CoreAPI
from ..errors import Busy, CoreError, NotFound
from ..fetching import FetchingCore
from ..restapi.auth import AuthError, authenticate, unauthorized
from ..uploads.car_parts import CarParts
from ..uploads.drive import drive_upload
from ..uploads.errors import UploadError
from ..uploads.multipart import PartStart
from ..uploads.pipe import ItemPipe, PartReader, UploadAborted
from ..uploads.unixfs_add import Added, AddOptions, AddResult, AddWorker
from ..workers import PoolBusy
from . import dag, get, pins, refs
from .options import CODE_CLIENT, CODE_NORMAL, KuboRpcError, Options, format_cid, parse_cid_arg
from .respond import error_response, json_response, ndjson_response, stream_generator, stream_headers, text_error
from .settings import RpcSettings

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
    #: what the handlers need from ``config``, read once (None: built from ``config`` here)
    settings: RpcSettings | None = None

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = RpcSettings.from_config(self.config)

    @property
    def conf(self) -> RpcSettings:
        """The settings (always set after construction)."""
        assert self.settings is not None
        return self.settings

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


# --------------------------------------------------------------------------- errors and streams
def _core_error(exc: CoreError) -> KuboRpcError:
    """Every error of a command is kubo's code 0 / HTTP 500 (go-ipfs-cmds has no 404 for them);
    ours: 429 when the node's pin queue is full (``Busy``)."""
    if isinstance(exc, Busy):
        return KuboRpcError(str(exc), CODE_NORMAL, status=429)
    return KuboRpcError(str(exc), CODE_NORMAL)


async def stream_chunks(
    request: web.Request,
    ctx: RpcContext,
    chunks: AsyncIterator[bytes],
    *,
    content_type: str = "text/plain",
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Stream byte chunks (``X-Stream-Output``), node/fetching.py's streams; errors before the
    first byte become error JSON, after it a cut body (respond.py)."""
    return await stream_generator(request, ctx.executor, chunks, headers=stream_headers(content_type, **(headers or {})))


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
    conf = ctx.conf
    args = o.args()
    if args and args[0] != conf.peer_id:
        raise KuboRpcError(f"peer {args[0]} is not known to this node (only its own identity is answered)")
    if conf.public_key_error:
        raise KuboRpcError(conf.public_key_error, CODE_NORMAL)
    if ctx.p2p is not None:
        info = await ctx.p2p.id("swarm")
        return json_response({**info, "AgentVersion": info.get("AgentVersion") or AGENT_VERSION})
    return json_response(
        {"ID": conf.peer_id, "PublicKey": conf.public_key, "Addresses": [], "AgentVersion": AGENT_VERSION, "Protocols": []}
    )


def _need_p2p(ctx: RpcContext) -> Any:
    if ctx.p2p is None:
        raise KuboRpcError("this node runs offline (started with --offline): no swarm", CODE_NORMAL)
    return ctx.p2p


async def h_swarm_peers(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``swarm/peers``: ``{"Peers":[{"Addr","Peer","Identify"}]}`` (``null`` when none, as kubo).

    kubo's ``connInfo`` always carries an ``Identify`` object (zero-valued
    unless ``identify`` is asked; Pinion answers it zero-valued)."""
    for flag in ("verbose", "streams", "latency", "direction", "identify"):
        o.boolean(flag, False)
    peers = await _need_p2p(ctx).peers("swarm")
    empty = {"ID": "", "PublicKey": "", "Addresses": None, "AgentVersion": "", "Protocols": None}
    return json_response({"Peers": [{"Addr": p["Addr"], "Peer": p["Peer"], "Identify": empty} for p in peers] or None})


async def h_swarm_connect(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``swarm/connect``: dial ``/.../p2p/<id>`` addresses -> ``{"Strings":["connect <id> success"]}``."""
    args = o.some_args("address")
    p2p = _need_p2p(ctx)
    from node.p2p.hosts import P2PError

    out = []
    for addr in args:
        try:
            peer = await p2p.connect(addr, "swarm")
        except P2PError as exc:
            raise KuboRpcError(f"connect {addr} failure: {exc}", CODE_NORMAL) from None
        except ValueError as exc:
            raise KuboRpcError(f"invalid peer address {addr!r}: {exc}") from None
        out.append(f"connect {peer} success")
    return json_response({"Strings": out})


# --------------------------------------------------------------------------- files
async def h_cat(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``cat``: a file's bytes (``offset``, ``length``)."""
    args = o.some_args("ipfs-path")
    offset = o.integer("offset", 0) or 0
    length = o.integer("length", None)
    o.boolean("progress", False)
    if offset < 0:
        raise KuboRpcError("cannot specify negative offset")
    if length is not None and length < 0:
        raise KuboRpcError("cannot specify negative length")

    async def chunks() -> AsyncIterator[bytes]:
        for path in args:
            async with aclosing(ctx.reader().cat(path, offset, length)) as part:
                async for chunk in part:
                    yield chunk

    return await stream_chunks(request, ctx, chunks())


_TYPE_CODES = {"directory": 1, "hamt-shard": 1, "file": 2, "raw": 2, "symlink": 4}
#: Go's zero time.Time as encoding/json writes it (kubo's LsLink.ModTime without UnixFS mtime)
_ZERO_TIME = "0001-01-01T00:00:00Z"


def _go_file_mode(entry_type: str, mode: int | None) -> int:
    """A UnixFS mode as Go's ``os.FileMode`` number (kubo's ``LsLink.Mode``); 0 without UnixFS mode."""
    if not mode:
        return 0
    perm = mode & 0o777
    if mode & 0o4000:
        perm |= 1 << 23  # os.ModeSetuid
    if mode & 0o2000:
        perm |= 1 << 22  # os.ModeSetgid
    if mode & 0o1000:
        perm |= 1 << 20  # os.ModeSticky
    if entry_type == "directory":
        perm |= 1 << 31  # os.ModeDir
    elif entry_type == "symlink":
        perm |= 1 << 27  # os.ModeSymlink
    return perm


def _rfc3339(mtime: tuple[int, int | None] | None) -> str:
    if mtime is None:
        return _ZERO_TIME
    import datetime

    secs, nsecs = mtime
    t = datetime.datetime.fromtimestamp(secs, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if nsecs:
        t += ("." + f"{nsecs:09d}").rstrip("0")
    return t + "Z"


async def h_ls(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``ls``: directory listings ``{"Objects":[{"Hash","Links":[...]}]}``, links sorted by name.

    Each link has kubo's ``LsLink`` fields, ``Mode`` and ``ModTime`` included
    (0 and Go's zero time when the entry has no UnixFS metadata)."""
    args = o.some_args("ipfs-path")
    base = o.string("cid-base", None)
    for flag in ("headers", "resolve-type", "size", "stream", "long"):
        o.boolean(flag, True)

    def links(entries: list[Any]) -> list[dict[str, Any]]:
        """kubo's links of listed entries; their UnixFS metadata is read from the store only
        (``ctx.reader().ls`` fetched the entries' first blocks with the directory)."""
        from blockstore import exporter

        out = []
        for e in entries:
            mode = mtime = None
            if codec_of(e.cid) == DAG_PB:  # UnixFS metadata lives in dag-pb nodes only
                try:
                    st = exporter.stat(ctx.core.store.get, e.cid)
                    mode, mtime = st.mode, st.mtime
                except (exporter.ExportError, LookupError):
                    pass
            out.append(
                {
                    "Name": e.name,
                    "Hash": format_cid(e.cid, base),
                    "Size": e.size if e.size is not None and e.type == "file" else 0,
                    "Type": _TYPE_CODES.get(str(e.type), 0),
                    "Target": getattr(e, "target", None) or "",
                    "Mode": _go_file_mode(str(e.type), mode),
                    "ModTime": _rfc3339(mtime),
                }
            )
        out.sort(key=lambda link: link["Name"].encode("utf-8", "surrogateescape"))
        return out

    objects = []
    for path in args:
        entries = await ctx.reader().ls(path)  # a remote directory is fetched on the loop
        objects.append({"Hash": path, "Links": await ctx.run(links, entries)})
    return json_response({"Objects": objects})


def _add_options(o: Options) -> AddOptions:
    for name in ("nocopy", "fscache", "to-files", "inline", "preserve-mode", "preserve-mtime", "mode", "mtime"):
        if o.boolean(name, False) if name not in ("to-files", "mode", "mtime") else o.has(name):
            raise KuboRpcError(f"option {name!r} is not supported by this node (UnixFS mode/mtime are not stored)")
    hash_fn = o.string("hash", "sha2-256")
    if hash_fn != "sha2-256":
        raise KuboRpcError(f"option 'hash': unsupported hash function {hash_fn!r} (only sha2-256)")
    cid_version = o.integer("cid-version", None)
    if cid_version not in (None, 0, 1):
        raise KuboRpcError(f"option 'cid-version': unknown CID version {cid_version} (0 or 1)")
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
        raise KuboRpcError(str(exc)) from None
    base = o.string("cid-base", None)
    if base:
        format_cid(make_cid(1, RAW, b"\x12\x20" + bytes(32)), base)
    pin = o.boolean("pin", True)
    pin_name = o.string("pin-name", None)
    if pin_name is not None:
        try:
            check_pin_name(pin_name)
        except LocalPinError as exc:
            raise KuboRpcError(str(exc)) from None
        if not pin:
            raise KuboRpcError("pin-name option requires pin to be set")
    return AddOptions(
        params=params,
        pin=pin,
        pin_name=pin_name,
        wrap=wrap,
        progress=o.boolean("progress", False),
        quieter=o.boolean("quieter", False),
        only_hash=o.boolean("only-hash", False),
        name_of_cid=lambda cid: format_cid(cid, base),
    )


def _add_lines(result: AddResult, base: str | None) -> list[dict[str, Any]]:
    """kubo's ``add`` output: ``{"Name","Hash","Size"}`` per added item, ``{"Name","Bytes"}`` per progress report."""
    return [
        {"Name": item.name, "Hash": format_cid(item.cid, base), "Size": str(item.size)}
        if isinstance(item, Added)
        else {"Name": item.name, "Bytes": item.bytes}
        for item in result.items
    ]


async def h_add(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``add``: multipart files/directories -> NDJSON ``{"Name","Hash","Size"}`` (+ progress)."""
    opts = _add_options(o)
    o.boolean("quiet", False)
    o.boolean("silent", False)
    worker = AddWorker(ctx.core, opts, ctx.writer_lock)
    result: AddResult = await _upload(request, ctx, worker, "add")
    if ctx.metrics is not None:
        ctx.metrics.blocks_written(result.new_blocks)
    return ndjson_response(_add_lines(result, o.string("cid-base", None)))


async def _upload(request: web.Request, ctx: RpcContext, worker: Callable[[ItemPipe], Any], endpoint: str) -> Any:
    on_bytes = None
    if ctx.metrics is not None:
        m = ctx.metrics

        def on_bytes(n: int) -> None:
            m.add_upload_bytes(endpoint, n)

    max_bytes = ctx.conf.max_upload_size
    idle = ctx.conf.body_timeout
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
    return web.Response(body=data, headers=stream_headers("application/vnd.ipld.raw"))


async def h_block_stat(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``block/stat``: ``{"Key","Size"}``."""
    cid = parse_cid_arg(o.one_arg("cid"))
    cid, size = await ctx.run(ctx.core.block_stat, cid)
    return json_response({"Key": format_cid(cid, o.string("cid-base", None)), "Size": size})


async def h_block_rm(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``block/rm``: one ``{"Hash"}`` line per removed block, ``{"Hash","Error"}`` per refused one.

    As kubo (``removedBlock``, both fields ``omitempty``): a success line has
    no ``Error`` key at all, since clients read its mere presence as a
    failure. A pinned block (recursively, directly or inside a recursive
    pin's DAG) is refused; a missing one too unless ``force``."""
    args = o.some_args("cid")
    cids = [parse_cid_arg(a) for a in args]
    force = o.boolean("force", False)
    quiet = o.boolean("quiet", False)
    base = o.string("cid-base", None)
    out = []
    for cid in cids:
        line: dict[str, Any] = {"Hash": format_cid(cid, base)}
        try:
            await ctx.run(lambda c=cid: ctx.core.block_rm(c, force=force))
        except CoreError as exc:
            line["Error"] = str(exc)
        if "Error" in line or not quiet:
            out.append(line)
    return ndjson_response(out)


_CODEC_ALIASES = {"v0": ("dag-pb", 0), "protobuf": ("dag-pb", 0), "cbor": ("dag-cbor", 1)}


async def h_block_put(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``block/put``: each multipart part is one block -> ``{"Key","Size"}`` per block."""
    codec = o.string("cid-codec", None) or "raw"
    version = 1
    fmt = o.string("format", None)
    if fmt and o.string("cid-codec", "raw") not in ("", "raw"):
        raise KuboRpcError('unable to use "format" (deprecated) and a custom "cid-codec" at the same time')
    if fmt:
        if fmt not in _CODEC_ALIASES and fmt not in ("raw", "dag-pb", "dag-cbor"):
            raise KuboRpcError(f"option 'format': unsupported block format {fmt!r}")
        codec, version = _CODEC_ALIASES.get(fmt, (fmt, 1))
    mhtype = o.string("mhtype", "sha2-256") or "sha2-256"
    mhlen = o.integer("mhlen", -1)
    if mhlen not in (-1, 32):
        raise KuboRpcError(f"option 'mhlen': unsupported digest length {mhlen} (32)")
    if codec not in ("raw", "dag-pb", "dag-cbor"):
        raise KuboRpcError(f"option 'cid-codec': unsupported codec {codec!r} (raw, dag-pb, dag-cbor)")
    if mhtype not in ("sha2-256", "blake2b-256"):
        raise KuboRpcError(f"option 'mhtype': unsupported hash {mhtype!r} (sha2-256, blake2b-256)")
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
                raise KuboRpcError(f"block too large: over the node's maximum of {max_size} bytes")
            reader.drain()
            cid, size = ctx.core.block_put(data, codec=codec, mhtype=mhtype, cid_version=version, pin=pin)
            out.append({"Key": format_cid(cid, base), "Size": size})
        if not out:
            raise KuboRpcError("no block was sent (expected a multipart part named 'file')")
        return out

    out = await _upload(request, ctx, worker, "block/put")
    if ctx.metrics is not None:
        ctx.metrics.blocks_written(len(out))
    return ndjson_response(out)


# --------------------------------------------------------------------------- DAG / CAR
async def h_dag_import(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``dag/import``: CAR uploads -> ``{"Root":{"Cid":{"/":..},"PinErrorMsg":...}}`` per pinned root (+ ``Stats``).

    As kubo: roots are pinned after every CAR is read, each only if its whole DAG
    is stored (else ``PinErrorMsg`` says what is missing); without pinning there
    are no ``Root`` lines."""
    stats = o.boolean("stats", False)
    o.boolean("allow-big-block", False)
    local_only = o.boolean("local-only", False)  # a partial CAR: kubo then pins nothing
    if local_only and o.has("pin-roots") and o.boolean("pin-roots", False):
        raise KuboRpcError(
            "--local-only implies --pin-roots=false and cannot be combined with --pin-roots=true; please drop one of them"
        )
    pin_roots = o.boolean("pin-roots", True) and not local_only
    o.boolean("silent", False)
    base = o.string("cid-base", None)

    def worker(pipe: ItemPipe) -> CarImportReport:
        return ctx.core.import_cars(CarParts(pipe), pin_roots=pin_roots)

    report: CarImportReport = await _upload(request, ctx, worker, "dag/import")
    if ctx.metrics is not None:
        ctx.metrics.blocks_written(report.blocks)
    # as kubo: a Root line per root only when roots are pinned, with why a root could not be
    out: list[dict[str, Any]] = []
    if pin_roots:
        out = [{"Root": {"Cid": {"/": format_cid(r, base)}, "PinErrorMsg": report.pin_errors.get(r, "")}} for r in report.roots]
    if stats:
        out.append({"Stats": {"BlockCount": report.blocks, "BlockBytesCount": report.bytes}})
    return ndjson_response(out)


async def h_dag_export(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``dag/export``: a CARv1 of the DAG (DFS, no duplicates); ``local-only``: only the blocks stored here."""
    path = o.one_arg("root")
    o.boolean("progress", False)
    local_only = o.boolean("local-only", False)
    chunks = ctx.reader().car_export(path, local_only=local_only)
    return await stream_chunks(request, ctx, chunks, content_type="application/vnd.ipld.car")


# --------------------------------------------------------------------------- repo
async def h_repo_stat(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``repo/stat``: ``{"RepoSize","StorageMax","NumObjects","RepoPath","Version"}`` (+ Pinion's ``DataSize``).

    ``size-only`` answers kubo's whole ``Stat`` with the other fields zero-valued, as kubo does."""
    st = await ctx.run(ctx.core.repo_stat)
    if o.boolean("size-only", False):
        return json_response(
            {"RepoSize": st["RepoSize"], "StorageMax": st["StorageMax"], "NumObjects": 0, "RepoPath": "", "Version": ""}
        )
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
    """``repo/gc``: ``{"Key":{"/":cid}}`` per removed block (CIDv1 raw of its multihash).

    As kubo, ``quiet`` only shortens the CLI's text (the JSON lines stay) and
    ``silent`` leaves the answer empty."""
    o.boolean("quiet", False)
    silent = o.boolean("silent", False)
    o.boolean("stream-errors", False)
    base = o.string("cid-base", None)

    def run_gc() -> list[bytes]:
        return list(ctx.core.repo_gc())

    async with ctx.gc_lock:  # one GC holds a thread, the others wait on the loop
        removed = await ctx.run(run_gc)
    if silent:
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
    "pin/add": pins.h_pin_add,
    "pin/rm": pins.h_pin_rm,
    "pin/ls": pins.h_pin_ls,
    "dag/put": dag.h_dag_put,
    "dag/resolve": dag.h_dag_resolve,
    "dag/stat": dag.h_dag_stat,
    "refs": refs.h_refs,
    "refs/local": refs.h_refs_local,
    "repo/ls": refs.h_refs_local,
    "get": get.h_get,
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
    credentials = ctx.conf.credentials

    async def dispatch(request: web.Request) -> web.StreamResponse:
        command = request.match_info["command"].strip("/")
        t0 = time.perf_counter()
        status = 500
        try:
            if credentials is not None and request.method != "OPTIONS":  # before anything is told about the API
                try:
                    authenticate(request, credentials)
                except AuthError as exc:
                    status = 401
                    return unauthorized(str(exc))
            if request.method == "OPTIONS":
                status = 204
                return web.Response(status=204, headers={"Allow": "OPTIONS, POST"})
            if request.method != "POST":
                status = 405
                return text_error(405, "405 - Method Not Allowed", {"Allow": "OPTIONS, POST"})
            if not _origin_allowed(request):
                status = 403
                return text_error(403, "403 - Forbidden")
            handler = routes.get(command)
            if handler is None:
                status = 404
                return text_error(404, "404 page not found")
            resp = await handler(request, ctx, Options(request.query))
            status = resp.status
            return resp
        except KuboRpcError as exc:
            status = exc.status
            return error_response(exc)
        except CoreError as exc:
            err = _core_error(exc)
            status = err.status
            return error_response(err)
        except UploadError as exc:
            err = KuboRpcError(exc.message, CODE_CLIENT if exc.client else CODE_NORMAL, status=exc.status)
            status = err.status
            return error_response(err)
        except UploadAborted as exc:
            err = KuboRpcError(f"upload aborted: {exc}")
            status = err.status
            return error_response(err)
        except PoolBusy as exc:
            status = 503
            resp = error_response(KuboRpcError(str(exc), CODE_NORMAL, status=503))
            resp.headers["Retry-After"] = str(exc.retry_after)
            return resp
        except (ConnectionResetError, ClientPayloadError):
            # The client went away (or a stream failed after it started): nobody to answer.
            status = 499
            return web.Response(status=499)
        except ValueError as exc:
            err = KuboRpcError(str(exc), CODE_NORMAL)
            status = err.status
            return error_response(err)
        except Exception as exc:  # noqa: BLE001 - answered as kubo's error JSON, not a bare 500 page
            full = disk_full_message(exc)
            if full is not None:
                err = KuboRpcError(full, CODE_NORMAL, status=507)
            else:
                err = KuboRpcError(f"internal error: {type(exc).__name__}: {exc}", CODE_NORMAL)
            status = err.status
            return error_response(err)
        finally:
            if ctx.metrics is not None:
                ctx.metrics.observe_rpc(command if command in routes else "unknown", status, time.perf_counter() - t0)

    app = web.Application()
    app.router.add_route("*", API_PREFIX + "{command:.+}", dispatch)
    return app
