"""The sans-I/O multipart parser and kubo-style part paths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.uploads.multipart import (
    MultipartError,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
    boundary_of,
    part_path,
)

BOUNDARY = "b0undary-xyz"


def build(parts: list[tuple[dict[str, str], bytes]], boundary: str = BOUNDARY, preamble: bytes = b"") -> bytes:
    out = [preamble]
    for headers, body in parts:
        out.append(f"--{boundary}\r\n".encode())
        for k, v in headers.items():
            out.append(f"{k}: {v}\r\n".encode())
        out.append(b"\r\n" + body + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def parse(body: bytes, cuts: list[int] | None = None, boundary: str = BOUNDARY) -> list[tuple[dict[str, str], bytes]]:
    p = MultipartParser(boundary.encode())
    pieces = []
    last = 0
    for c in sorted(set(cuts or [])):
        pieces.append(body[last:c])
        last = c
    pieces.append(body[last:])
    events = []
    for piece in pieces:
        events.extend(p.feed(piece))
    p.close()
    parts: list[tuple[dict[str, str], bytes]] = []
    cur: list[bytes] | None = None
    for ev in events:
        if isinstance(ev, PartStart):
            assert cur is None
            parts.append((ev.headers, b""))
            cur = []
        elif isinstance(ev, PartData):
            assert cur is not None and ev.data
            cur.append(ev.data)
        elif isinstance(ev, PartEnd):
            assert cur is not None
            parts[-1] = (parts[-1][0], b"".join(cur))
            cur = None
    assert cur is None
    return parts


def test_kubo_shaped_body() -> None:
    parts = [
        ({"Content-Disposition": 'form-data; name="file"; filename="dir"', "Content-Type": "application/x-directory"}, b""),
        ({"Content-Disposition": 'form-data; name="file"; filename="dir%2Fa.txt"', "Content-Type": "application/octet-stream"}, b"hello\r\n--not-the-boundary"),
    ]
    got = parse(build(parts, preamble=b"ignored preamble\r\n"))
    assert [b for _h, b in got] == [b"", b"hello\r\n--not-the-boundary"]
    assert got[1][0]["content-type"] == "application/octet-stream"
    assert part_path(got[1][0]) == "dir/a.txt"


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_split_gives_the_same_parts(bodies: list[bytes], cuts: list[int]) -> None:
    parts = [({"Content-Disposition": f'form-data; name="file"; filename="f{i}"'}, b) for i, b in enumerate(bodies)]
    body = build(parts)
    got = parse(body, [c for c in cuts if c <= len(body)])
    assert [b for _h, b in got] == bodies


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), cut=st.integers(min_value=0, max_value=10_000))
def test_truncation_anywhere_is_an_error(data: bytes, cut: int) -> None:
    body = build([({"Content-Type": "application/octet-stream"}, data)])
    cut = cut % (len(body) - 3)  # strictly before the closing "--" is complete
    p = MultipartParser(BOUNDARY.encode())
    p.feed(body[:cut])
    with pytest.raises(MultipartError, match="truncated"):
        p.close()


def test_empty_headers_and_epilogue() -> None:
    body = f"--{BOUNDARY}\r\n\r\nabc\r\n--{BOUNDARY}--\r\nepilogue".encode()
    assert parse(body) == [({}, b"abc")]


def test_oversize_part_headers_refused() -> None:
    body = f"--{BOUNDARY}\r\nX-Big: {'a' * 20000}\r\n\r\nabc".encode()
    p = MultipartParser(BOUNDARY.encode())
    with pytest.raises(MultipartError, match="too large") as info:
        p.feed(body)
    assert info.value.too_large  # type: ignore[attr-defined]


def test_malformed_header_line_refused() -> None:
    body = f"--{BOUNDARY}\r\nno colon here\r\n\r\nabc\r\n--{BOUNDARY}--".encode()
    with pytest.raises(MultipartError, match="header"):
        MultipartParser(BOUNDARY.encode()).feed(body)


def test_garbage_after_delimiter_refused() -> None:
    body = f"--{BOUNDARY}garbage\r\n\r\nabc".encode()
    with pytest.raises(MultipartError, match="delimiter"):
        MultipartParser(BOUNDARY.encode()).feed(body)


def test_boundary_of() -> None:
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
    with pytest.raises(MultipartError, match="multipart/form-data"):
        boundary_of("application/json")
    with pytest.raises(MultipartError, match="boundary"):
        boundary_of("multipart/form-data")


@pytest.mark.parametrize(
    "filename", ["..%2Fetc%2Fpasswd", "a%2F..%2F..%2Fb", "%2F..%2Fx", "a%00b", "%2F".join(["d"] * 300)]
)
def test_part_path_refuses_escapes(filename: str) -> None:
    """Whatever climbs above the upload's root (or has a NUL, or is absurdly deep) is refused."""
    with pytest.raises(MultipartError):
        part_path({"content-disposition": f'form-data; name="file"; filename="{filename}"'})


@pytest.mark.parametrize(
    ("filename", "path"),
    [
        ("%2Fdir%2FREADME.txt", "dir/README.txt"),  # the JavaScript client's globSource names
        ("/dir/README.txt", "dir/README.txt"),
        ("a%2F%2Fb", "a/b"),
        ("a%2F.%2Fb%2F", "a/b"),
        ("a%2F..%2Fb", "b"),
        (".", ""),
        ("%2F", ""),
        ("a%5Cb", "a\\b"),  # a backslash is an ordinary name character, as in kubo
        ("50%zz+off", "50%zz+off"),  # a malformed escape: the name is taken as it is (boxo)
    ],
)
def test_part_path_cleans_like_kubo(filename: str, path: str) -> None:
    """boxo/files: ``path.Clean("/" + QueryUnescape(filename))``, then relative to the upload's root."""
    assert part_path({"content-disposition": f'form-data; name="file"; filename="{filename}"'}) == path


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "c d"]), max_size=8))
@settings(max_examples=300, deadline=None)
def test_cleaned_paths_never_leave_the_root(segments: list[str]) -> None:
    """A cleaned path is relative, has no empty, '.' or '..' segment; otherwise the name is refused."""
    name = "/".join(segments)
    try:
        path = part_path({"content-disposition": f'form-data; name="file"; filename="{name}"'})
    except MultipartError:
        depth = 0
        for seg in segments:
            depth += -1 if seg == ".." else (0 if seg in ("", ".") else 1)
            if depth < 0:
                return
        raise
    assert not path.startswith("/")
    assert all(seg not in ("", ".", "..") for seg in path.split("/")) or path == ""


def test_part_path_decodes_query_escapes() -> None:
    h = {"content-disposition": 'form-data; name="file"; filename="my+dir%2Fa%20b%2B.txt"'}
    assert part_path(h) == "my dir/a b+.txt"
    assert part_path({"content-disposition": 'form-data; name="file"'}) == ""
