"""``POST /add`` of the cluster REST API: upload files, directories or a CAR, then cluster-pin the root.

The upload is kubo's ``/api/v0/add`` body (multipart files and directories,
parsed and imported by :mod:`node.uploads`, as the kubo RPC's), or with
``format=car`` one CAR with exactly one root (imported by
:meth:`node.core.CoreAPI.import_cars`, as every CAR). The blocks land in this peer's
block store; the root is then pinned through the cluster with this peer's
swarm addresses as ``origins`` (the allocated peers fetch from here) and the
DAG's size, so the allocator picks peers with room for it. Until that pin is
settled, the upload is kept from garbage collection by an upload marker written
with the import's commit (``blockstore/uploads.py``; none with ``no-pin``, as
kubo's ``add --pin=false``). Output lines are
IPFS Cluster's ``AddedOutput`` ``{"name","cid","bytes"?,"size"?,"allocations"?}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from blockstore import importer
from blockstore.cid import cid_for, cid_to_str
from blockstore.uploads import Uploads
from cluster.pin import Pin
from cluster.pinoptions import pin_from_query

from ..core import CarImportReport
from ..errors import CoreError
from ..kuborpc.options import Options, KuboRpcError
from ..uploads.car_parts import CarParts
from ..uploads.drive import BODY_IDLE_TIMEOUT, drive_upload
from ..uploads.errors import UploadError
from ..uploads.pipe import ItemPipe
from ..uploads.unixfs_add import Added, AddOptions, AddResult, AddWorker

#: add parameters refused (not supported by this node)
UNSUPPORTED = ("shard", "nocopy")


def _params(o: Options) -> Any:
    if o.string("hash", "sha2-256") != "sha2-256":
        raise KuboRpcError("parameter hash: only sha2-256 is supported")
    cid_version = o.integer("cid-version", None)
    if cid_version not in (None, 0, 1):
        raise KuboRpcError(f"parameter cid-version: unknown CID version {cid_version} (0 or 1)")
    layout = o.string("layout", "balanced") or "balanced"
    if layout not in ("balanced", "trickle"):
        raise KuboRpcError(f"parameter layout: {layout!r} is not balanced or trickle")
    try:
        return importer.ImportParams.from_options(
            cid_version=cid_version,
            raw_leaves=o.optional_bool("raw-leaves"),
            chunker=o.string("chunker", None) or None,
            trickle=layout == "trickle",
            hidden=o.boolean("hidden", False),
            wrap_with_directory=o.boolean("wrap-with-directory", False),
        )
    except ValueError as exc:
        raise KuboRpcError(f"bad add parameters: {exc}") from None


async def _import_unixfs(
    request: web.Request, core: Any, o: Options, executor: Executor | None, max_upload: int, body_timeout: float, keep: bool
) -> tuple[list[dict[str, Any]], bytes, int, list[bytes]]:
    params = _params(o)
    opts = AddOptions(
        params=params, pin=False, wrap=params.wrap_with_directory, progress=o.boolean("progress", False), keep_roots=keep
    )
    worker = AddWorker(core, opts, core.import_guard)
    result: AddResult = await drive_upload(request, worker, executor=executor, max_bytes=max_upload, idle_timeout=body_timeout)
    added: list[dict[str, Any]] = []
    roots: list[bytes] = []
    for item in result.items:
        if isinstance(item, Added):
            added.append({"name": item.name, "cid": cid_to_str(item.cid), "size": item.size})
            roots.append(item.cid)
        else:
            added.append({"name": item.name, "bytes": item.bytes})
    root = result.root()
    if root is None:
        raise KuboRpcError("nothing was added")
    return added, root.cid, root.size, roots


async def _import_car(
    request: web.Request, core: Any, executor: Executor | None, max_upload: int, body_timeout: float, keep: bool
) -> tuple[list[dict[str, Any]], bytes, int, list[bytes]]:
    parts: CarParts | None = None

    def worker(pipe: ItemPipe) -> CarImportReport:
        nonlocal parts
        parts = CarParts(pipe, at_most=1)
        return core.import_cars(parts, pin_roots=False, keep_roots=keep)

    try:
        report: CarImportReport = await drive_upload(
            request, worker, executor=executor, max_bytes=max_upload, idle_timeout=body_timeout
        )
    except CoreError as exc:  # a malformed or rejected CAR: answered 500 with its message, as the kubo RPC's
        raise KuboRpcError(str(exc)) from None
    if len(report.roots) != 1:
        _release(core, report.roots)
        raise KuboRpcError(f"a CAR upload must have exactly one root, this one has {len(report.roots)}")
    filename = ""
    for part in (parts.dispositions[0] if parts is not None else "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename":
            filename = value.strip('"')
    return [{"name": filename, "cid": cid_to_str(report.roots[0]), "bytes": report.bytes}], report.roots[0], report.bytes, report.roots


def _release(core: Any, roots: list[bytes]) -> None:
    """Drop the upload markers of ``roots`` (no cluster pin will name them)."""
    if roots:
        Uploads(core.store.db).release(roots)


async def handle_add(
    request: web.Request,
    cluster: Any,
    core: Any,
    executor: Executor | None,
    respond: Callable[[web.Request, AsyncIterator[dict[str, Any]] | list[dict[str, Any]], bool], Any],
    max_upload: int = 0,
    body_timeout: float = BODY_IDLE_TIMEOUT,
) -> web.StreamResponse:
    """The ``/add`` route (see module docstring); ``respond(request, items, stream)`` writes the answer.
    Bodies over ``max_upload`` bytes (0: no limit) get 413, a body that stalls ``body_timeout`` seconds 408."""
    o = Options(request.query)
    for name in UNSUPPORTED:
        if o.boolean(name, False):
            raise KuboRpcError(f"parameter {name}: not supported by this node")
    fmt = o.string("format", "unixfs") or "unixfs"
    if fmt not in ("unixfs", "car"):
        raise KuboRpcError(f"parameter format: {fmt!r} is not unixfs or car")
    if fmt == "car" and o.boolean("wrap-with-directory", False):
        raise KuboRpcError("wrap-with-directory cannot be used with format=car")
    stream = o.boolean("stream-channels", True)
    no_pin = o.boolean("no-pin", False)
    local = o.boolean("local", False)
    pin_from_query(cid_for(b""), request.query)  # bad pin options fail before the upload is read
    keep = not no_pin  # the upload is kept from garbage collection until its cluster pin is settled
    try:
        if fmt == "car":
            added, root, size, roots = await _import_car(request, core, executor, max_upload, body_timeout, keep)
        else:
            added, root, size, roots = await _import_unixfs(request, core, o, executor, max_upload, body_timeout, keep)
    except UploadError as exc:  # the REST API answers it as the kubo RPC's error (node/restapi/app.py error_of)
        raise KuboRpcError(exc.message, status=exc.status) from None
    if not no_pin:
        # only the last root is cluster-pinned: the others (several files without wrap) are not kept
        _release(core, [r for r in roots if r != root])
        pin, defaults = pin_from_query(root, request.query)
        if local and cluster.peer_id not in pin.user_allocations:
            pin = pin.with_(user_allocations=(cluster.peer_id, *pin.user_allocations))
        pin = pin.with_(origins=tuple(pin.origins) or tuple(cluster.swarm_addresses()))
        try:
            committed: Pin = await cluster.pin(pin, size=size or None, defaults=defaults, upload=True)
        except Exception:
            _release(core, [root])  # refused: nothing will fetch it from here
            raise
        for item in added:
            if "cid" in item:
                item["allocations"] = list(committed.allocations)
    return await respond(request, added, stream)
