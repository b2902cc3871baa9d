"""UnixFS HAMT directory shards: hashing, bitfields, building, and the lookup and listing walks.

Facts (boxo ``hamt``): keys are hashed with murmur3-x64-128 (seed 0) keeping
the first 64-bit lane ``h1`` as a big-endian integer; each level consumes
``log2(fanout)`` bits from the most significant end (8 bits for fanout 256).
A shard node is a dag-pb node whose UnixFS Data is
``{Type: HAMTShard, Data: bitfield, hashType: 0x22, fanout}``; the bitfield
is the big-endian bytes of an integer whose bit ``i`` marks slot ``i`` as used,
with leading zero bytes stripped. Links follow slot order; a link to a
sub-shard is named by the slot in upper-case hex (padded to the width of
``fanout - 1``), a link to an entry by that prefix followed by the entry name.
A slot holding two or more keys becomes a sub-shard, so the tree does not
depend on insertion order.

Lookup and listing are sans-I/O walk cores (:mod:`blockstore.walk_protocol`):
:func:`shard_find` and :func:`shard_entries` ask for each sub-shard with a
``Need``; :func:`hamt_find` / :func:`hamt_iter` run them over a synchronous
``get_block``, the gateway runs them over the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence

import mmh3

from .cid import DAG_PB, SHA2_256, make_cid, make_multihash
from .dagpb import PBLink, PBNode, decode_pbnode, encode_pbnode
from .unixfs import HAMT_SHARD, UnixFSData, decode_unixfs, encode_unixfs
from .walk_protocol import Need, Visited, Walk, run_sync, stream_sync
from .errors import InvalidData

__all__ = [
    "MURMUR3_X64_64",
    "DEFAULT_FANOUT",
    "HamtError",
    "bits_per_level",
    "hamt_hash",
    "hamt_slot",
    "bitfield_encode",
    "bitfield_decode",
    "slot_prefix",
    "build_hamt",
    "hamt_order",
    "shard_find",
    "shard_entries",
    "hamt_find",
    "hamt_iter",
]

#: multicodec of the HAMT hash function (murmur3-x64-64)
MURMUR3_X64_64 = 0x22
DEFAULT_FANOUT = 256

GetBlock = Callable[[bytes], bytes]
BlockSink = Callable[[bytes, bytes], None]


class HamtError(InvalidData):
    """A malformed HAMT shard, or a parameter the HAMT cannot use."""


def bits_per_level(fanout: int) -> int:
    """Hash bits consumed per level for ``fanout``; raise HamtError unless it is a power of two in 2..1024."""
    if fanout < 2 or fanout & (fanout - 1) or fanout > 1024:
        raise HamtError(f"HAMT fanout {fanout} is not a power of two between 2 and 1024")
    return fanout.bit_length() - 1


def hamt_hash(name: bytes) -> int:
    """The 64-bit HAMT hash of ``name``: h1 of murmur3-x64-128 (seed 0)."""
    return int.from_bytes(mmh3.hash_bytes(name)[:8], "little")


def hamt_slot(name: bytes, depth: int, fanout: int = DEFAULT_FANOUT) -> int:
    """The slot of ``name`` at ``depth`` (0 = root) in a HAMT of ``fanout``."""
    return _slot_of(hamt_hash(name), depth, bits_per_level(fanout))


def _slot_of(h: int, depth: int, bits: int) -> int:
    shift = 64 - bits * (depth + 1)
    if shift < 0:
        raise HamtError(f"HAMT ran out of hash bits at depth {depth}")
    return (h >> shift) & ((1 << bits) - 1)


def slot_prefix(slot: int, fanout: int = DEFAULT_FANOUT) -> bytes:
    """The upper-case hex link-name prefix of ``slot``, padded to the width of ``fanout - 1``."""
    width = len(f"{fanout - 1:X}")
    return f"{slot:0{width}X}".encode()


def bitfield_encode(slots: Sequence[int]) -> bytes:
    """Big-endian bitmap with bit ``i`` set for every slot ``i``, leading zero bytes stripped."""
    value = 0
    for s in slots:
        value |= 1 << s
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _bitfield_value(data: bytes, fanout: int) -> int:
    """The bitfield as an integer (bit ``i`` = slot ``i`` used); HamtError if it does not fit ``fanout``."""
    if len(data) > (fanout + 7) // 8:
        raise HamtError(f"HAMT bitfield of {len(data)} bytes is too long for fanout {fanout}")
    value = int.from_bytes(data, "big")
    if value >> fanout:
        raise HamtError(f"HAMT bitfield marks a slot beyond fanout {fanout}")
    return value


def bitfield_decode(data: bytes, fanout: int = DEFAULT_FANOUT) -> list[int]:
    """The used slots, in increasing order, of a HAMT bitfield."""
    value = _bitfield_value(data, fanout)
    return [i for i in range(value.bit_length()) if value >> i & 1]


def build_hamt(
    entries: Sequence[tuple[bytes, bytes, int]],
    put: BlockSink,
    *,
    cid_version: int = 0,
    fanout: int = DEFAULT_FANOUT,
) -> tuple[bytes, int]:
    """Build the HAMT shard tree of ``entries`` (name, cid, tsize) with unique names.

    Every shard block is passed to ``put(cid, data)``, children before
    parents. Returns (root CID, cumulative size of the root).
    """
    bits = bits_per_level(fanout)
    hashed = [(hamt_hash(name), name, cid, tsize) for name, cid, tsize in entries]
    names = {e[1] for e in hashed}
    if len(names) != len(hashed):
        raise HamtError("duplicate names in a HAMT directory")
    return _build_level(hashed, 0, bits, fanout, cid_version, put)


def _build_level(
    entries: list[tuple[int, bytes, bytes, int]],
    depth: int,
    bits: int,
    fanout: int,
    cid_version: int,
    put: BlockSink,
) -> tuple[bytes, int]:
    slots: dict[int, list[tuple[int, bytes, bytes, int]]] = {}
    for e in entries:
        slots.setdefault(_slot_of(e[0], depth, bits), []).append(e)
    links: list[PBLink] = []
    total = 0
    for slot in sorted(slots):
        group = slots[slot]
        prefix = slot_prefix(slot, fanout)
        if len(group) == 1:
            _h, name, cid, tsize = group[0]
            links.append(PBLink(cid, prefix + name, tsize))
        else:
            cid, tsize = _build_level(group, depth + 1, bits, fanout, cid_version, put)
            links.append(PBLink(cid, prefix, tsize))
        total += tsize
    data = encode_unixfs(
        UnixFSData(type=HAMT_SHARD, data=bitfield_encode(list(slots)), hash_type=MURMUR3_X64_64, fanout=fanout)
    )
    block = encode_pbnode(PBNode(links, data))
    mh = make_multihash(SHA2_256, hashlib.sha256(block).digest())
    cid = mh if cid_version == 0 else make_cid(1, DAG_PB, mh)
    put(cid, block)
    return cid, len(block) + total


def hamt_order(names: Sequence[bytes], fanout: int = DEFAULT_FANOUT) -> list[bytes]:
    """``names`` in the order :func:`hamt_iter` lists them once built into a HAMT of ``fanout``."""
    bits = bits_per_level(fanout)
    return [name for _h, name in _order_level([(hamt_hash(n), n) for n in names], 0, bits)]


def _order_level(entries: list[tuple[int, bytes]], depth: int, bits: int) -> list[tuple[int, bytes]]:
    slots: dict[int, list[tuple[int, bytes]]] = {}
    for e in entries:
        slots.setdefault(_slot_of(e[0], depth, bits), []).append(e)
    out: list[tuple[int, bytes]] = []
    for slot in sorted(slots):
        group = slots[slot]
        out.extend(group if len(group) == 1 else _order_level(group, depth + 1, bits))
    return out


def _shard_params(node: PBNode) -> tuple[int, int, int]:
    """Validate a shard node; return (fanout, prefix width, bitfield as an integer)."""
    if node.data is None:
        raise HamtError("HAMT shard node without UnixFS Data")
    fs = decode_unixfs(node.data)
    if fs.type != HAMT_SHARD:
        raise HamtError(f"node is a UnixFS type {fs.type}, not a HAMT shard")
    if fs.hash_type != MURMUR3_X64_64:
        raise HamtError(f"unsupported HAMT hash function {fs.hash_type!r} (only murmur3-x64-64)")
    fanout = fs.fanout if fs.fanout is not None else DEFAULT_FANOUT
    bits_per_level(fanout)
    used = _bitfield_value(fs.data or b"", fanout)
    if used.bit_count() != len(node.links):
        raise HamtError(f"HAMT shard bitfield marks {used.bit_count()} slots but the node has {len(node.links)} links")
    return fanout, len(slot_prefix(0, fanout)), used


def shard_find(root_node: PBNode, name: bytes) -> Walk[Visited, PBLink | None]:
    """Walk core: look ``name`` up in the HAMT rooted at ``root_node``; return its link (full prefixed name) or None.

    Needs only the sub-shards on the path to ``name`` (each output as :class:`Visited`).
    """
    h = hamt_hash(name)
    node = root_node
    depth = 0
    while True:
        fanout, width, used = _shard_params(node)
        slot = _slot_of(h, depth, bits_per_level(fanout))
        if not used >> slot & 1:
            return None
        # links follow slot order, one per used slot: the slot's link is at its rank among the used ones
        link = node.links[(used & ((1 << slot) - 1)).bit_count()]
        lname = link.name or b""
        if lname[:width] != slot_prefix(slot, fanout):
            raise HamtError(f"HAMT link name {lname[:80]!r} does not start with the prefix of its slot {slot:X}")
        if len(lname) > width:
            return link if lname[width:] == name else None
        block = yield Need(link.hash, "HAMT shard")
        assert block is not None
        yield Visited(link.hash, block)
        node = decode_pbnode(block)
        depth += 1


def shard_entries(root_node: PBNode) -> Walk[tuple[bytes, PBLink] | Visited, None]:
    """Walk core: output (entry name, link) for every entry of the HAMT, in shard (slot) order, depth first.

    Each sub-shard is output as :class:`Visited` when read, before its entries
    (pre-order). Holds one node per level (at most 64 / log2(fanout) levels).
    """
    fanout, width, _used = _shard_params(root_node)
    stack: list[tuple[Iterator[PBLink], int]] = [(iter(root_node.links), width)]
    bits = bits_per_level(fanout)
    while stack:
        links, width = stack[-1]
        link = next(links, None)
        if link is None:
            stack.pop()
            continue
        lname = link.name or b""
        if len(lname) < width:
            raise HamtError(f"HAMT link name {lname!r} is shorter than the slot prefix")
        if len(lname) > width:
            yield lname[width:], link
            continue
        if (len(stack) + 1) * bits > 64:
            raise HamtError(f"HAMT ran out of hash bits at depth {len(stack)}")
        block = yield Need(link.hash, "HAMT shard")
        assert block is not None
        yield Visited(link.hash, block)
        node = decode_pbnode(block)
        stack.append((iter(node.links), _shard_params(node)[1]))


def hamt_find(get_block: GetBlock, root_node: PBNode, name: bytes) -> PBLink | None:
    """:func:`shard_find` over a synchronous ``get_block``."""
    return run_sync(shard_find(root_node, name), get_block)


def hamt_iter(get_block: GetBlock, root_node: PBNode) -> Iterator[tuple[bytes, PBLink]]:
    """:func:`shard_entries` over a synchronous ``get_block``: (entry name, link) of every entry."""
    for event in stream_sync(shard_entries(root_node), get_block):
        if type(event) is tuple:
            yield event
