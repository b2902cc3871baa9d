"""``POST /add`` of the cluster REST API: upload files, directories or a CAR, then cluster-pin the root.

The upload is kubo's ``/api/v0/add`` body (multipart files and directories,
parsed and imported by :mod:`node.rpc.upload` / :mod:`node.rpc.add`), or with
``format=car`` one CAR with exactly one root. The blocks land in this peer's
block store; the root is then pinned through the cluster with this peer's
swarm addresses as ``origins`` (the allocated peers fetch from here) and the
DAG's size, so the allocator picks peers with room for it. Output lines are
IPFS Cluster's ``AddedOutput`` ``{"name","cid","bytes"?,"size"?,"allocations"?}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from blockstore import car, importer
from blockstore.carimport import CarImporter
from blockstore.cid import CidError, cid_for, cid_from_str, cid_to_str
from blockstore.store import BlockTooLarge, HashMismatch
from cluster.pin import Pin
from cluster.pinoptions import pin_from_query

from ..rpc.add import AddOptions, AddWorker
from ..rpc.multipart import PartStart
from ..rpc.options import Options, RpcError
from ..rpc.pipe import ItemPipe, PartReader, UploadAborted
from ..rpc.upload import BODY_IDLE_TIMEOUT, drive_upload

#: add parameters refused (not supported by this node)
UNSUPPORTED = ("shard", "nocopy")


def _params(o: Options) -> Any:
    if o.string("hash", "sha2-256") != "sha2-256":
        raise RpcError("parameter hash: only sha2-256 is supported")
    cid_version = o.integer("cid-version", None)
    if cid_version not in (None, 0, 1):
        raise RpcError(f"parameter cid-version: unknown CID version {cid_version} (0 or 1)")
    layout = o.string("layout", "balanced") or "balanced"
    if layout not in ("balanced", "trickle"):
        raise RpcError(f"parameter layout: {layout!r} is not balanced or trickle")
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
        raise RpcError(f"bad add parameters: {exc}") from None


async def _import_unixfs(
    request: web.Request, core: Any, o: Options, executor: Executor | None, max_upload: int, body_timeout: float
) -> tuple[list[dict[str, Any]], bytes, int]:
    params = _params(o)
    opts = AddOptions(params=params, pin=False, wrap=params.wrap_with_directory, progress=o.boolean("progress", False))
    worker = AddWorker(core, opts, core.import_guard)
    out = await drive_upload(request, worker, executor=executor, max_bytes=max_upload, idle_timeout=body_timeout)
    added = []
    root: tuple[bytes, int] | None = None
    for obj in out:
        if "Hash" in obj:
            size = int(obj.get("Size", 0) or 0)
            added.append({"name": obj.get("Name", ""), "cid": obj["Hash"], "size": size})
            root = (cid_from_str(obj["Hash"]), size)
        elif "Bytes" in obj:
            added.append({"name": obj.get("Name", ""), "bytes": int(obj["Bytes"])})
    if root is None:
        raise RpcError("nothing was added")
    return added, root[0], root[1]


async def _import_car(
    request: web.Request, core: Any, executor: Executor | None, max_upload: int, body_timeout: float
) -> tuple[list[dict[str, Any]], bytes, int]:
    def worker(pipe: ItemPipe) -> tuple[str, list[bytes], int]:
        with core.import_guard():
            ev = pipe.get()
            if not isinstance(ev, PartStart):
                raise RpcError("no CAR was sent (expected a multipart part named 'file')")
            name = ev.headers.get("content-disposition", "")
            reader = PartReader(pipe)
            imp = CarImporter(core.store)
            try:
                while not imp.done and (data := reader.next_data()) is not None:
                    imp.feed(data)
                result = imp.finish()
            except car.CarError as exc:
                raise RpcError(f"malformed CAR: {exc}") from None
            except (HashMismatch, BlockTooLarge, CidError) as exc:
                raise RpcError(f"rejected CAR: {exc}") from None
            finally:
                imp.abort()
            reader.drain()
            if pipe.get() is not None:
                raise UploadAborted("send one CAR per request")
        return name, list(result.roots), result.bytes

    disposition, roots, nbytes = await drive_upload(
        request, worker, executor=executor, max_bytes=max_upload, idle_timeout=body_timeout
    )
    if len(roots) != 1:
        raise RpcError(f"a CAR upload must have exactly one root, this one has {len(roots)}")
    filename = ""
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename":
            filename = value.strip('"')
    return [{"name": filename, "cid": cid_to_str(roots[0]), "bytes": nbytes}], roots[0], nbytes


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
            raise RpcError(f"parameter {name}: not supported by this node")
    fmt = o.string("format", "unixfs") or "unixfs"
    if fmt not in ("unixfs", "car"):
        raise RpcError(f"parameter format: {fmt!r} is not unixfs or car")
    if fmt == "car" and o.boolean("wrap-with-directory", False):
        raise RpcError("wrap-with-directory cannot be used with format=car")
    stream = o.boolean("stream-channels", True)
    no_pin = o.boolean("no-pin", False)
    local = o.boolean("local", False)
    pin_from_query(cid_for(b""), request.query)  # bad pin options fail before the upload is read
    if fmt == "car":
        added, root, size = await _import_car(request, core, executor, max_upload, body_timeout)
    else:
        added, root, size = await _import_unixfs(request, core, o, executor, max_upload, body_timeout)
    if not no_pin:
        pin, defaults = pin_from_query(root, request.query)
        if local and cluster.peer_id not in pin.user_allocations:
            pin = pin.with_(user_allocations=(cluster.peer_id, *pin.user_allocations))
        pin = pin.with_(origins=tuple(pin.origins) or tuple(cluster.swarm_addresses()))
        committed: Pin = await cluster.pin(pin, size=size or None, defaults=defaults)
        for item in added:
            if "cid" in item:
                item["allocations"] = list(committed.allocations)
    return await respond(request, added, stream)
