"""Snapshots of the CRDT state: the format, as DAG-CBOR blocks.

A snapshot records the state at a set of heads, so that a new peer loads it
instead of fetching every delta since the beginning, and so that the deltas
it covers can be dropped (compaction). It is a small DAG:

- root ``{"v": 2, "kind": "pinion-crdt-snapshot", "heads": [[cid string, height], ...],
  "count": <live elements>, "covered": [link, ...], "elements": [link, ...]}``
- covered chunks ``{"c": [cid bytes, ...]}``: every delta merged into the
  state (the heads and all their ancestors);
- element chunks ``{"ids": [[id bytes, priority], ...], "e": [[key bytes, id index, value], ...]}``:
  every live element, with the id (CID of the delta that added it) given once
  per chunk in ``ids`` and named by its index there. Elements are in the
  order of the replica's element keys (key length, key bytes, then id), so a
  loader writes them as sorted runs, one run per key, in large batches.

Version 1 (still read) spelled every CID as a string and repeated the id and
priority on each element: ``{"c": [cid string, ...]}`` and
``{"e": [[key string, id string, priority, value], ...]}``; parsing two CID
strings per pin was most of a load's time. CIDs in chunks are plain byte
strings, not IPLD links: only the chunk links are links, so fetching the
snapshot DAG over bitswap never pulls old deltas or pinned content. Tombstones need not be recorded: a
tombstone names an element of an ancestor delta, and every ancestor is
covered, hence marked processed by whoever loads the snapshot, so no covered
element can come back. Building and loading live in :mod:`.replica`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import libipld

from blockstore.cid import DAG_CBOR, CidError, cid_for, cid_from_str, cid_to_str, parse_cid

from ..errors import InvalidRequest

FORMAT_VERSION = 2
#: versions :func:`decode_root` accepts
READ_VERSIONS = (1, 2)
KIND = "pinion-crdt-snapshot"
#: a chunk is closed once its entries reach this many bytes
CHUNK_BUDGET = 512 * 1024


class SnapshotError(InvalidRequest):
    """A snapshot block that cannot be decoded or breaks the snapshot format."""


@dataclass(frozen=True)
class SnapshotRoot:
    """The decoded root block of a snapshot."""

    heads: tuple[tuple[bytes, int], ...]
    count: int
    covered: tuple[bytes, ...]  #: links to covered chunks
    elements: tuple[bytes, ...]  #: links to element chunks


def build_snapshot(
    heads: Iterable[tuple[bytes, int]],
    covered: Iterable[bytes],
    elements: Iterable[tuple[bytes, bytes, int, bytes]],
) -> Iterator[tuple[bytes, bytes]]:
    """Yield the (CID, bytes) blocks of a snapshot, chunks first, the root last.

    ``elements`` are (key, id, priority, value) of the live elements.
    """
    covered_links: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for cid in covered:
        chunk.append(cid)
        size += len(cid) + 3
        if size >= CHUNK_BUDGET:
            yield _block({"c": chunk}, covered_links)
            chunk, size = [], 0
    if chunk:
        yield _block({"c": chunk}, covered_links)
    element_links: list[bytes] = []
    ids: dict[bytes, int] = {}
    id_list: list[list[object]] = []
    echunk: list[list[object]] = []
    size = count = 0
    for key, eid, prio, value in elements:
        index = ids.get(eid)
        if index is None:
            index = ids[eid] = len(id_list)
            id_list.append([eid, prio])
            size += len(eid) + 12
        echunk.append([key, index, value])
        size += len(key) + len(value) + 8
        count += 1
        if size >= CHUNK_BUDGET:
            yield _block({"ids": id_list, "e": echunk}, element_links)
            ids, id_list, echunk, size = {}, [], [], 0
    if echunk:
        yield _block({"ids": id_list, "e": echunk}, element_links)
    root = {
        "v": FORMAT_VERSION,
        "kind": KIND,
        "heads": [[cid_to_str(c), h] for c, h in sorted(heads)],
        "count": count,
        "covered": covered_links,
        "elements": element_links,
    }
    data = libipld.encode_dag_cbor(root)
    yield cid_for(data, DAG_CBOR), data


def _block(node: dict, links: list[bytes]) -> tuple[bytes, bytes]:
    data = libipld.encode_dag_cbor(node)
    cid = cid_for(data, DAG_CBOR)
    links.append(cid)
    return cid, data


def _decode(data: bytes, what: str) -> dict:
    try:
        node = libipld.decode_dag_cbor(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise SnapshotError(f"snapshot {what} is not valid DAG-CBOR: {exc}") from None
    if not isinstance(node, dict):
        raise SnapshotError(f"snapshot {what} must be a map, got {type(node).__name__}")
    return node


def _cid(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise SnapshotError(f"snapshot {what} must be a CID string")
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise SnapshotError(f"snapshot {what} is not a valid CID: {exc}") from None


def _links(node: dict, name: str) -> tuple[bytes, ...]:
    value = node.get(name)
    if not isinstance(value, list):
        raise SnapshotError(f"snapshot root field {name!r} must be a list of links")
    for link in value:
        if not isinstance(link, bytes):
            raise SnapshotError(f"snapshot root field {name!r} holds a non-link")
        try:
            parse_cid(link)
        except CidError as exc:
            raise SnapshotError(f"snapshot root field {name!r} holds a bad link: {exc}") from None
    return tuple(value)


def decode_root(data: bytes) -> SnapshotRoot:
    """Decode and validate a snapshot root block (format version 1 or 2)."""
    node = _decode(data, "root")
    version = node.get("v")
    if version not in READ_VERSIONS or node.get("kind") != KIND:
        name = f"version-{version}" if version in READ_VERSIONS else " or ".join(f"version-{v}" for v in READ_VERSIONS)
        raise SnapshotError(f"not a {name} {KIND} root")
    heads = node.get("heads")
    if not isinstance(heads, list) or not heads:
        raise SnapshotError("snapshot root must list at least one head")
    parsed = []
    for item in heads:
        if not isinstance(item, list) or len(item) != 2 or type(item[1]) is not int or item[1] < 1:
            raise SnapshotError("snapshot head must be a [CID string, height >= 1] pair")
        parsed.append((_cid(item[0], "head"), item[1]))
    count = node.get("count")
    if type(count) is not int or count < 0:
        raise SnapshotError("snapshot count must be an integer >= 0")
    return SnapshotRoot(tuple(parsed), count, _links(node, "covered"), _links(node, "elements"))


def _cid_bytes(cid: object, what: str) -> bytes:
    """A CID given as bytes (version 2 chunks), checked; the common shapes without a full parse."""
    if type(cid) is not bytes:
        raise SnapshotError(f"snapshot {what} must be CID bytes")
    n = len(cid)
    # CIDv1 with a one-byte codec and a sha2-256 multihash, or a CIDv0 (the forms pins and deltas take)
    if (n == 36 and cid[0] == 1 and cid[1] < 0x80 and cid[2] == 0x12 and cid[3] == 0x20) or (
        n == 34 and cid[0] == 0x12 and cid[1] == 0x20
    ):
        return cid
    try:
        parse_cid(cid)
    except CidError as exc:
        raise SnapshotError(f"snapshot {what} is not a valid CID: {exc}") from None
    return cid


def decode_covered(data: bytes) -> list[bytes]:
    """Decode a covered chunk: the CIDs of deltas merged into the snapshot."""
    node = _decode(data, "covered chunk")
    items = node.get("c")
    if not isinstance(items, list):
        raise SnapshotError("snapshot covered chunk must hold a list 'c'")
    if items and type(items[0]) is bytes:
        return [_cid_bytes(x, "covered delta") for x in items]
    return [_cid(x, "covered delta") for x in items]


def decode_elements(data: bytes) -> list[tuple[bytes, bytes, int, bytes]]:
    """Decode an element chunk: (key, id, priority, value) of live elements, in chunk order."""
    node = _decode(data, "element chunk")
    items = node.get("e")
    if not isinstance(items, list):
        raise SnapshotError("snapshot element chunk must hold a list 'e'")
    if "ids" in node:
        return _decode_elements_v2(node["ids"], items)
    out = []
    for item in items:
        if (
            not isinstance(item, list)
            or len(item) != 4
            or type(item[2]) is not int
            or item[2] < 1
            or not isinstance(item[3], bytes)
        ):
            raise SnapshotError("snapshot element must be [key, id, priority >= 1, value bytes]")
        out.append((_cid(item[0], "element key"), _cid(item[1], "element id"), item[2], item[3]))
    return out


def _decode_elements_v2(ids: object, items: list) -> list[tuple[bytes, bytes, int, bytes]]:
    if not isinstance(ids, list):
        raise SnapshotError("snapshot element chunk field 'ids' must be a list")
    table: list[tuple[bytes, int]] = []
    for item in ids:
        if not isinstance(item, list) or len(item) != 2 or type(item[1]) is not int or item[1] < 1:
            raise SnapshotError("snapshot element id must be [CID bytes, priority >= 1]")
        table.append((_cid_bytes(item[0], "element id"), item[1]))
    n = len(table)
    out = []
    for item in items:
        if type(item) is not list or len(item) != 3:
            raise SnapshotError("snapshot element must be [key, id index, value bytes]")
        key, index, value = item
        if type(index) is not int or not 0 <= index < n or type(value) is not bytes:
            raise SnapshotError("snapshot element must be [key, id index, value bytes]")
        eid, prio = table[index]
        out.append((_cid_bytes(key, "element key"), eid, prio, value))
    return out
