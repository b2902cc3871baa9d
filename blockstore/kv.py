"""The key-value store every layer writes to, as ``typing.Protocol`` interfaces.

The repo's one LevelDB database (opened by :func:`blockstore.db.open_db`) is a
plyvel ``DB``; it, plyvel's prefixed databases and its snapshots satisfy these
Protocols structurally (``tests/blockstore/test_kv.py`` checks the signatures).
Code that only reads and writes keys types against :class:`KVStore`, so the
layers above the block store (``bitswap/``, ``cluster/``, ``node/``) never import
plyvel. Only what the code uses is declared:

- :meth:`KVReader.get` returns the value, or None when the key is absent;
- :meth:`KVReader.iterator` walks keys in byte order: all keys starting with
  ``prefix``, or from ``start`` (included unless ``include_start=False``) to
  ``stop`` (excluded); it yields ``(key, value)`` pairs, or keys alone with
  ``include_value=False``; use it in a ``with`` block (or ``close()`` it) to
  free it before the garbage collector would;
- :meth:`KVStore.write_batch` is a context manager: its puts and deletes are
  written at once, atomically, when the block ends without an exception, and
  dropped when it raises (``transaction=True``) or written so far (the
  default, plyvel's behaviour); ``sync=True`` waits for the disk.

Keys are laid out by namespace (see :mod:`blockstore.layout`). Errors: a failed
read or write raises the implementation's exception (``plyvel.Error`` and its
subclasses for the repo's database, e.g. when the disk is full). Code above the
block store does not catch them: they reach the HTTP and CLI edges, which turn
them into one message with :func:`blockstore.db.disk_full_message`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Literal, Protocol, TypeVar, overload, runtime_checkable

__all__ = ["KVIterator", "KVReader", "KVSnapshot", "KVStore", "KVWriteBatch"]

_T_co = TypeVar("_T_co", covariant=True)


@runtime_checkable
class KVIterator(Protocol[_T_co]):
    """An open iterator over a key range; a context manager that closes it."""

    def __iter__(self, /) -> Iterator[_T_co]: ...

    def __next__(self) -> _T_co: ...

    def __enter__(self) -> KVIterator[_T_co]: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> bool | None: ...

    def close(self) -> None:
        """Free the iterator (further ``next()`` calls raise)."""


@runtime_checkable
class KVReader(Protocol):
    """Reads: a point lookup and ordered range scans."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None."""

    @overload
    def iterator(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        include_start: bool = True,
        prefix: bytes | None = None,
        include_value: Literal[True] = True,
    ) -> KVIterator[tuple[bytes, bytes]]: ...

    @overload
    def iterator(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        include_start: bool = True,
        prefix: bytes | None = None,
        include_value: Literal[False],
    ) -> KVIterator[bytes]: ...

    def iterator(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        include_start: bool = True,
        prefix: bytes | None = None,
        include_value: bool = True,
    ) -> KVIterator[tuple[bytes, bytes]] | KVIterator[bytes]:
        """Keys in byte order: those starting with ``prefix``, or from ``start`` to ``stop`` (excluded).

        Yields ``(key, value)`` pairs, or keys alone with ``include_value=False``.
        """


@runtime_checkable
class KVWriteBatch(Protocol):
    """Puts and deletes written together when the ``with`` block ends."""

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value`` when the batch is written."""

    def delete(self, key: bytes) -> None:
        """Remove ``key`` (absent or not) when the batch is written."""

    def __enter__(self) -> KVWriteBatch: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> bool | None: ...


@runtime_checkable
class KVSnapshot(KVReader, Protocol):
    """A consistent read-only view of the store as it was when it was taken."""

    def close(self) -> None:
        """Release the snapshot."""


@runtime_checkable
class KVStore(KVReader, Protocol):
    """The repo's key-value store: reads, single writes, write batches and snapshots."""

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        """Set ``key`` to ``value``; ``sync=True`` returns once it is on disk."""

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        """Remove ``key`` (absent or not)."""

    def write_batch(self, *, transaction: bool = False, sync: bool = False) -> KVWriteBatch:
        """A new batch (see the module docstring for ``transaction`` and ``sync``)."""

    def snapshot(self) -> KVSnapshot:
        """A snapshot of the current state (close it when done)."""
