"""Indirect pins: blocks kept because a recursive pin's DAG contains them.

kubo keeps no index of indirect pins and neither does Pinion: keeping one
would cost a write per block for every pin and every unpin (and a reference
count per block shared by several DAGs), while the questions below are rare
and interactive (``pin ls``, ``block rm``). Both questions are answered by
walking the recursive pins' DAGs lazily from the block store, one block in
memory at a time, with one :class:`~blockstore.visited.VisitedSet` shared by
all the walks so a block reachable from several pins is read once, and the
seen set spills to LevelDB instead of growing in memory:

- :func:`find_indirect`: which recursive pin contains each of some CIDs; it
  stops as soon as every CID is found. A CID is matched when a parent links
  to it, before its own block is read.
- :func:`iter_indirect`: every block under a recursive pin that is not itself
  pinned (``pin ls --type=indirect``), in walk order.

The cost is one pass over the pinned DAGs in the worst case (a CID that is
not pinned at all), as in kubo. Blocks missing from the store are passed
over (a recursive pin is only recorded once its DAG is complete).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .kv import KVStore
from .links import LinksError, iter_links
from .pins import RECURSIVE, Pins
from .visited import VisitedSet

GetBlock = Callable[[bytes], "bytes | None"]


def _links(cid: bytes, data: bytes) -> list[bytes]:
    try:
        return iter_links(cid, data)
    except LinksError:
        return []  # a block of a codec we cannot read links to nothing (as GC treats it)


def recursive_roots(pins: Pins) -> Iterator[bytes]:
    """The CIDs of every recursive pin, streamed from disk."""
    for cid, kind in pins:
        if kind == RECURSIVE:
            yield cid


def _walk(root: bytes, get_block: GetBlock, visited: VisitedSet) -> Iterator[bytes]:
    """Yield each CID linked (directly or not) from ``root`` and not yet in ``visited``, depth first.

    A CID is yielded when first reached through a link, before its block is
    read; its block is read afterwards only to go deeper. The root itself is
    not yielded.
    """
    stack: list[bytes] = [root]
    while stack:
        cid = stack.pop()
        data = get_block(cid)
        if data is None:
            continue
        children = _links(cid, data)
        fresh = []
        for child in children:
            if visited.visit(child):
                yield child
                fresh.append(child)
        stack.extend(reversed(fresh))


def find_indirect(
    pins: Pins, get_block: GetBlock, targets: Iterable[bytes], db: KVStore | None = None
) -> dict[bytes, bytes]:
    """``{cid: recursive root}`` for each of ``targets`` that some recursive pin's DAG contains.

    The walks stop once every target is found; ``db`` holds the spilled part
    of the visited set.
    """
    todo = set(targets)
    found: dict[bytes, bytes] = {}
    if not todo:
        return found
    with VisitedSet(db) as visited:
        for root in recursive_roots(pins):
            if not visited.visit(root):
                continue  # already inside a DAG walked before: its blocks were checked
            for cid in _walk(root, get_block, visited):
                if cid in todo:
                    found[cid] = root
                    todo.discard(cid)
                    if not todo:
                        return found
    return found


def iter_indirect(pins: Pins, get_block: GetBlock, db: KVStore | None = None) -> Iterator[bytes]:
    """Every CID under a recursive pin that is not itself pinned (recursively or directly)."""
    with VisitedSet(db) as visited:
        for root in recursive_roots(pins):
            visited.visit(root)
            for cid in _walk(root, get_block, visited):
                if pins.get(cid) is None:
                    yield cid
