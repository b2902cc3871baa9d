"""Local pins (recursive and direct, each with an optional name) and garbage collection of unpinned blocks.

Pins live under ``NS_PINS + cid``. The value is one type byte, ``r``
recursive or ``d`` direct, followed by the pin's name in UTF-8 (kubo's
``pin add --name``, at most 255 bytes). Records written before names
existed are the type byte alone and read as unnamed pins, so old repos need
no migration. :func:`collect_garbage` keeps every block reachable from a
recursive pin (plus direct pins and any extra roots other layers declare,
such as the CRDT's deltas) and deletes every other block; the marking, and
how it runs beside imports and fetches, is :mod:`blockstore.gc`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from . import gc
from .cid import parse_cid
from .kv import KVStore
from .layout import NS_GC_MARK, NS_PINS
from .store import BlockStore
from .errors import InvalidData

RECURSIVE = "recursive"
DIRECT = "direct"
_CODES = {RECURSIVE: b"r", DIRECT: b"d"}
_NAMES = {v: k for k, v in _CODES.items()}
#: kubo's limit on a pin name (cmdutils.MaxPinNameBytes)
MAX_PIN_NAME_BYTES = 255

__all__ = ["DIRECT", "NS_GC_MARK", "RECURSIVE", "LocalPinError", "Pins", "collect_garbage"]

LinksFn = Callable[[bytes, bytes], list[bytes]]


class LocalPinError(InvalidData):
    """A pin operation that cannot be done (e.g. unpinning what is not pinned)."""


class PinRecord(NamedTuple):
    """One local pin: its type (``recursive``/``direct``) and its name (``""`` when unnamed)."""

    kind: str
    name: str


def check_pin_name(name: str) -> None:
    """Refuse a name longer than kubo allows (255 bytes of UTF-8)."""
    n = len(name.encode("utf-8", "surrogateescape"))
    if n > MAX_PIN_NAME_BYTES:
        raise LocalPinError(f"pin name is {n} bytes (max {MAX_PIN_NAME_BYTES} bytes)")


def _decode(value: bytes) -> PinRecord:
    kind = _NAMES.get(value[:1])
    if kind is None:
        raise LocalPinError(f"corrupt pin record (type byte {value[:1]!r})")
    return PinRecord(kind, value[1:].decode("utf-8", "surrogateescape"))


def _encode(kind: str, name: str) -> bytes:
    return _CODES[kind] + name.encode("utf-8", "surrogateescape")


class Pins:
    """The set of local pins of one repo."""

    def __init__(self, db: KVStore) -> None:
        self._db = db
        self._listeners: list[Callable[[list[bytes]], None]] = []

    def _value(self, cid: bytes, kind: str, name: str | None) -> bytes | None:
        """The record to write for pinning ``cid`` as ``kind``; None when nothing changes.

        A recursive pin replaces a direct one, never the reverse. ``name=None``
        keeps the name the pin already has.
        """
        if kind not in _CODES:
            raise LocalPinError(f"unknown pin type {kind!r}")
        if name is not None:
            check_pin_name(name)
        parse_cid(cid)
        old = self._db.get(NS_PINS + cid)
        old_rec = _decode(old) if old is not None else None
        if kind == DIRECT and old_rec is not None and old_rec.kind == RECURSIVE:
            return None
        new_name = name if name is not None else (old_rec.name if old_rec is not None else "")
        value = _encode(kind, new_name)
        return None if value == old else value

    def add(self, cid: bytes, kind: str = RECURSIVE, *, name: str | None = None, sync: bool = True) -> None:
        """Pin ``cid``; a recursive pin replaces a direct one, never the reverse.

        ``name``: the pin's name (None keeps the current one, ``""`` clears it).
        ``sync=False`` skips the fsync: for callers that write a later record
        depending on this one (LevelDB keeps writes in order, so that record
        never survives a crash without this pin).
        """
        value = self._value(cid, kind, name)
        if value is not None:
            self._db.put(NS_PINS + cid, value, sync=sync)
            self._announce([cid])

    def add_many(self, cids: Iterable[bytes], kind: str = RECURSIVE, *, name: str | None = None) -> None:
        """Pin several CIDs in one write batch."""
        added = []
        with self._db.write_batch(sync=True) as wb:
            for cid in cids:
                value = self._value(cid, kind, name)
                if value is not None:
                    wb.put(NS_PINS + cid, value)
                    added.append(cid)
        self._announce(added)

    def on_pinned(self, listener: Callable[[list[bytes]], None]) -> None:
        """Call ``listener(cids)`` after pins are added or changed (in the writer's thread; keep it short).

        The node's provide queue uses it to announce new pins at once.
        """
        self._listeners.append(listener)

    def _announce(self, cids: list[bytes]) -> None:
        if not cids:
            return
        for listener in self._listeners:
            try:
                listener(cids)
            except Exception:  # a listener's failure never fails the pin
                logging.getLogger(__name__).exception("pin listener failed")

    def remove(self, cid: bytes) -> str:
        """Unpin ``cid``; return the type it had. LocalPinError if it was not pinned."""
        key = NS_PINS + cid
        value = self._db.get(key)
        if value is None:
            raise LocalPinError("not pinned")
        self._db.delete(key, sync=True)
        return _decode(value).kind

    def get(self, cid: bytes) -> str | None:
        """The pin type of ``cid``, or None."""
        value = self._db.get(NS_PINS + cid)
        return None if value is None else _decode(value).kind

    def record(self, cid: bytes) -> PinRecord | None:
        """Type and name of the pin of ``cid``, or None."""
        value = self._db.get(NS_PINS + cid)
        return None if value is None else _decode(value)

    def __iter__(self) -> Iterator[tuple[bytes, str]]:
        """Every (cid, type), streamed from disk."""
        for cid, rec in self.records():
            yield cid, rec.kind

    def records(self) -> Iterator[tuple[bytes, PinRecord]]:
        """Every (cid, record), streamed from disk in key order."""
        n = len(NS_PINS)
        for key, value in self._db.iterator(prefix=NS_PINS):
            yield key[n:], _decode(value)


def collect_garbage(
    store: BlockStore,
    pins: Pins,
    links: LinksFn,
    *,
    extra_roots: Iterable[bytes] | Callable[[], Iterable[bytes]] = (),
    sources: Iterable[gc.RootSource] = (),
    batch: int = 1024,
) -> Iterator[bytes]:
    """Delete every block not reachable from a pin or another root; yield each removed multihash.

    Roots are read in this order: ``sources`` (each a callable giving (cid, recursive)
    pairs: see :mod:`blockstore.gc` for why the order matters), the local pins, then
    ``extra_roots`` (recursive; a callable is called when the marking reaches it). A
    recursive pin whose DAG has missing blocks keeps what is present. ``links(cid, data)``
    returns the child CIDs of a block.
    """

    def local_pins() -> Iterator[tuple[bytes, bool]]:
        for cid, kind in pins:
            yield cid, kind == RECURSIVE

    def extra() -> Iterator[tuple[bytes, bool]]:
        for cid in extra_roots() if callable(extra_roots) else extra_roots:
            yield cid, True

    return gc.collect(store, [*sources, local_pins, extra], links, batch=batch)
