"""A UnixFS file or directory tree as a streamed tar archive, as ``ipfs get`` sends it.

kubo's ``get`` (core/commands/get.go, boxo ``files.TarWriter``) writes the
node under its own name (the last path segment, or the CID), then each
directory's entries in stored order below it: directories as ``TypeDir``
(mode 0755), files as ``TypeReg`` (0644) with their bytes, symlinks as
``TypeSymlink`` (0777), UnixFS mode and mtime metadata when the node has
them, the current time otherwise; PAX format unless a plain archive is
asked for (then USTAR where it fits). An entry name that would leave the archive's root (``..``, an
empty name, or one with a ``/``) stops the archive with boxo's error.

Headers come from :meth:`tarfile.TarInfo.tobuf`; file bytes are streamed
from the block store one block at a time and never gathered, and a HAMT or
plain directory is listed lazily, so memory stays flat whatever the tree's
size (the stack holds one listing iterator per directory level).
"""

from __future__ import annotations

import tarfile
import time
import zlib
from collections.abc import Callable, Iterator

from . import exporter
from .errors import InvalidData

GetBlock = Callable[[bytes], "bytes | None"]
BLOCK = tarfile.BLOCKSIZE

#: boxo's files.ErrUnixFSPathOutsideRoot
OUTSIDE_ROOT = "relative UnixFS paths outside the root are not allowed, use CAR instead"


class TarExportError(InvalidData):
    """A tree that cannot be written as a tar (an entry name that leaves the root, a non-UnixFS node)."""


def _perm(mode: int | None, default: int) -> int:
    """UnixFS mode bits (permissions, setuid/setgid/sticky) or the default for the type."""
    if mode:
        perms = mode & 0o7777
        if perms:
            return perms
    return default


def _mtime(st: exporter.NodeStat, now: int) -> float:
    if st.mtime is None:
        return now
    secs, nsecs = st.mtime
    return secs + (nsecs or 0) / 1e9


def _check_name(name: str) -> None:
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise TarExportError(f"{OUTSIDE_ROOT} (entry name {name!r})")


def _header(name: str, kind: bytes, size: int, mode: int, mtime: float, fmt: int, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = mtime if fmt == tarfile.PAX_FORMAT else int(mtime)
    info.linkname = linkname
    try:
        return info.tobuf(fmt, "utf-8", "surrogateescape")
    except ValueError:  # too long for USTAR: PAX records, as Go's tar writer falls back
        info.mtime = mtime
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    rest = size % BLOCK
    return b"\0" * (BLOCK - rest) if rest else b""


def node_size(get_block: GetBlock, cid: bytes) -> int:
    """What kubo announces as ``X-Content-Length``: a file's size, a directory's cumulative DAG size."""
    st = exporter.stat(get_block, cid)
    return st.size if st.type in ("file", "symlink") else st.cumulative_size


def tar_stream(get_block: GetBlock, cid: bytes, name: str, *, pax: bool = True) -> Iterator[bytes]:
    """The tar archive of the UnixFS node ``cid`` named ``name``, in pieces."""
    fmt = tarfile.PAX_FORMAT if pax else tarfile.USTAR_FORMAT
    now = int(time.time())
    if name in ("", ".", ".."):
        raise TarExportError(f"{OUTSIDE_ROOT} (name {name!r})")
    st = exporter.stat(get_block, cid)
    yield from _entry(get_block, cid, st, name, fmt, now, None)
    yield b"\0" * (2 * BLOCK)


def _entry(
    get_block: GetBlock, cid: bytes, st: exporter.NodeStat, path: str, fmt: int, now: int, target: str | None
) -> Iterator[bytes]:
    if st.type == "file":
        yield _header(path, tarfile.REGTYPE, st.size, _perm(st.mode, 0o644), _mtime(st, now), fmt)
        for chunk in exporter.read_file(get_block, cid):
            yield chunk
        yield _padding(st.size)
    elif st.type == "symlink":
        link = target if target is not None else exporter.read_symlink(get_block, cid)
        yield _header(path, tarfile.SYMTYPE, 0, _perm(st.mode, 0o777), _mtime(st, now), fmt, link)
    elif st.type == "directory":
        yield from _directory(get_block, cid, st, path, fmt, now)
    else:
        raise TarExportError(f"{path}: a {st.type} node is not a UnixFS file, directory or symlink")


def _directory(get_block: GetBlock, cid: bytes, st: exporter.NodeStat, path: str, fmt: int, now: int) -> Iterator[bytes]:
    yield _header(path, tarfile.DIRTYPE, 0, _perm(st.mode, 0o755), _mtime(st, now), fmt)
    stack: list[tuple[str, Iterator[exporter.DirEntry]]] = [(path, exporter.list_dir(get_block, cid, resolve_types=False))]
    while stack:
        base, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        _check_name(entry.name)
        child = f"{base}/{entry.name}"
        cst = exporter.stat(get_block, entry.cid)
        if cst.type == "directory":
            yield _header(child, tarfile.DIRTYPE, 0, _perm(cst.mode, 0o755), _mtime(cst, now), fmt)
            stack.append((child, exporter.list_dir(get_block, entry.cid, resolve_types=False)))
        else:
            yield from _entry(get_block, entry.cid, cst, child, fmt, now, None)


def gzip_stream(chunks: Iterator[bytes], level: int) -> Iterator[bytes]:
    """``chunks`` gzip-compressed at ``level`` (1-9), streamed."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = comp.compress(chunk)
        if out:
            yield out
    yield comp.flush()
