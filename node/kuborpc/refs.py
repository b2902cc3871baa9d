"""``refs`` and ``refs/local``: the links of DAGs and the local blocks, as kubo streams them.

Every line is kubo's ``RefWrapper``, ``{"Ref": ..., "Err": ...}`` with both
fields always present. ``refs`` lists the edges below each path (``-r`` for
all levels, ``--max-depth``, ``--unique`` with a disk-spilling seen set,
``--edges`` / ``--format`` with ``<src>``, ``<dst>``, ``<linkname>``); a root
whose walk fails gets a ``{"Ref":"","Err":msg}`` line and the next root is
walked, as kubo does. IPFS Cluster follows a pin's progress with ``refs -r``,
so lines are written as soon as the walk produces them. Blocks not stored
here are fetched over bitswap (:meth:`node.fetching.FetchingCore.walk`); a
root that cannot be fetched gets its error line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from .options import Options, KuboRpcError, format_cid
from .respond import chunked_headers, encode_json, stream_generator

if TYPE_CHECKING:
    from .app import RpcContext


async def h_refs(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``refs``: one ``{"Ref","Err"}`` line per listed edge."""
    args = o.some_args("ipfs-path")
    fmt = o.string("format", "<dst>")
    if fmt is None:
        fmt = "<dst>"
    edges = o.boolean("edges", False)
    unique = o.boolean("unique", False)
    recursive = o.boolean("recursive", False)
    max_depth = o.integer("max-depth", -1)
    assert max_depth is not None
    base = o.string("cid-base", None)
    if not recursive:
        max_depth = 1  # only the direct links
    if edges:
        if fmt != "<dst>":
            raise KuboRpcError("using format argument with edges is not allowed")
        fmt = "<src> -> <dst>"

    roots = await ctx.run(lambda: [ctx.core.resolve(p) for p in args])

    def lines(local: bool) -> Iterator[bytes]:
        for edge, err in ctx.core.refs(roots, max_depth=max_depth, unique=unique, local=local):
            if edge is None:
                yield encode_json({"Ref": "", "Err": err})
                continue
            src, dst, name = edge
            ref = fmt.replace("<src>", format_cid(src, base)).replace("<dst>", format_cid(dst, base))
            yield encode_json({"Ref": ref.replace("<linkname>", name), "Err": ""})

    # blocks b lacks are fetched on the loop with max_depth levels below them (node/fetching.py)
    chunks = ctx.reader().walk(lines, depth=None if max_depth < 0 else max_depth)
    return await stream_generator(request, ctx.executor, chunks, headers=chunked_headers())


async def h_refs_local(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``refs/local`` (also ``repo/ls``): every stored block as a CIDv1 raw, one ``{"Ref","Err"}`` line each."""
    base = o.string("cid-base", None)

    def lines() -> Iterator[bytes]:
        for cid in ctx.core.refs_local():
            yield encode_json({"Ref": format_cid(cid, base), "Err": ""})

    return await stream_generator(request, ctx.executor, lines(), headers=chunked_headers())
