"""Local pins (recursive and direct) and garbage collection of unpinned blocks.

Pins live under ``NS_PINS + cid`` with a one-byte value: ``r`` recursive,
``d`` direct. Garbage collection marks every block reachable from a
recursive pin (plus direct pins and any extra roots other layers declare,
such as the CRDT's deltas), then deletes every other block.

Marking streams from disk: the set of kept multihashes is written to a
temporary LevelDB namespace instead of a Python set, so GC memory stays
bounded by the traversal frontier, not by the repo size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import plyvel

from .cid import multihash_of, parse_cid
from .db import NS_PINS
from .store import BlockStore

RECURSIVE = "recursive"
DIRECT = "direct"
_CODES = {RECURSIVE: b"r", DIRECT: b"d"}
_NAMES = {v: k for k, v in _CODES.items()}

#: scratch namespace used while GC marks reachable blocks
NS_GC_MARK = b"g/"

LinksFn = Callable[[bytes, bytes], list[bytes]]


class PinError(ValueError):
    """A pin operation that cannot be done (e.g. unpinning what is not pinned)."""


class Pins:
    """The set of local pins of one repo."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    def add(self, cid: bytes, kind: str = RECURSIVE, *, sync: bool = True) -> None:
        """Pin ``cid``; a recursive pin replaces a direct one, never the reverse.

        ``sync=False`` skips the fsync: for callers that write a later record
        depending on this one (LevelDB keeps writes in order, so that record
        never survives a crash without this pin).
        """
        if kind not in _CODES:
            raise PinError(f"unknown pin type {kind!r}")
        parse_cid(cid)
        key = NS_PINS + cid
        if kind == DIRECT and self._db.get(key) == _CODES[RECURSIVE]:
            return
        self._db.put(key, _CODES[kind], sync=sync)

    def add_many(self, cids: Iterable[bytes], kind: str = RECURSIVE) -> None:
        """Pin several CIDs in one write batch."""
        with self._db.write_batch(sync=True) as wb:
            for cid in cids:
                parse_cid(cid)
                if kind == DIRECT and self._db.get(NS_PINS + cid) == _CODES[RECURSIVE]:
                    continue
                wb.put(NS_PINS + cid, _CODES[kind])

    def remove(self, cid: bytes) -> str:
        """Unpin ``cid``; return the type it had. PinError if it was not pinned."""
        key = NS_PINS + cid
        value = self._db.get(key)
        if value is None:
            raise PinError("not pinned")
        self._db.delete(key, sync=True)
        return _NAMES[value]

    def get(self, cid: bytes) -> str | None:
        """The pin type of ``cid``, or None."""
        value = self._db.get(NS_PINS + cid)
        return None if value is None else _NAMES[value]

    def __iter__(self) -> Iterator[tuple[bytes, str]]:
        """Every (cid, type), streamed from disk."""
        n = len(NS_PINS)
        for key, value in self._db.iterator(prefix=NS_PINS):
            yield key[n:], _NAMES[value]


def collect_garbage(
    store: BlockStore,
    pins: Pins,
    links: LinksFn,
    *,
    extra_roots: Iterable[bytes] = (),
    batch: int = 1024,
) -> Iterator[bytes]:
    """Delete every block not reachable from a pin or an extra root.

    Yields the multihash of each removed block. A recursive pin whose DAG has
    missing blocks keeps what is present. ``links(cid, data)`` returns the
    child CIDs of a block.
    """
    db = store.db  # same database: the mark set lives beside the blocks
    _clear(db, NS_GC_MARK)
    try:
        stack: list[tuple[bytes, bool]] = []
        for cid, kind in pins:
            stack.append((cid, kind == RECURSIVE))
        for cid in extra_roots:
            stack.append((cid, True))
        while stack:
            cid, recurse = stack.pop()
            mark = NS_GC_MARK + multihash_of(cid)
            if db.get(mark) is not None:
                continue
            db.put(mark, b"")
            if not recurse:
                continue
            data = store.get(cid)
            if data is None:
                continue
            stack.extend((child, True) for child in links(cid, data))
        # blocks of imports still under way are not garbage
        for mh in store.journaled_multihashes():
            db.put(NS_GC_MARK + mh, b"")
        doomed: list[bytes] = []
        for mh in store.iter_multihashes():
            if db.get(NS_GC_MARK + mh) is None:
                doomed.append(mh)
                if len(doomed) >= batch:
                    store.delete_multihashes(doomed)
                    yield from doomed
                    doomed = []
        if doomed:
            store.delete_multihashes(doomed)
            yield from doomed
    finally:
        _clear(db, NS_GC_MARK)


def _clear(db: plyvel.DB, prefix: bytes) -> None:
    with db.write_batch() as wb:
        for key in db.iterator(prefix=prefix, include_value=False):
            wb.delete(key)
