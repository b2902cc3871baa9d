"""multipart/form-data request bodies as kubo's clients send them, streamed from disk.

:func:`walk_parts` lists the parts of a file or directory tree (directories
before their entries, symlinks as ``application/symlink``); :func:`multipart_body`
streams them with one ``name="file"`` part each, the path query-escaped in
``filename`` (https://github.com/ipfs/go-ipfs-cmds, ``cli/parse.go`` and the
kubo RPC docs, https://docs.ipfs.tech/reference/kubo/rpc/#api-v0-add). Used by
:mod:`node.cli.kubo_client` and :mod:`node.cli.cluster_client` (the Cluster
REST ``/add`` takes the same body).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

from ..errors import BadRequest

#: bytes read from a file per chunk of the body
READ_SIZE = 256 * 1024


def walk_parts(path: str, hidden: bool) -> Iterator[tuple[str, str, Any]]:
    """(name, content type, source) of every part kubo's client sends for ``path``.

    Directories come before their entries; entries in name order; hidden
    names (starting with '.') are skipped unless ``hidden``.
    """
    top = os.path.basename(os.path.normpath(path)) or os.path.normpath(path)
    stack: list[tuple[str, str]] = [(path, top)]
    while stack:
        fs_path, name = stack.pop()
        st = os.lstat(fs_path)
        if stat.S_ISLNK(st.st_mode):
            yield name, "application/symlink", os.readlink(fs_path).encode("utf-8", "surrogateescape")
        elif stat.S_ISDIR(st.st_mode):
            yield name, "application/x-directory", b""
            children = sorted(os.listdir(fs_path), reverse=True)
            for child in children:
                if not hidden and child.startswith("."):
                    continue
                stack.append((os.path.join(fs_path, child), f"{name}/{child}"))
        elif stat.S_ISREG(st.st_mode):
            yield name, "application/octet-stream", _LazyFile(fs_path)
        else:
            raise BadRequest(f"{fs_path}: unsupported file type (not a file, directory or symlink)")


class _LazyFile:
    """A file opened only when its part is sent (so a big tree keeps one file open)."""

    def __init__(self, path: str) -> None:
        self.path = path


def multipart_body(parts: Iterator[tuple[str, str, Any]], boundary: str) -> Iterator[bytes]:
    """Stream kubo-style multipart parts (``name="file"; filename="<query-escaped path>"``)."""
    for name, ctype, source in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quote_plus(name, safe="")}"\r\n'
        head += f"Content-Type: {ctype}\r\n\r\n"
        yield head.encode()
        if isinstance(source, bytes):
            if source:
                yield source
        elif isinstance(source, _LazyFile):
            with open(source.path, "rb") as fh:
                while chunk := fh.read(READ_SIZE):
                    yield chunk
        else:
            while chunk := source.read(READ_SIZE):
                yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()
