"""Deserialized UnixFS responses: files (streamed block by block, with ranges), symlinks and directories."""

from __future__ import annotations

import hashlib
import html
from typing import AsyncIterator
from urllib.parse import quote, quote_plus

from blockstore import unixfs_walk
from blockstore.cid import DAG_PB, cid_to_str, codec_of
from blockstore.dagpb import PBLink
from blockstore.unixfs import FILE, RAW as UNIXFS_RAW, UnixFSData

from .errors import GatewayError
from .source import BlockSource
from .walk import stream

__all__ = ["file_size", "read_file", "path_escape", "listing_etag", "dir_entries", "render_listing", "ASSETS_HASH"]

_FILE_TYPES = (FILE, UNIXFS_RAW)

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    ".header{font-size:1.2em;margin-bottom:.5em;word-break:break-all}"
    ".cid{color:#666;font-family:monospace;margin-bottom:1em}"
    "table{border-collapse:collapse;width:100%}td{padding:.25em .5em;border-bottom:1px solid #eee}"
    "a{color:#0b7a8f;text-decoration:none}a:hover{text-decoration:underline}"
    ".ipfs-hash{font-family:monospace;color:#888}.size{text-align:right;white-space:nowrap}"
)
#: identifies the listing template (part of the directory listing Etag)
ASSETS_HASH = hashlib.sha256(_STYLE.encode()).hexdigest()[:12]


def path_escape(segment: str) -> str:
    """Percent-encode one path segment the way Go's ``url.PathEscape`` does."""
    return quote(segment, safe="$&+:=@")


def file_size(cid: bytes, block: bytes, fs: UnixFSData | None) -> int:
    """The byte size of a file entity: a raw block's length, or a UnixFS file's declared size."""
    if codec_of(cid) != DAG_PB:
        return len(block)
    if fs is None or fs.type not in _FILE_TYPES:
        raise GatewayError(500, f"{cid_to_str(cid)} is not a UnixFS file")
    if fs.filesize is not None:
        return fs.filesize
    return len(fs.data or b"") + sum(fs.blocksizes)


def read_file(source: BlockSource, cid: bytes, block: bytes, first: int, last: int) -> AsyncIterator[bytes]:
    """The bytes ``first..last`` (inclusive) of the file ``cid`` whose root block is ``block``, as they arrive.

    The exporter's :func:`~blockstore.unixfs_walk.file_range` walk: only the blocks that overlap the
    range are fetched (ahead, when the source has concurrency); one block per tree level is held.
    """
    return stream(unixfs_walk.file_range(cid, block, first, last + 1), source)  # type: ignore[arg-type]


def listing_etag(dir_cid: bytes) -> str:
    """The strong Etag of a generated directory listing."""
    return f'"DirIndex-{ASSETS_HASH}_CID-{cid_to_str(dir_cid)}"'


async def dir_entries(source: BlockSource, cid: bytes, block: bytes) -> AsyncIterator[tuple[str, PBLink]]:
    """(name, link) of each entry of a plain or HAMT directory, in stored order."""
    async for event in stream(unixfs_walk.dir_entries(cid, block), source):
        if type(event) is tuple:
            name, link = event
            yield name.decode("utf-8", "replace"), link


def _human(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


async def render_listing(
    source: BlockSource, root_text: str, segments: list[str], cid: bytes, block: bytes
) -> AsyncIterator[str]:
    """The HTML index page of a directory, in pieces (breadcrumbs, ``..``, names, hash links, sizes)."""
    base = f"/ipfs/{root_text}"
    crumbs = [f'<a href="{base}">{html.escape(root_text)}</a>']
    href = base
    for seg in segments:
        href += "/" + path_escape(seg)
        crumbs.append(f'<a href="{href}">{html.escape(seg)}</a>')
    title = html.escape("/ipfs/" + "/".join([root_text, *segments]) + "/")
    yield (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>\n"
        f'<div class="header">Index of /ipfs/{"/".join(crumbs)}</div>\n'
        f'<div class="cid">{cid_to_str(cid)}</div>\n<table>\n'
    )
    if segments:
        yield f'<tr><td><a href="{href}/..">..</a></td><td></td><td></td></tr>\n'
    rows: list[str] = []
    async for name, link in dir_entries(source, cid, block):
        target = cid_to_str(link.hash)
        escaped = path_escape(name)
        rows.append(
            f'<tr><td><a href="{href}/{escaped}">{html.escape(name)}</a></td>'
            f'<td><a class="ipfs-hash" translate="no" href="/ipfs/{target}?filename={quote_plus(escaped, safe="")}">'
            f"{target}</a></td>"
            f'<td class="size">{_human(link.tsize)}</td></tr>\n'
        )
        if len(rows) >= 256:
            yield "".join(rows)
            rows.clear()
    rows.append("</table>\n</body></html>\n")
    yield "".join(rows)
