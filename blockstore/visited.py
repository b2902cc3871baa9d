"""A set of CIDs seen during a DAG walk, with memory bounded whatever the DAG size.

Walks that must not revisit blocks (``refs --unique``, listing indirect pins,
finding which recursive pin holds a block) need a "seen" set as large as the
DAG. :class:`VisitedSet` keeps up to ``memory_limit`` keys in a Python dict;
when it is full, the dict is written to a scratch LevelDB namespace of its
own (``NS_SCRATCH + <random id> + "/"``) in one write batch and emptied, so
memory stays bounded and lookups fall back to one LevelDB read. Each key may
carry a small integer (``refs --unique --max-depth`` remembers the depth a
CID was seen at). :meth:`close` deletes the scratch keys; scratch keys left
by a crash are removed by :func:`clear_scratch` when the repo opens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType

from .kv import KVStore
from .layout import NS_SCRATCH

#: keys kept in memory before a set spills to LevelDB
DEFAULT_MEMORY_LIMIT = 65_536


def _encode(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _decode(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


class VisitedSet:
    """Byte keys (CIDs) with an int each; in memory up to a limit, then spilled to LevelDB.

    ``db`` may be None for a purely in-memory set (tests, tiny walks); then the
    limit is not applied.
    """

    def __init__(self, db: KVStore | None, *, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        if memory_limit < 1:
            raise ValueError("memory_limit must be at least 1")
        self._db = db
        self._limit = memory_limit
        self._mem: dict[bytes, int] = {}
        self._prefix = NS_SCRATCH + os.urandom(8).hex().encode() + b"/"
        self._spilled = 0
        self._closed = False

    def __len__(self) -> int:
        """Number of keys (memory and disk); a key spilled and set again counts once per spill."""
        return len(self._mem) + self._spilled

    @property
    def spilled(self) -> int:
        """How many keys were written to LevelDB so far."""
        return self._spilled

    def get(self, key: bytes) -> int | None:
        """The value stored for ``key``, or None when it was never added."""
        value = self._mem.get(key)
        if value is not None or self._spilled == 0 or self._db is None:
            return value
        raw = self._db.get(self._prefix + key)
        return None if raw is None else _decode(raw)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.get(key) is not None

    def set(self, key: bytes, value: int = 0) -> None:
        """Add ``key`` (or change its value)."""
        if self._closed:
            raise RuntimeError("visited set is closed")
        self._mem[key] = value
        if self._db is not None and len(self._mem) >= self._limit:
            self._spill()

    def add(self, key: bytes) -> None:
        """Add ``key`` with value 0 (``set``-like interface for walkers)."""
        self.set(key, 0)

    def visit(self, key: bytes) -> bool:
        """Add ``key``; True if it was not there before."""
        if self.get(key) is not None:
            return False
        self.set(key, 0)
        return True

    def _spill(self) -> None:
        assert self._db is not None
        with self._db.write_batch() as wb:
            for key, value in self._mem.items():
                wb.put(self._prefix + key, _encode(value))
        self._spilled += len(self._mem)
        self._mem.clear()

    def close(self) -> None:
        """Forget every key and delete the scratch keys on disk."""
        self._mem.clear()
        if self._db is not None and self._spilled and not self._closed:
            _delete_prefix(self._db, self._prefix)
        self._spilled = 0
        self._closed = True

    def __enter__(self) -> VisitedSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _delete_prefix(db: KVStore, prefix: bytes, batch: int = 10_000) -> int:
    n = 0
    keys: list[bytes] = []
    for key in db.iterator(prefix=prefix, include_value=False):
        keys.append(key)
        if len(keys) >= batch:
            n += _delete(db, keys)
            keys = []
    return n + _delete(db, keys)


def _delete(db: KVStore, keys: list[bytes]) -> int:
    with db.write_batch() as wb:
        for key in keys:
            wb.delete(key)
    return len(keys)


def clear_scratch(db: KVStore) -> int:
    """Delete the scratch keys of every visited set (left behind by a crash); call at repo open."""
    return _delete_prefix(db, NS_SCRATCH)


def scratch_keys(db: KVStore) -> Iterator[bytes]:
    """Every scratch key on disk (for tests and diagnostics)."""
    yield from db.iterator(prefix=NS_SCRATCH, include_value=False)
