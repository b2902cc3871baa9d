"""``dag/put``, ``dag/resolve`` and ``dag/stat``, shaped as kubo's core/commands/dag answers them.

- ``dag/put``: each multipart part is one node in ``input-codec`` (default
  dag-json), stored as ``store-codec`` (default dag-cbor) under a CIDv1:
  one ``{"Cid":{"/":cid}}`` line per part.
- ``dag/resolve``: ``{"Cid":{"/":cid},"RemPath":"/rest"}``, the last block a
  path reaches and the part of the path inside it (``""`` when none).
- ``dag/stat``: the DAG sizes, each block counted once per DAG; with
  ``progress`` (kubo's default over HTTP) the summary so far after every block,
  then the final summary with ``UniqueBlocks``, ``SharedSize`` and ``Ratio``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from blockstore.cid import cid_to_str
from blockstore.visited import VisitedSet

from .options import Options, KuboRpcError, format_cid
from ..uploads.multipart import PartStart
from ..uploads.pipe import ItemPipe, PartReader, UploadAborted
from .respond import chunked_headers, encode_json, json_response, ndjson_response, stream_generator

if TYPE_CHECKING:
    from .app import RpcContext

#: largest input part of ``dag/put`` read into memory (the stored block is at most 2 MiB)
MAX_DAG_PUT_INPUT = 8 * 1024 * 1024


async def h_dag_put(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``dag/put``: one ``{"Cid":{"/":...}}`` line per multipart part."""
    from .app import _upload

    input_codec = o.string("input-codec", "dag-json") or "dag-json"
    store_codec = o.string("store-codec", "dag-cbor") or "dag-cbor"
    hash_fn = o.string("hash", "sha2-256") or "sha2-256"
    pin = o.boolean("pin", False)
    allow_big = o.boolean("allow-big-block", False)

    def worker(pipe: ItemPipe) -> list[dict[str, Any]]:
        out = []
        while True:
            ev = pipe.get()
            if ev is None:
                break
            if not isinstance(ev, PartStart):
                raise UploadAborted("multipart data outside a part")
            reader = PartReader(pipe)
            data = reader.read(MAX_DAG_PUT_INPUT + 1)
            reader.drain()
            if len(data) > MAX_DAG_PUT_INPUT:
                raise KuboRpcError(f"dag/put input over {MAX_DAG_PUT_INPUT} bytes: a node must encode to at most 2 MiB")
            cid = ctx.core.dag_put(
                data, input_codec=input_codec, store_codec=store_codec, hash_fn=hash_fn, pin=pin, allow_big_block=allow_big
            )
            out.append({"Cid": {"/": cid_to_str(cid)}})
        return out

    out = await _upload(request, ctx, worker, "dag/put")
    if ctx.metrics is not None:
        ctx.metrics.blocks_written(len(out))
    return ndjson_response(out)


async def h_dag_resolve(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``dag/resolve``: ``{"Cid":{"/":cid},"RemPath":...}``."""
    path = o.one_arg("ref")
    cid, rest = await ctx.run(ctx.core.dag_resolve, path)
    return json_response({"Cid": {"/": cid_to_str(cid)}, "RemPath": ("/" + "/".join(rest)) if rest else ""})


def go_float32(value: float) -> float | int:
    """``value`` as Go's encoding/json writes a float32: the shortest decimal that reads back as the same float32."""
    target = struct.pack("<f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.pack("<f", float(text)) == target:
            number = float(text)
            return int(number) if number.is_integer() else number
    return value


class _Summary:
    """kubo's ``DagStatSummary`` while it is built."""

    def __init__(self, base: str | None) -> None:
        self.base = base
        self.stats: list[dict[str, Any]] = []
        self.total = 0
        self.redundant = 0
        self.unique = 0

    def json(self, final: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if final and self.unique:
            out["UniqueBlocks"] = self.unique
        if self.total:
            out["TotalSize"] = self.total
        if final:
            shared = self.redundant - self.total
            if shared:
                out["SharedSize"] = shared
            ratio = go_float32(self.redundant / self.total) if self.total else 0
            if ratio:
                out["Ratio"] = ratio
        stats = []
        for s in self.stats:
            item: dict[str, Any] = {"Cid": s["Cid"]}
            if s["Size"]:
                item["Size"] = s["Size"]
            if s["NumBlocks"]:
                item["NumBlocks"] = s["NumBlocks"]
            stats.append(item)
        if stats:
            out["DagStats"] = stats
        return out


async def h_dag_stat(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``dag/stat``: NDJSON summaries (after each block with ``progress``, the default), then the final one."""
    args = o.some_args("root")
    progress = o.boolean("progress", True)
    base = o.string("cid-base", None)

    def roots() -> list[bytes]:
        out = []
        for path in args:
            cid, rest = ctx.core.dag_resolve(path)
            if rest:
                raise KuboRpcError("cannot return size for anything other than a DAG with a root CID")
            out.append(cid)
        return out

    root_cids = await ctx.run(roots)

    def lines(local: bool) -> Iterator[bytes]:
        summary = _Summary(base)
        across = VisitedSet(ctx.core.store.db) if len(root_cids) > 1 else None
        try:
            for root in root_cids:
                entry = {"Cid": format_cid(root, base), "Size": 0, "NumBlocks": 0}
                summary.stats.append(entry)
                with VisitedSet(ctx.core.store.db) as seen:
                    for cid, size in ctx.core.dag_blocks(root, seen, local=local):
                        entry["Size"] += size
                        entry["NumBlocks"] += 1
                        if across is None or across.visit(cid):
                            summary.total += size
                            summary.unique += 1
                        summary.redundant += size
                        if progress:
                            yield encode_json(summary.json(final=False))
            yield encode_json(summary.json(final=True))
        finally:
            if across is not None:
                across.close()

    # blocks not stored here are fetched on the loop, then the walk is made again (node/fetching.py)
    return await stream_generator(request, ctx.executor, ctx.reader().walk(lines), headers=chunked_headers())
