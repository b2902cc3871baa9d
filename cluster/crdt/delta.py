"""Deltas of the Merkle-CRDT: the DAG-CBOR nodes that carry pinset changes.

A delta is one IPLD node (DAG-CBOR, CIDv1, sha2-256) shaped::

    {"v": 1,                       # format version
     "p": <priority>,              # height in the DAG, >= 1
     "l": [<CID link>, ...],       # the heads this delta was written on
     "e": [[<key>, <value>], ...], # element adds: key = CID string, value = bytes
     "t": [[<key>, <id>], ...]}    # tombstones: key and the CID string of the
                                   # delta that added the element removed

Only ``l`` holds IPLD links (tag 42), so a generic DAG walker that follows the
links of a delta finds exactly the older deltas and never the pinned content.
Keys and element ids are CID *strings*: libipld encodes every byte string
that happens to parse as a CID as a tag-42 link and decodes links back to
plain bytes, so bytes fields would silently turn pin CIDs into links.
Values are opaque bytes (a pin's own DAG-CBOR encoding, which starts with a
map header and so never looks like a CID; values that do look like a CID
still decode to the same bytes).

Every peer decodes every delta: walking the DAG reads only the links
(:func:`delta_links`); the elements are decoded once, when the delta is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libipld

from blockstore.cid import DAG_CBOR, CidError, cid_for, cid_from_str, cid_to_str, parse_cid

from ..errors import InvalidRequest

FORMAT_VERSION = 1
#: largest encoded delta accepted from the network
MAX_DELTA_SIZE = 2 * 1024 * 1024


class DeltaError(InvalidRequest):
    """A delta block that cannot be decoded or breaks the delta format."""


@dataclass(frozen=True)
class Delta:
    """One CRDT delta: element adds, tombstones, priority and links to older heads."""

    priority: int
    links: tuple[bytes, ...] = ()
    elements: tuple[tuple[bytes, bytes], ...] = ()
    tombstones: tuple[tuple[bytes, bytes], ...] = ()
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    def encode(self) -> bytes:
        """The DAG-CBOR bytes of this delta."""
        if self.priority < 1:
            raise DeltaError(f"delta priority must be >= 1, got {self.priority}")
        return libipld.encode_dag_cbor(
            {
                "v": FORMAT_VERSION,
                "p": self.priority,
                "l": list(self.links),
                "e": [[cid_to_str(k), v] for k, v in self.elements],
                "t": [[cid_to_str(k), cid_to_str(i)] for k, i in self.tombstones],
            }
        )

    def block(self) -> tuple[bytes, bytes]:
        """(CID, bytes) of this delta as a block: CIDv1 dag-cbor sha2-256."""
        data = self.encode()
        return cid_for(data, DAG_CBOR), data


def _node(data: bytes) -> tuple[dict, int, list[bytes]]:
    """The decoded map of a delta block, its priority and links, checked; DeltaError otherwise."""
    if len(data) > MAX_DELTA_SIZE:
        raise DeltaError(f"delta of {len(data)} bytes exceeds the {MAX_DELTA_SIZE}-byte limit")
    try:
        node = libipld.decode_dag_cbor(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DeltaError(f"delta is not valid DAG-CBOR: {exc}") from None
    if not isinstance(node, dict):
        raise DeltaError(f"delta must be a map, got {type(node).__name__}")
    version = node.get("v")
    if version != FORMAT_VERSION:
        raise DeltaError(f"unsupported delta format version {version!r}")
    prio = node.get("p")
    if type(prio) is not int or prio < 1:
        raise DeltaError(f"delta priority must be an integer >= 1, got {prio!r}")
    links = _list(node, "l")
    for link in links:
        if not isinstance(link, bytes):
            raise DeltaError("delta link is not a CID")
        try:
            parse_cid(link)
        except CidError as exc:
            raise DeltaError(f"delta link is not a valid CID: {exc}") from None
    if len(set(links)) != len(links):
        raise DeltaError("delta links the same head twice")
    return node, prio, links


def delta_links(data: bytes) -> list[bytes]:
    """The links of a delta block (the heads it was written on), checked as :func:`decode_delta`
    checks them, without decoding its elements: what walking the DAG needs."""
    return _node(data)[2]


def decode_delta(data: bytes) -> Delta:
    """Decode and validate a delta block; raise DeltaError naming the problem."""
    node, prio, links = _node(data)
    elements = []
    for item in _list(node, "e"):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], bytes):
            raise DeltaError("delta element must be a [key, value bytes] pair")
        elements.append((_cid(item[0], "element key"), item[1]))
    tombstones = []
    for item in _list(node, "t"):
        if not isinstance(item, list) or len(item) != 2:
            raise DeltaError("delta tombstone must be a [key, id] pair")
        tombstones.append((_cid(item[0], "tombstone key"), _cid(item[1], "tombstone id")))
    if not elements and not tombstones:
        raise DeltaError("delta carries neither elements nor tombstones")
    unknown = set(node) - {"v", "p", "l", "e", "t"}
    extra = {k: node[k] for k in unknown}
    return Delta(prio, tuple(links), tuple(elements), tuple(tombstones), extra)


def _list(node: dict, name: str) -> list:
    value = node.get(name)
    if not isinstance(value, list):
        raise DeltaError(f"delta field {name!r} must be a list, got {type(value).__name__}")
    return value


def _cid(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise DeltaError(f"delta {what} must be a CID string, got {type(text).__name__}")
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise DeltaError(f"delta {what} is not a valid CID: {exc}") from None
