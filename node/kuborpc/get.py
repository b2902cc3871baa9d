"""``get``: a UnixFS file or directory as a tar stream (gzip-compressed with ``compress``), as kubo sends it.

The DAG is fetched first when it is not all stored here (node/fetching.py);
the archive is written by :mod:`blockstore.tarexport` while the blocks are
read, in the worker pool a batch at a time, and streamed with backpressure
(respond.py): a directory tree of any size passes with flat memory. ``X-Content-Length`` is
what kubo announces (the file size, or a directory's cumulative DAG size).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from aiohttp import web

from .options import Options, KuboRpcError
from .respond import stream_generator, stream_headers

if TYPE_CHECKING:
    from .app import RpcContext


def compression_level(o: Options) -> int:
    """0 without ``compress``; else ``compression-level`` (1-9) or gzip's default."""
    level = o.integer("compression-level", None)
    if not o.boolean("compress", False):
        return 0
    if level is None:
        return zlib.Z_DEFAULT_COMPRESSION
    if not 1 <= level <= 9:
        raise KuboRpcError("compression level must be between 1 and 9")
    return level


async def h_get(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``get``: ``application/x-tar`` (or ``application/gzip``) byte stream."""
    path = o.one_arg("ipfs-path")
    archive = o.boolean("archive", False)
    level = compression_level(o)
    o.string("output", None)  # where kubo's CLI writes; nothing to do on the server
    o.boolean("progress", False)
    size, chunks = await ctx.reader().get_tar(path, archive=archive, level=level)  # the DAG is fetched first
    content_type = "application/gzip" if level else "application/x-tar"
    headers = stream_headers(content_type, **{"X-Content-Length": str(size)})
    return await stream_generator(request, ctx.executor, chunks, headers=headers)
