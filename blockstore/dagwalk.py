"""Depth-first traversal of an IPLD DAG over a ``get_block(cid) -> bytes | None`` callback.

Used by CAR export, pinning, the gateway's CAR responses and the bitswap
fetcher. The walk is iterative (an explicit stack, so deep DAGs cannot
exhaust Python's recursion limit) and lazy: it yields each block as soon as
it is read, and holds only the stack of pending CIDs and, when deduplicating,
the set of CIDs already visited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .cid import CidError, parse_cid
from .errors import BlockNotFound
from .links import iter_links

__all__ = ["BlockNotFound", "GetBlock", "LinksFn", "inline_data", "walk_dag"]

GetBlock = Callable[[bytes], "bytes | None"]
LinksFn = Callable[[bytes, bytes], Iterable[bytes]]


def inline_data(cid: bytes) -> bytes | None:
    """The inline data of an identity CID, or None for any other CID."""
    if len(cid) == 34 and cid[0] == 0x12:
        return None
    try:
        parts = parse_cid(cid)
    except CidError:
        return None
    return parts.digest if parts.mh_code == 0 else None


def walk_dag(
    root: bytes,
    get_block: GetBlock,
    *,
    links: LinksFn = iter_links,
    max_depth: int | None = None,
    dedupe: bool = True,
    skip_missing: bool = False,
    seen: Any = None,
) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(cid, data)`` for every block of the DAG under ``root``, depth first, parents before children.

    Children are visited in link order. ``max_depth`` limits how far below
    the root the walk goes (0 = the root only). With ``dedupe`` a CID is
    yielded once even if linked many times. A block that ``get_block`` does
    not have raises :class:`BlockNotFound`, or is passed over silently with
    ``skip_missing``. Identity CIDs are answered from the CID itself.
    ``seen`` replaces the in-memory set of visited CIDs (anything with
    ``in`` and ``add``, e.g. a :class:`~blockstore.visited.VisitedSet` that
    spills to disk).
    """
    stack: list[tuple[bytes, int]] = [(root, 0)]
    if seen is None:
        seen = set()
    while stack:
        cid, depth = stack.pop()
        if dedupe:
            if cid in seen:
                continue
            seen.add(cid)
        data = inline_data(cid)
        if data is None:
            data = get_block(cid)
            if data is None:
                if skip_missing:
                    continue
                raise BlockNotFound(cid)
        yield cid, data
        if max_depth is not None and depth >= max_depth:
            continue
        children = list(links(cid, data))
        if children:
            d = depth + 1
            stack.extend((c, d) for c in reversed(children))
