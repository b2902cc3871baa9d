"""A sans-I/O streaming parser of ``multipart/form-data`` bodies, as kubo's clients send them.

Feed the body in pieces of any size; get back events: :class:`PartStart`
(the part's headers), :class:`PartData` (body bytes, in pieces) and
:class:`PartEnd`. Memory stays bounded by the piece size plus the header
limit, whatever the body size. Nothing here does I/O.

kubo's clients (go-ipfs-files ``MultiFileReader``) send each file or
directory as a part named ``file`` whose ``filename`` is the URL-query-escaped
path (``dir%2Ffile``); directories have ``Content-Type:
application/x-directory`` and an empty body, symlinks ``application/symlink``
with the target as body. :func:`part_path` decodes and checks those paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus
from ..errors import NodeError

#: largest header block of one part (kubo's go client sends ~150 bytes)
MAX_PART_HEADER_BYTES = 16 * 1024
#: deepest path an uploaded file may have
MAX_PATH_SEGMENTS = 256

DIRECTORY_TYPE = "application/x-directory"
SYMLINK_TYPE = "application/symlink"


class MultipartError(NodeError, ValueError):
    """A body that is not well-formed multipart (or that ends early)."""


@dataclass(frozen=True, slots=True)
class PartStart:
    """A new part begins; ``headers`` has lower-cased names."""

    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class PartData:
    """A piece of the current part's body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part's body is complete."""


Event = PartStart | PartData | PartEnd

_BOUNDARY_RE = re.compile(r'boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))', re.IGNORECASE)


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type header value."""
    if not content_type.lower().startswith(("multipart/form-data", "multipart/mixed")):
        raise MultipartError(f"expected a multipart/form-data body, got Content-Type {content_type!r}")
    m = _BOUNDARY_RE.search(content_type)
    if m is None:
        raise MultipartError("multipart Content-Type has no boundary parameter")
    return (m.group(1) or m.group(2)).encode("latin-1")


_PREAMBLE, _AFTER_DELIM, _HEADERS, _BODY, _DONE = range(5)


class MultipartParser:
    """Incremental multipart parser: ``feed(bytes) -> [events]``, then ``close()``."""

    def __init__(self, boundary: bytes, *, max_header_bytes: int = MAX_PART_HEADER_BYTES) -> None:
        if not boundary or len(boundary) > 70:
            raise MultipartError("multipart boundary must be 1 to 70 bytes")
        self._delim = b"\r\n--" + boundary
        self._max_header = max_header_bytes
        # The first delimiter may open the body without a preceding CRLF.
        self._buf = b"\r\n"
        self._state = _PREAMBLE
        self._in_part = False
        self._consumed = -2

    @property
    def done(self) -> bool:
        """True once the closing delimiter was seen."""
        return self._state == _DONE

    def feed(self, data: bytes) -> list[Event]:
        """Parse more of the body; return the events it completes."""
        if self._state == _DONE:
            return []  # the epilogue is ignored
        buf = self._buf + data if self._buf else bytes(data)
        events: list[Event] = []
        pos = 0
        delim = self._delim
        dlen = len(delim)
        while True:
            st = self._state
            if st == _BODY or st == _PREAMBLE:
                i = buf.find(delim, pos)
                if i < 0:
                    keep = max(pos, len(buf) - dlen + 1)
                    if st == _BODY and keep > pos:
                        events.append(PartData(buf[pos:keep]))
                    pos = keep
                    break
                if st == _BODY:
                    if i > pos:
                        events.append(PartData(buf[pos:i]))
                    events.append(PartEnd())
                    self._in_part = False
                pos = i + dlen
                self._state = _AFTER_DELIM
            elif st == _AFTER_DELIM:
                if len(buf) - pos < 2:
                    break
                if buf.startswith(b"--", pos):
                    self._state = _DONE
                    pos = len(buf)
                    break
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > 256:
                        raise self._error("malformed multipart delimiter line", pos)
                    break
                if buf[pos:eol].strip(b" \t"):
                    raise self._error("malformed multipart delimiter line", pos)
                pos = eol + 2
                self._state = _HEADERS
            elif st == _HEADERS:
                if buf.startswith(b"\r\n", pos):
                    end, hdr = pos, b""
                else:
                    end = buf.find(b"\r\n\r\n", pos)
                    if end < 0:
                        if len(buf) - pos > self._max_header:
                            raise self._error("multipart part headers too large", pos, status_413=True)
                        break
                    hdr = buf[pos:end]
                    end += 2
                if len(hdr) > self._max_header:
                    raise self._error("multipart part headers too large", pos, status_413=True)
                events.append(PartStart(_parse_headers(hdr)))
                self._in_part = True
                pos = end + 2
                self._state = _BODY
        self._consumed += pos
        self._buf = buf[pos:]
        return events

    def close(self) -> None:
        """Declare the end of the body; raise if the closing delimiter was not seen."""
        if self._state != _DONE:
            where = "inside a part" if self._in_part else "before the closing boundary"
            raise MultipartError(f"multipart body truncated {where}")

    def _error(self, message: str, pos: int, status_413: bool = False) -> MultipartError:
        err = MultipartError(f"{message} (near byte {max(0, self._consumed + pos)})")
        err.too_large = status_413  # type: ignore[attr-defined]
        return err


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not block:
        return headers
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep or not name.strip() or name != name.strip():
            raise MultipartError(f"malformed multipart header line {line[:80]!r}")
        headers[name.decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
    return headers


def disposition_params(value: str) -> dict[str, str]:
    """The parameters of a Content-Disposition value (``form-data; name="file"; filename="a"``)."""
    params: dict[str, str] = {}
    for m in re.finditer(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', value):
        raw = m.group(2) if m.group(2) is not None else (m.group(3) or "").strip()
        if m.group(2) is not None:
            raw = re.sub(r"\\(.)", r"\1", raw)
        params[m.group(1).lower()] = raw
    return params


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _query_unescape(name: str) -> str:
    """Go's ``url.QueryUnescape``; a name with a malformed escape is kept as it is (as boxo does)."""
    if _BAD_ESCAPE.search(name):
        return name
    return unquote_plus(name, errors="surrogateescape")


def clean_path(name: str) -> str:
    """The relative path kubo makes of a part's file name: ``path.Clean("/" + name)`` without the ``/``.

    Empty and ``.`` segments and repeated or leading/trailing slashes go
    away, ``dir/../x`` becomes ``x``. A ``..`` that would climb above the
    upload's root is refused (kubo's ``path.Clean`` silently drops it; here
    the upload gets a clear error instead of landing somewhere else).
    """
    out: list[str] = []
    for seg in name.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not out:
                raise MultipartError(f"file name {name!r} climbs above the upload's root with '..'")
            out.pop()
            continue
        out.append(seg)
    return "/".join(out)


def part_path(headers: dict[str, str]) -> str:
    """The relative, cleaned path a kubo-style part carries in its ``filename``.

    The filename is URL-query-unescaped (go's ``url.QueryEscape`` is how kubo's
    Go client writes it, ``encodeURIComponent`` the JavaScript one) and cleaned
    as boxo's ``files`` package does (``path.Clean("/" + name)``): the
    JavaScript client's ``/dir/README.txt`` is ``dir/README.txt``. A name that
    climbs above the root (``../x``) or holds a NUL byte is refused, so an
    upload can never name a place outside its own tree. A part without a
    filename gets the empty path (an unnamed file, e.g. stdin).
    """
    params = disposition_params(headers.get("content-disposition", ""))
    if "filename*" in params:
        _charset, _, encoded = params["filename*"].partition("''")
        from urllib.parse import unquote

        name = unquote(encoded, errors="surrogateescape")
    else:
        name = _query_unescape(params.get("filename", ""))
    if not name:
        return ""
    if "\x00" in name:
        raise MultipartError("file name contains a NUL byte")
    path = clean_path(name)
    if path.count("/") >= MAX_PATH_SEGMENTS:
        raise MultipartError(f"file name {name[:80]!r}... is deeper than {MAX_PATH_SEGMENTS} directories")
    return path
