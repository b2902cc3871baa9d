"""The block store: IPFS blocks at rest in the repo's LevelDB.

Blocks are keyed by multihash (``NS_BLOCKS + multihash``), so the CIDv0 and
CIDv1 of the same bytes share one entry. Each stored value starts with one
format byte: ``0`` = the block as-is, ``1`` = a zstandard frame of the block.
A block is stored compressed only when that saves a useful margin.

Running totals (blocks, logical bytes, stored bytes) live under ``NS_META``
and are updated in the same write batch as the blocks they count, so they
survive restarts and crashes.

Import journals make multi-batch imports atomic from the user's point of
view: every block that a journaled import adds *new* is also recorded under
``NS_JOURNAL + id``; a failed or interrupted import is rolled back by
deleting exactly those blocks (see :meth:`BlockStore.rollback`).

Garbage collection (:mod:`blockstore.gc`) runs beside imports and fetches;
the store holds its side of that: :meth:`BlockStore.writer` registers an
import in flight, :meth:`BlockStore.gc_begin` waits for the imports that
started before it and turns on the write barrier (every block written or
re-written while a collection runs is marked live in the same batch), and
:meth:`BlockStore.delete_unmarked` deletes under the same lock, so a block
is either marked before the sweep looks at it or stored again after.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import zstandard

from .cid import IDENTITY, HashMismatch, multihash_of, parse_cid, verify
from .kv import KVStore
from .layout import NS_BLOCKS, NS_GC_MARK, NS_JOURNAL, NS_META
from .memory import DEFAULT_PLAN
from .uploads import marker as upload_marker
from .errors import InvalidData

_TOTALS_KEY = NS_META + b"totals"
_RAW = b"\x00"
_ZSTD = b"\x01"

DEFAULT_MAX_BLOCK_SIZE = 2 * 1024 * 1024
#: store compressed only if the frame is at most this fraction of the block
COMPRESS_RATIO = 0.9
#: blocks smaller than this are never compressed (frame overhead dominates)
COMPRESS_MIN = 256
#: large blocks are compressed only if their first SAMPLE bytes compress
SAMPLE = 4096


class BlockTooLarge(InvalidData):
    """A block over the configured maximum block size."""


class BlockStore:
    """put/get/has/delete of blocks by CID, with verification and zstd at rest.

    Thread-safe: plyvel is, and the running totals are guarded by a lock.
    """

    def __init__(
        self,
        db: KVStore,
        *,
        max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
        compress: bool = True,
        write_batch_bytes: int = DEFAULT_PLAN.write_batch_bytes,
    ) -> None:
        self._db = db
        self.max_block_size = max_block_size
        #: bytes of block data importers hand to :meth:`put_many` at once (``Datastore.MemoryBudget``)
        self.write_batch_bytes = write_batch_bytes
        self._compress = compress
        self._lock = threading.Lock()
        self._zc = threading.local()
        raw = db.get(_TOTALS_KEY)
        self._blocks, self._bytes, self._stored = struct.unpack("<QQQ", raw) if raw else (0, 0, 0)
        #: garbage collection: the write barrier is on while ``_gc_active`` (read under ``_lock``)
        self._gc_active = False
        #: bumped when a collection begins and when it ends (odd: one is running)
        self._gc_epoch = 0
        self._gc_cond = threading.Condition()
        self._writers: dict[int, int] = {}  # epoch -> imports in flight that started in it
        self._gc_mutex = threading.Lock()  # one collection at a time

    @property
    def db(self) -> KVStore:
        """The repo database this store lives in (shared with other namespaces)."""
        return self._db

    # ------------------------------------------------------------------ helpers
    def _compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._zc, "c", None)
        if c is None:
            c = self._zc.c = zstandard.ZstdCompressor(level=1)
            self._zc.d = zstandard.ZstdDecompressor()
        return c

    def _encode(self, data: bytes) -> bytes:
        if self._compress and len(data) >= COMPRESS_MIN:
            c = self._compressor()
            if len(data) > 4 * SAMPLE and len(c.compress(data[:SAMPLE])) > SAMPLE * COMPRESS_RATIO:
                return _RAW + bytes(data)  # the head does not compress: random or already compressed
            frame = c.compress(data)
            if len(frame) <= len(data) * COMPRESS_RATIO:
                return _ZSTD + frame
        return _RAW + bytes(data)

    def _decode(self, value: bytes) -> bytes:
        if value[:1] == _ZSTD:
            self._compressor()
            return self._zc.d.decompress(value[1:])
        return value[1:]

    @staticmethod
    def _logical_size(value: bytes) -> int:
        if value[:1] == _ZSTD:
            return zstandard.frame_content_size(value[1:])
        return len(value) - 1

    def _check(self, cid: bytes, data: bytes, do_verify: bool) -> bytes | None:
        """Validate one block; return its key, or None for identity CIDs."""
        parts = parse_cid(cid)
        if parts.mh_code == IDENTITY:
            if parts.digest != bytes(data):
                raise HashMismatch("identity CID does not match its data")
            return None
        if len(data) > self.max_block_size:
            raise BlockTooLarge(f"block of {len(data)} bytes exceeds the {self.max_block_size}-byte limit")
        if do_verify:
            verify(cid, data)
        return NS_BLOCKS + parts.multihash

    def _totals_value(self) -> bytes:
        return struct.pack("<QQQ", self._blocks, self._bytes, self._stored)

    # ------------------------------------------------------------------ writes
    def put(self, cid: bytes, data: bytes, *, verify: bool = True, journal: bytes | None = None) -> bool:
        """Store one block after checking it against its CID; True if it was new."""
        return self.put_many([(cid, data)], verify=verify, journal=journal) == 1

    def put_many(
        self,
        blocks: Iterable[tuple[bytes, bytes]],
        *,
        verify: bool = True,
        journal: bytes | None = None,
    ) -> int:
        """Store blocks in one write batch; return how many were new.

        Every block is validated first: if any fails, nothing of the batch is
        written. ``verify=False`` is only for blocks this process has just
        hashed itself (the importer). With ``journal``, new blocks are also
        recorded in that import journal (see :meth:`rollback`).
        """
        staged: list[tuple[bytes, bytes, int]] = []
        seen: set[bytes] = set()
        for cid, data in blocks:
            key = self._check(cid, data, verify)
            if key is None or key in seen:
                continue
            seen.add(key)
            staged.append((key, data, len(data)))
        if not staged:
            return 0
        db = self._db
        with self._lock:
            new = [(k, d, n) for k, d, n in staged if db.get(k) is None]
            if self._gc_active:  # write barrier: a running collection keeps what is written now
                with db.write_batch() as wb:
                    for key, _d, _n in staged:
                        wb.put(NS_GC_MARK + key[len(NS_BLOCKS) :], b"")
            if not new:
                return 0
            with db.write_batch() as wb:
                for key, data, n in new:
                    value = self._encode(data)
                    wb.put(key, value)
                    self._blocks += 1
                    self._bytes += n
                    self._stored += len(value)
                    if journal is not None:
                        wb.put(NS_JOURNAL + journal + b"/" + key[len(NS_BLOCKS) :], b"")
                wb.put(_TOTALS_KEY, self._totals_value())
        return len(new)

    def delete(self, cid: bytes) -> bool:
        """Remove a block; True if it was there."""
        return self.delete_multihashes([multihash_of(cid)]) == 1

    def delete_multihashes(self, multihashes: Iterable[bytes]) -> int:
        """Remove blocks by multihash in one write batch; return how many were there."""
        db = self._db
        removed = 0
        with self._lock:
            with db.write_batch() as wb:
                for mh in multihashes:
                    key = NS_BLOCKS + mh
                    value = db.get(key)
                    if value is None:
                        continue
                    wb.delete(key)
                    removed += 1
                    self._blocks -= 1
                    self._bytes -= self._logical_size(value)
                    self._stored -= len(value)
                wb.put(_TOTALS_KEY, self._totals_value())
        return removed

    # ------------------------------------------------------------------ journals
    def new_journal(self) -> bytes:
        """A fresh import journal id (16 random bytes)."""
        return uuid.uuid4().bytes

    def commit(self, journal: bytes, *, uploads: Iterable[bytes] = ()) -> None:
        """Forget a journal: its blocks are now kept for good (or, until a pin names them, by
        the upload markers of ``uploads``, written in the same batch: see :mod:`blockstore.uploads`)."""
        prefix = NS_JOURNAL + journal + b"/"
        now = time.time_ns()
        with self._db.write_batch(sync=bool(uploads)) as wb:
            for cid in uploads:
                wb.put(*upload_marker(cid, now))
            for key in self._db.iterator(prefix=prefix, include_value=False):
                wb.delete(key)

    def rollback(self, journal: bytes) -> int:
        """Delete every block the journaled import added; return how many."""
        prefix = NS_JOURNAL + journal + b"/"
        mhs = [k[len(prefix) :] for k in self._db.iterator(prefix=prefix, include_value=False)]
        removed = self.delete_multihashes(mhs)
        self.commit(journal)
        return removed

    def pending_journals(self) -> list[bytes]:
        """Journals left behind by imports that never finished (a crash)."""
        found: list[bytes] = []
        for key in self._db.iterator(prefix=NS_JOURNAL, include_value=False):
            jid = key[len(NS_JOURNAL) : len(NS_JOURNAL) + 16]
            if not found or found[-1] != jid:
                found.append(jid)
        return found

    def journaled_multihashes(self) -> Iterator[bytes]:
        """Multihashes of blocks recorded in any open import journal."""
        skip = len(NS_JOURNAL) + 17
        for key in self._db.iterator(prefix=NS_JOURNAL, include_value=False):
            yield key[skip:]

    def recover(self) -> int:
        """Roll back every unfinished import; return the blocks removed."""
        return sum(self.rollback(j) for j in self.pending_journals())

    # ------------------------------------------------------------------ garbage collection
    @contextmanager
    def writer(self) -> Iterator[None]:
        """Held by an import while it writes blocks and the pin or journal that keeps them.

        A collection that begins meanwhile waits for it before it reads its roots
        (imports never wait for a collection: what they write later is marked by
        the write barrier)."""
        with self._gc_cond:
            epoch = self._gc_epoch
            self._writers[epoch] = self._writers.get(epoch, 0) + 1
        try:
            yield
        finally:
            with self._gc_cond:
                self._writers[epoch] -= 1
                if not self._writers[epoch]:
                    del self._writers[epoch]
                self._gc_cond.notify_all()

    @property
    def gc_epoch(self) -> int:
        """Bumped when a collection begins and when it ends: equal values mean none began between."""
        return self._gc_epoch

    def gc_begin(self, prepare: Callable[[], None] | None = None) -> None:
        """Start a collection: one at a time (a second waits), ``prepare()`` (clear old marks),
        write barrier on, then wait for the imports that started before (their pins and
        journals are then on disk). Every successful call is paired with :meth:`gc_end`."""
        self._gc_mutex.acquire()
        try:
            if prepare is not None:
                prepare()
        except BaseException:
            self._gc_mutex.release()
            raise
        with self._lock:
            self._gc_active = True
        with self._gc_cond:
            self._gc_epoch += 1
            epoch = self._gc_epoch
        try:
            with self._gc_cond:
                while any(e < epoch for e in self._writers):
                    self._gc_cond.wait()
        except BaseException:
            self.gc_end()
            raise

    def gc_end(self) -> None:
        """End the collection started by :meth:`gc_begin` (write barrier off)."""
        with self._lock:
            self._gc_active = False
        with self._gc_cond:
            self._gc_epoch += 1
        self._gc_mutex.release()

    def get_kept(self, cid: bytes) -> bytes | None:
        """:meth:`get`, and while a collection runs, mark the block live (read barrier).

        Code that is about to record a pin of blocks it found already stored (not
        written by itself) reads them through this, so the sweep cannot remove
        them after they were checked (see :func:`blockstore.gc.record_pin`)."""
        parts = parse_cid(cid)
        if parts.mh_code == IDENTITY:
            return parts.digest
        key = NS_BLOCKS + parts.multihash
        with self._lock:
            value = self._db.get(key)
            if value is not None and self._gc_active:
                self._db.put(NS_GC_MARK + parts.multihash, b"")
        return None if value is None else self._decode(value)

    def keep(self, cid: bytes) -> bool:
        """:meth:`has`, and while a collection runs, mark the block live (as :meth:`get_kept`,
        without decoding it)."""
        parts = parse_cid(cid)
        if parts.mh_code == IDENTITY:
            return True
        key = NS_BLOCKS + parts.multihash
        with self._lock:
            present = self._db.get(key) is not None
            if present and self._gc_active:
                self._db.put(NS_GC_MARK + parts.multihash, b"")
        return present

    def delete_unmarked(self, multihashes: Iterable[bytes]) -> list[bytes]:
        """Delete the blocks of ``multihashes`` that no collection mark keeps; return those deleted.

        The marks are checked under the lock the write barrier takes: a block written
        or read through :meth:`get_kept` meanwhile is kept."""
        db = self._db
        removed: list[bytes] = []
        with self._lock:
            with db.write_batch() as wb:
                for mh in multihashes:
                    if db.get(NS_GC_MARK + mh) is not None:
                        continue
                    key = NS_BLOCKS + mh
                    value = db.get(key)
                    if value is None:
                        continue
                    wb.delete(key)
                    removed.append(mh)
                    self._blocks -= 1
                    self._bytes -= self._logical_size(value)
                    self._stored -= len(value)
                wb.put(_TOTALS_KEY, self._totals_value())
        return removed

    # ------------------------------------------------------------------ reads
    def get(self, cid: bytes) -> bytes | None:
        """The block's bytes, or None. Identity CIDs are answered from the CID."""
        if len(cid) == 34 and cid[0] == 0x12:
            key = NS_BLOCKS + cid
        else:
            parts = parse_cid(cid)
            if parts.mh_code == IDENTITY:
                return parts.digest
            key = NS_BLOCKS + parts.multihash
        value = self._db.get(key)
        return None if value is None else self._decode(value)

    def has(self, cid: bytes) -> bool:
        """True if the block is stored (identity CIDs are always present)."""
        parts = parse_cid(cid)
        if parts.mh_code == IDENTITY:
            return True
        return self._db.get(NS_BLOCKS + parts.multihash) is not None

    def has_multihash(self, mh: bytes) -> bool:
        """True if a block with this multihash is stored."""
        return self._db.get(NS_BLOCKS + mh) is not None

    def size(self, cid: bytes) -> int | None:
        """The block's size in bytes, or None when absent."""
        parts = parse_cid(cid)
        if parts.mh_code == IDENTITY:
            return len(parts.digest)
        value = self._db.get(NS_BLOCKS + parts.multihash)
        return None if value is None else self._logical_size(value)

    def iter_multihashes(self) -> Iterator[bytes]:
        """Every stored block's multihash, in key order, streamed from disk."""
        n = len(NS_BLOCKS)
        for key in self._db.iterator(prefix=NS_BLOCKS, include_value=False):
            yield key[n:]

    def stats(self) -> dict[str, int]:
        """Running totals: blocks, bytes (logical) and stored_bytes (on disk, before LevelDB overhead)."""
        with self._lock:
            return {"blocks": self._blocks, "bytes": self._bytes, "stored_bytes": self._stored}
