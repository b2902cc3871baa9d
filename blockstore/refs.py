"""The links of a DAG as ``ipfs refs`` lists them: depth first, with depth limits and de-duplication.

:func:`iter_refs` yields one ``(parent, child, link name)`` edge per link,
in kubo's order (core/commands/refs.go): for each link of a node, the
edge, then (when going deeper) every edge below that child, before the next
link. Every child whose edge is listed has its block read first (a missing
block stops the walk with :class:`~blockstore.dagwalk.BlockNotFound`, as
kubo fails on it).

``max_depth`` (-1: unlimited) and ``unique`` follow kubo's pruning rules: a
CID seen before is neither listed again nor walked again, unless a depth
limit applies and it is now reached at a smaller depth, in which case it is
walked again (deeper parts may now fit under the limit) but not listed
again. The seen set is a :class:`~blockstore.visited.VisitedSet` that
remembers each CID's smallest depth and spills to LevelDB past its memory
limit, so ``refs -r --unique`` of any DAG size runs in bounded memory.

The walk is iterative (no recursion limit) and holds one node's links per
level of the current path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .cid import DAG_PB, parse_cid
from .dagpb import decode_pbnode
from .dagwalk import BlockNotFound, inline_data
from .links import LinksError, iter_links
from .visited import VisitedSet

GetBlock = Callable[[bytes], "bytes | None"]
Edge = tuple[bytes, bytes, str]


def named_links(cid: bytes, data: bytes) -> list[tuple[bytes, str]]:
    """(child CID, link name) of each link of a block; names exist only in dag-pb."""
    if parse_cid(cid).codec == DAG_PB:
        try:
            node = decode_pbnode(data)
        except ValueError as exc:
            raise LinksError(f"invalid dag-pb block: {exc}") from None
        return [(link.hash, (link.name or b"").decode("utf-8", "surrogateescape")) for link in node.links]
    return [(child, "") for child in iter_links(cid, data)]


class RefWalker:
    """Lists edges under one or more roots, sharing the ``unique`` seen set between them (as kubo's RefWriter)."""

    def __init__(
        self, get_block: GetBlock, *, max_depth: int = -1, unique: bool = False, seen: VisitedSet | None = None
    ) -> None:
        self._get_block = get_block
        self._max_depth = max_depth
        self._unique = unique
        self._seen = seen if seen is not None else VisitedSet(None)

    def _block(self, cid: bytes) -> bytes:
        data = inline_data(cid)
        if data is None:
            data = self._get_block(cid)
        if data is None:
            raise BlockNotFound(cid)
        return data

    def _visit(self, cid: bytes, depth: int) -> tuple[bool, bool]:
        """(go deeper, list the edge) for ``cid`` reached at ``depth``."""
        limited = self._max_depth >= 0
        if limited and depth > self._max_depth:
            return False, False
        at_max = limited and depth == self._max_depth
        if not self._unique:
            return not at_max, True
        old = self._seen.get(cid)
        if old is not None and (not limited or old <= depth):
            return False, False
        self._seen.set(cid, depth)
        return not at_max, old is None

    def walk(self, root: bytes) -> Iterator[Edge]:
        """Every edge to list under ``root`` (its block is read first)."""
        stack: list[tuple[bytes, list[tuple[bytes, str]], int, int]] = []
        data = self._block(root)
        stack.append((root, named_links(root, data), 0, 0))
        while stack:
            parent, links, index, depth = stack[-1]
            if index >= len(links):
                stack.pop()
                continue
            stack[-1] = (parent, links, index + 1, depth)
            child, name = links[index]
            deeper, listed = self._visit(child, depth + 1)
            if not deeper and not listed:
                continue
            child_data = self._block(child)
            if listed:
                yield parent, child, name
            if deeper:
                stack.append((child, named_links(child, child_data), 0, depth + 1))

    def close(self) -> None:
        """Drop the seen set (and its scratch keys on disk)."""
        self._seen.close()


def iter_refs(
    root: bytes, get_block: GetBlock, *, max_depth: int = -1, unique: bool = False
) -> Iterator[Edge]:
    """The edges under one root, with an in-memory seen set (see :class:`RefWalker`)."""
    walker = RefWalker(get_block, max_depth=max_depth, unique=unique)
    try:
        yield from walker.walk(root)
    finally:
        walker.close()
