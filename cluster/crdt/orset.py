"""The add-wins observed-remove set, kept in LevelDB.

Each element is (key, id) where id is the CID of the delta that added it.
A tombstone removes exactly the (key, id) it names, so an add concurrent
with a remove survives (add wins). The value of a key is a pure function of
its live elements: the one with the highest priority, ties broken by the
greater value bytes. Every replica that has merged the same deltas, in any
order, therefore holds the same values.

Nothing here keeps the set in memory: reads stream from LevelDB and
:meth:`ORSet.merge` stages its writes in the caller's write batch, so a delta
is merged together with its bookkeeping or not at all.

Invariant: a key has a current value (``c/v/``) exactly when it has live
elements (every merge writes both in one batch), so a key without a value
has no elements to scan: adding a new key costs point reads, not a scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from blockstore.kv import KVStore, KVWriteBatch

from ..errors import InvalidRequest
from . import layout as L
from .delta import Delta

#: (key, value) -> index terms of that value (e.g. b"n=<name>", b"m:<k>=<v>")
IndexTerms = Callable[[bytes, bytes], Iterable[bytes]]


class OutOfOrder(InvalidRequest):
    """Elements handed to :meth:`ORSet.merge_sorted_into_empty` are not in element-key order."""


@dataclass(frozen=True)
class Change:
    """The value of ``key`` became ``value`` (None: the key left the set)."""

    key: bytes
    value: bytes | None


class ORSet:
    """Read access to the set and the merge of deltas into it."""

    def __init__(self, db: KVStore, index_terms: IndexTerms | None = None) -> None:
        self._db = db
        self._terms = index_terms
        #: index term -> its key prefix (few distinct terms: names and metadata repeat)
        self._term_keys: dict[bytes, bytes] = {}
        raw = db.get(L.COUNT)
        self._count = L.read_u64(raw) if raw else 0

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        return self._count

    def get(self, key: bytes) -> bytes | None:
        """The current value of ``key``, or None."""
        raw = self._db.get(L.VALUE + key)
        return None if raw is None else raw[8:]

    def has(self, key: bytes) -> bool:
        """True when ``key`` is in the set."""
        return self._db.get(L.VALUE + key) is not None

    def priority(self, key: bytes) -> int | None:
        """Priority of the delta that set the current value of ``key``."""
        raw = self._db.get(L.VALUE + key)
        return None if raw is None else L.read_u64(raw)

    def items(self, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Stream (key, value) in key order, from ``start`` (inclusive) when given."""
        n = len(L.VALUE)
        it = self._db.iterator(prefix=L.VALUE) if start is None else self._db.iterator(
            start=L.VALUE + start, stop=L.VALUE[:-1] + b"0"
        )
        with it:
            for k, v in it:
                yield k[n:], v[8:]

    def keys(self) -> Iterator[bytes]:
        """Stream the keys in key order."""
        n = len(L.VALUE)
        with self._db.iterator(prefix=L.VALUE, include_value=False) as it:
            for k in it:
                yield k[n:]

    def find(self, term: bytes) -> Iterator[bytes]:
        """Stream the keys whose value has index term ``term``."""
        prefix = L.keyed(L.INDEX, term)
        n = len(prefix)
        with self._db.iterator(prefix=prefix, include_value=False) as it:
            for k in it:
                yield k[n:]

    def live_ids(self, key: bytes) -> list[bytes]:
        """Ids (delta CIDs) of the live elements of ``key``."""
        if self._db.get(L.VALUE + key) is None:
            return []  # no value: no live element (module docstring)
        prefix = L.keyed(L.ELEMENT, key)
        n = len(prefix)
        with self._db.iterator(prefix=prefix, include_value=False) as it:
            return [k[n:] for k in it]

    def is_tombstoned(self, key: bytes, eid: bytes) -> bool:
        """True when element (key, eid) has been removed."""
        return self._db.get(L.keyed(L.TOMB, key) + eid) is not None

    # ------------------------------------------------------------------ merge
    def merge(self, wb: KVWriteBatch, delta: Delta, block_id: bytes) -> list[Change]:
        """Stage the merge of ``delta`` (whose CID is ``block_id``) into ``wb``.

        Tombstones first, then elements; returns the keys whose value changed.
        The in-memory count is updated: the caller must write ``wb``.
        """
        prio = L.u64(delta.priority)
        return self.merge_records(
            wb, delta.tombstones, [(key, block_id, prio + value) for key, value in delta.elements]
        )

    def merge_records(
        self,
        wb: KVWriteBatch,
        tombstones: Iterable[tuple[bytes, bytes]],
        elements: Iterable[tuple[bytes, bytes, bytes]],
    ) -> list[Change]:
        """Stage tombstones (key, id), then elements (key, id, priority + value); see :meth:`merge`."""
        db = self._db
        live: dict[bytes, dict[bytes, bytes]] = {}
        values: dict[bytes, bytes | None] = {}  # current values read by load()

        def load(key: bytes) -> dict[bytes, bytes]:
            got = live.get(key)
            if got is None:
                current = values[key] = db.get(L.VALUE + key)
                if current is None:
                    got = live[key] = {}  # no value: no live element (module docstring)
                else:
                    prefix = L.keyed(L.ELEMENT, key)
                    n = len(prefix)
                    with db.iterator(prefix=prefix) as it:
                        got = live[key] = {k[n:]: v for k, v in it}
            return got

        tombed: set[tuple[bytes, bytes]] = set()
        for key, eid in tombstones:
            elems = load(key)
            tkey = L.keyed(L.TOMB, key) + eid
            if (key, eid) not in tombed and db.get(tkey) is None:
                wb.put(tkey, b"")
                tombed.add((key, eid))
            if eid in elems:
                del elems[eid]
                wb.delete(L.keyed(L.ELEMENT, key) + eid)
        for key, eid, record in elements:
            elems = load(key)
            if (key, eid) in tombed or db.get(L.keyed(L.TOMB, key) + eid) is not None:
                continue
            old = elems.get(eid)
            if old is None or record > old:
                elems[eid] = record
                wb.put(L.keyed(L.ELEMENT, key) + eid, record)
        changes: list[Change] = []
        for key, elems in live.items():
            best = max(elems.values()) if elems else None
            current = values[key]
            if best == current:
                continue
            if current is not None:
                self._unindex(wb, key, current[8:])
            if best is None:
                wb.delete(L.VALUE + key)
                self._count -= 1
            else:
                wb.put(L.VALUE + key, best)
                self._index(wb, key, best[8:])
                if current is None:
                    self._count += 1
            changes.append(Change(key, None if best is None else best[8:]))
        if changes:
            wb.put(L.COUNT, L.u64(self._count))
        return changes

    def merge_into_empty(self, wb: KVWriteBatch, elements: Iterable[tuple[bytes, bytes, bytes]]) -> list[Change]:
        """Stage elements (key, id, priority + value) for a set that had no elements or tombstones.

        The fast path of loading a snapshot into a new replica: no tombstone
        can apply, so no per-key scan is needed. Keys may repeat across calls.
        """
        db = self._db
        groups: dict[bytes, dict[bytes, bytes]] = {}
        for key, eid, record in elements:
            elems = groups.setdefault(key, {})
            old = elems.get(eid)
            if old is None or record > old:
                elems[eid] = record
        changes: list[Change] = []
        for key, elems in groups.items():
            prefix = L.keyed(L.ELEMENT, key)
            for eid, record in elems.items():
                wb.put(prefix + eid, record)
            best = max(elems.values())
            current = db.get(L.VALUE + key)
            if current is not None and current >= best:
                continue
            if current is None:
                self._count += 1
            else:
                self._unindex(wb, key, current[8:])
            wb.put(L.VALUE + key, best)
            self._index(wb, key, best[8:])
            changes.append(Change(key, best[8:]))
        if changes:
            wb.put(L.COUNT, L.u64(self._count))
        return changes

    def merge_sorted_into_empty(
        self,
        wb: KVWriteBatch,
        elements: list[tuple[bytes, bytes, bytes]],
        carry: tuple[bytes, bytes] | None,
    ) -> tuple[list[Change], tuple[bytes, bytes] | None]:
        """:meth:`merge_into_empty` for elements in element-key order (a snapshot's): no reads.

        Each key's elements form one run, so its value is the best record of the run,
        written once; only a run that continues the last key of the previous call (``carry``:
        that key and its best record so far) meets a value already staged. Returns the
        changes and the carry for the next call. Raises :class:`OutOfOrder` when the
        elements are not in that order: what it staged must then be dropped (the caller's
        write batch is a transaction) and :meth:`merge_into_empty` used instead.
        """
        put = wb.put
        changes: list[Change] = []
        count = self._count
        last = L.keyed(L.ELEMENT, carry[0]) if carry is not None else b""
        key: bytes | None = None
        prefix = best = previous_eid = b""

        def close(k: bytes, best: bytes) -> None:
            nonlocal carry, count
            if carry is not None and carry[0] == k:  # the run goes on from the previous call
                if best <= carry[1]:
                    return
                self._unindex(wb, k, carry[1][8:])
            else:
                count += 1
            carry = (k, best)
            put(L.VALUE + k, best)
            self._index(wb, k, best[8:])
            changes.append(Change(k, best[8:]))

        for k, eid, record in elements:
            if k != key:
                if key is not None:
                    close(key, best)
                prefix = L.keyed(L.ELEMENT, k)
                if prefix < last or (prefix == last and key is not None):
                    raise OutOfOrder("snapshot elements are not in key order")
                last, key, best, previous_eid = prefix, k, b"", b""
            elif eid <= previous_eid:
                raise OutOfOrder("snapshot element ids of a key are not in order")
            previous_eid = eid
            put(prefix + eid, record)
            if record > best:
                best = record
        if key is not None:
            close(key, best)
        if count != self._count:
            self._count = count
            wb.put(L.COUNT, L.u64(count))
        return changes, carry

    def reload_count(self) -> None:
        """Re-read the element count from disk (after a failed write batch)."""
        raw = self._db.get(L.COUNT)
        self._count = L.read_u64(raw) if raw else 0

    def _index(self, wb: KVWriteBatch, key: bytes, value: bytes) -> None:
        if self._terms is not None:
            cache = self._term_keys
            for term in self._terms(key, value):
                prefix = cache.get(term)
                if prefix is None:
                    if len(cache) >= 4096:
                        cache.clear()
                    prefix = cache[term] = L.keyed(L.INDEX, term)
                wb.put(prefix + key, b"")

    def _unindex(self, wb: KVWriteBatch, key: bytes, value: bytes) -> None:
        if self._terms is not None:
            for term in self._terms(key, value):
                wb.delete(L.keyed(L.INDEX, term) + key)
