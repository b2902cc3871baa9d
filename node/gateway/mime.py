"""Content-Type of served files: by file-name extension first, then by sniffing the first bytes."""

from __future__ import annotations

import mimetypes

__all__ = ["content_type", "type_by_name", "sniff"]

#: extensions whose type must not depend on the host's mime.types file
_FIXED = {
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".xml": "application/xml",
    ".md": "text/markdown",
    ".car": "application/vnd.ipld.car",
    ".tar": "application/x-tar",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
}

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"\x00asm", "application/wasm"),
    (b"OggS\x00", "application/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"BM", "image/bmp"),
]


def type_by_name(name: str) -> str | None:
    """The type for a file name's extension, or None when unknown."""
    dot = name.rfind(".")
    if dot <= 0 and not name.startswith("."):
        return None
    ext = name[dot:].lower()
    fixed = _FIXED.get(ext)
    if fixed is not None:
        return fixed
    guessed, _ = mimetypes.guess_type("f" + ext, strict=False)
    return guessed


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sniffed prefix is still text
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def sniff(head: bytes) -> str:
    """Guess a type from up to the first 512 bytes (magic numbers, SVG/HTML markers, text vs binary)."""
    head = head[:512]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "video/mp4"
    text = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    low = text[:256].lower()
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html"
    if b"<svg" in low and (low.startswith(b"<svg") or low.startswith(b"<?xml")):
        return "image/svg+xml"
    if low.startswith(b"<?xml"):
        return "text/xml"
    if _looks_like_text(head):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def content_type(name: str | None, head: bytes) -> str:
    """The Content-Type of a file called ``name`` (may be None) that starts with ``head``."""
    kind = type_by_name(name) if name else None
    if kind is None:
        kind = sniff(head)
    if kind.startswith("text/html"):
        return "text/html"
    return kind
