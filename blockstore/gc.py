"""Garbage collection of the block store: mark from the roots, sweep the rest, beside imports and fetches.

**Marking on disk.** The set of live blocks can be larger than memory (millions of
pins): marks are keys ``NS_GC_MARK + multihash`` in the repo's LevelDB, and the
roots are read from their own namespaces as streams, one root's DAG walked at a
time, so memory stays bounded by one traversal's stack.

**Roots**, read in this order (see *ordering* below): the blocks of imports in
flight (their journals), the caller's root sources in the order given (the node
passes upload markers, the cluster pinset's pins allocated to this peer, the pin
tracker's records, the local pins, the CRDT's own blocks). A recursive root keeps
the present part of its DAG; a missing block is skipped, so a half-fetched DAG
keeps what was fetched.

**Concurrency: a write barrier and an epoch, no long lock.** Imports and fetches
run during a collection; the collection never stalls them:

1. :meth:`BlockStore.gc_begin` turns the *write barrier* on: from then on every
   block stored, or re-stored by a deduplicating import, is marked in the same
   locked step. It then waits only for the imports that began *before* it
   (:meth:`BlockStore.writer`), so their pins, journals and upload markers are on
   disk before the roots are read. Imports that begin later never wait.
2. *Ordering* of the roots: each hand-over from one kind of root to the next
   writes the new root before dropping the old one (journal -> upload marker in
   one batch, upload marker released only once the tracker holds the pin, pinset ->
   tracker record -> local pin). The roots are read in that same order, so a
   root that moves during the marking is seen at one end or the other.
3. Code that records a pin of blocks it did *not* write (a fetch that found
   blocks already present, ``pin add`` of stored content) uses
   :func:`record_pin`: it checks the DAG through :meth:`BlockStore.get_kept`
   (marks while a collection runs) unless no collection ran since the caller's
   own check (the *epoch* is unchanged), and if a collection began meanwhile it
   checks the DAG again after the pin is written; a block the sweep removed in
   that window is reported, and the caller fetches it again.
4. The sweep deletes a batch at a time with :meth:`BlockStore.delete_unmarked`,
   which checks the marks under the store's lock: a block marked by the barrier
   is kept, a block stored after its deletion is simply stored again.

Only one collection runs at a time (a second one waits for the first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .cid import RAW, codec_of, multihash_of
from .dagwalk import BlockNotFound
from .kv import KVStore
from .layout import NS_GC_MARK
from .links import iter_links
from .store import BlockStore
from .visited import VisitedSet

__all__ = ["BlockNotFound", "LinksFn", "RootSource", "check_dag", "collect", "record_pin"]

#: ``links(cid, data)``: the child CIDs of a block
LinksFn = Callable[[bytes, bytes], list[bytes]]
#: a callable returning the roots of one kind, as (CID, recursive) pairs, read when the marking reaches it
RootSource = Callable[[], Iterable[tuple[bytes, bool]]]
#: marks deleted per write batch when the mark set is cleared
_CLEAR_BATCH = 10_000


def collect(store: BlockStore, roots: Iterable[RootSource], links: LinksFn, *, batch: int = 1024) -> Iterator[bytes]:
    """Delete every block no root keeps; yield the multihash of each removed block.

    ``roots`` are read in the order given, after the blocks of imports in flight
    (see the module docstring for why the order matters). The collection runs
    while the generator is consumed; closing it early ends the collection
    without deleting the rest.
    """
    db = store.db
    store.gc_begin(prepare=lambda: _clear(db))  # marks a crash may have left behind
    try:
        for mh in store.journaled_multihashes():
            db.put(NS_GC_MARK + mh, b"")
        for source in roots:
            for cid, recursive in source():
                _mark(store, cid, recursive, links)
        doomed: list[bytes] = []
        for mh in store.iter_multihashes():
            if db.get(NS_GC_MARK + mh) is None:
                doomed.append(mh)
                if len(doomed) >= batch:
                    yield from store.delete_unmarked(doomed)
                    doomed = []
        if doomed:
            yield from store.delete_unmarked(doomed)
    finally:
        try:
            _clear(db)
        finally:
            store.gc_end()


def _mark(store: BlockStore, root: bytes, recursive: bool, links: LinksFn) -> None:
    """Mark ``root`` and, when ``recursive``, every present block below it (one DAG at a time)."""
    db = store.db
    stack = [(root, recursive)]
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
            continue  # not fetched (yet): keep what is present below the parts that are
        stack.extend((child, True) for child in links(cid, data))


def _clear(db: KVStore) -> None:
    """Delete every mark, a bounded batch at a time."""
    while True:
        keys = []
        with db.iterator(prefix=NS_GC_MARK, include_value=False) as it:
            for key in it:
                keys.append(key)
                if len(keys) >= _CLEAR_BATCH:
                    break
        if not keys:
            return
        with db.write_batch() as wb:
            for key in keys:
                wb.delete(key)


def record_pin(
    store: BlockStore,
    root: bytes,
    add_pin: Callable[[], None],
    *,
    max_depth: int | None = None,
    links: Callable[[bytes, bytes], Iterable[bytes]] = iter_links,
    checked_since: int | None = None,
) -> None:
    """Record a pin of the DAG under ``root`` (``add_pin()``) once the DAG is complete, safe
    against a collection running meanwhile (point 3 of the module docstring).

    ``checked_since``: the :attr:`BlockStore.gc_epoch` read before the caller made sure the
    DAG is complete (a fetch that walked it): when no collection ran or began since, that
    check stands and the DAG is not walked again before the pin is written.

    Raises :class:`BlockNotFound` naming a missing block: before ``add_pin`` when the DAG
    is incomplete; after it when a collection removed a block between the check and the
    pin (the pin stays recorded: the caller fetches the block again or records a failure).
    """
    epoch = store.gc_epoch
    if checked_since is None or checked_since != epoch or epoch % 2:
        check_dag(store, root, max_depth=max_depth, links=links)
    add_pin()
    if store.gc_epoch != epoch:
        # a collection began or ended since the check: it may have read the roots before
        # this pin existed, and swept a block the check had already passed
        check_dag(store, root, max_depth=max_depth, links=links)


def check_dag(
    store: BlockStore,
    root: bytes,
    *,
    max_depth: int | None = None,
    links: Callable[[bytes, bytes], Iterable[bytes]] = iter_links,
) -> None:
    """Raise :class:`BlockNotFound` unless every block of the DAG under ``root`` is stored;
    while a collection runs, mark each one live (:meth:`BlockStore.keep`, :meth:`BlockStore.get_kept`).
    Raw blocks and blocks at ``max_depth`` are only looked up, never decoded."""
    stack: list[tuple[bytes, int]] = [(root, 0)]
    with VisitedSet(store.db) as seen:  # bounded memory, however large the DAG
        while stack:
            cid, depth = stack.pop()
            if not seen.visit(cid):
                continue
            leaf = codec_of(cid) == RAW or (max_depth is not None and depth >= max_depth)
            if leaf:
                if not store.keep(cid):
                    raise BlockNotFound(cid)
                continue
            data = store.get_kept(cid)
            if data is None:
                raise BlockNotFound(cid)
            stack.extend((child, depth + 1) for child in links(cid, data))
