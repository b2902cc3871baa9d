"""Path resolution to the last block reached, as ``ipfs dag resolve`` answers it.

``resolve_to_last(get_block, root, ["a", "b", ...])`` follows the path
through UnixFS directories (plain and HAMT), dag-pb link names and DAG-CBOR /
DAG-JSON map keys and list indexes. It returns the CID of the last block the
path reached and the segments that remain inside that block (empty when the
path ends on a link), like boxo's ``ResolveToLastNode``. A segment that names
nothing raises :class:`NoLink` (``no link named "x" under <cid>``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dag_cbor
from dag_cbor.decoding import DAGCBORDecodingError
from multiformats import CID

from . import dagjson, exporter
from .cid import DAG_CBOR, DAG_PB, cid_to_str, parse_cid
from .dagwalk import BlockNotFound, inline_data
from .links import DAG_JSON
from .errors import BlockstoreError

GetBlock = Callable[[bytes], "bytes | None"]


class NoLink(BlockstoreError, LookupError):
    """A path segment that names nothing in the block reached so far (HTTP 404)."""

    status = 404

    def __init__(self, name: str, node: bytes) -> None:
        super().__init__(f'no link named "{name}" under {cid_to_str(node)}')
        self.name = name
        self.node = node


def _block(get_block: GetBlock, cid: bytes) -> bytes:
    data = inline_data(cid)
    if data is None:
        data = get_block(cid)
    if data is None:
        raise BlockNotFound(cid)
    return data


def _decode_node(cid: bytes, data: bytes) -> Any:
    codec = parse_cid(cid).codec
    try:
        if codec == DAG_CBOR:
            return dag_cbor.decode(data)
        return dagjson.decode(data)
    except (ValueError, DAGCBORDecodingError) as exc:
        raise exporter.CorruptNode(f"block {cid_to_str(cid)} does not decode: {exc}") from None


def _step(value: Any, seg: str) -> Any:
    """The value under ``seg`` in a map or list; KeyError when there is none."""
    if isinstance(value, dict):
        if seg in value:
            return value[seg]
        raise KeyError(seg)
    if isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
        return value[int(seg)]
    raise KeyError(seg)


def resolve_to_last(get_block: GetBlock, root: bytes, segments: Sequence[str]) -> tuple[bytes, list[str]]:
    """(CID of the last block reached, remaining segments inside it) for ``root/segments``."""
    cid = root
    i = 0
    while i < len(segments):
        codec = parse_cid(cid).codec
        data = _block(get_block, cid)
        if codec in (DAG_CBOR, DAG_JSON):
            value = _decode_node(cid, data)
            start = i
            while i < len(segments):
                try:
                    value = _step(value, segments[i])
                except KeyError:
                    raise NoLink(segments[i], cid) from None
                i += 1
                if isinstance(value, CID):
                    cid = bytes(value)
                    break
            else:
                return cid, list(segments[start:])
            continue
        if codec != DAG_PB:
            raise NoLink(segments[i], cid)
        try:
            cid = exporter.resolve_path(get_block, cid, [segments[i]])
        except exporter.PathNotFound:
            raise NoLink(segments[i], cid) from None
        except (exporter.NotADirectory, exporter.CorruptNode):
            cid = _pb_link(data, cid, segments[i])  # a file, or dag-pb that is not UnixFS: plain link names
        i += 1
    return cid, []


def _pb_link(data: bytes, cid: bytes, name: str) -> bytes:
    """A named link of a dag-pb node that is not a UnixFS directory."""
    from .dagpb import decode_pbnode

    key = name.encode("utf-8", "surrogateescape")
    for link in decode_pbnode(data).links:
        if (link.name or b"") == key:
            return link.hash
    raise NoLink(name, cid)
