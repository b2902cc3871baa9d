"""Importing a CAR into the block store: all of it, or nothing.

Blocks are verified by the CAR parser, then written with
``BlockStore.put_many`` in bounded batches under one import journal. If
anything goes wrong (a malformed section, a block that does not match its
CID, a truncated stream, an exception from the caller), every block this
import added is removed again with ``store.rollback``; on success the journal
is committed. Full batches go to one writer thread (``batchwriter.py``), so
parsing and hashing overlap with LevelDB writes (hashlib and LevelDB release
the GIL); memory stays bounded by two batches of the store's
``write_batch_bytes`` plus one read, whatever the size of the CAR.

:class:`CarImporter` is the push-style form (``feed(chunk)`` / ``finish()``)
for callers that receive the bytes themselves, such as an asyncio HTTP
handler; :func:`import_car` drives it from a synchronous stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .batchwriter import BatchWriter
from .car import CarBlock, CarHeader, CarParser
from .store import BlockStore

__all__ = ["CarImportResult", "CarImporter", "import_car", "BATCH_BLOCKS", "BATCH_BYTES"]

#: blocks per write batch
BATCH_BLOCKS = 64
#: bytes of block data per write batch when the store does not say (``BlockStore.write_batch_bytes``,
#: from ``Datastore.MemoryBudget``)
BATCH_BYTES = 4 * 1024 * 1024
READ_SIZE = 1 << 20

Progress = Callable[[int], None] | None
#: called with the CIDs of each batch once it is written (from the writer thread)
Stored = Callable[[list[bytes]], None] | None


class CarImportResult(NamedTuple):
    """What a CAR import stored: the header's roots, blocks read and their total bytes."""

    roots: list[bytes]
    blocks: int
    bytes: int


class CarImporter:
    """Push-style CAR import into ``store``: call :meth:`feed` with each chunk, then :meth:`finish`.

    Any error raised by :meth:`feed` or :meth:`finish` has already rolled the
    import back. A caller that gives up for its own reasons (a client that
    disconnects) calls :meth:`abort`. ``on_stored(cids)``, when given, hears the
    CIDs of each batch once it is written (the node tells bitswap's waiting peers).
    """

    def __init__(
        self,
        store: BlockStore,
        *,
        progress: Progress = None,
        batch_blocks: int = BATCH_BLOCKS,
        batch_bytes: int | None = None,
        on_stored: Stored = None,
        **parser_options: Any,
    ) -> None:
        parser_options.setdefault("max_block_size", store.max_block_size)
        self._store = store
        self._parser = CarParser(**parser_options)
        self._progress = progress
        self._batch_blocks = batch_blocks
        self._batch_bytes = batch_bytes or getattr(store, "write_batch_bytes", None) or BATCH_BYTES
        self._batch: list[tuple[bytes, bytes]] = []
        self._batch_size = 0
        self._journal: bytes | None = store.new_journal()
        journal = self._journal

        def write(batch: list[tuple[bytes, bytes]]) -> None:
            # the parser has verified every block against its CID
            store.put_many(batch, verify=False, journal=journal)
            if on_stored is not None:
                on_stored([cid for cid, _ in batch])

        self._writer = BatchWriter(write, name="car-import-writer")
        self.roots: list[bytes] = []
        self.blocks = 0
        self.bytes = 0

    @property
    def done(self) -> bool:
        """True once the CAR's data has ended; later bytes (a CARv2 index) need not be fed."""
        return self._parser.done

    @property
    def active(self) -> bool:
        """True until the import has been finished or aborted."""
        return self._journal is not None

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Parse ``chunk`` and store the blocks it completes."""
        if self._journal is None:
            raise RuntimeError("CAR import already finished or aborted")
        try:
            for ev in self._parser.feed(chunk):
                if isinstance(ev, CarBlock):
                    self._add(ev)
                elif isinstance(ev, CarHeader):
                    self.roots = list(ev.roots)
            if self._progress is not None:
                self._progress(len(chunk))
        except BaseException:
            self.abort()
            raise

    def _add(self, block: CarBlock) -> None:
        self._batch.append((block.cid, block.data))
        n = len(block.data)
        self._batch_size += n
        self.blocks += 1
        self.bytes += n
        if len(self._batch) >= self._batch_blocks or self._batch_size >= self._batch_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            batch = self._batch
            self._batch = []
            self._batch_size = 0
            self._writer.submit(batch)

    def finish(self, *, keep_roots: bool = False) -> CarImportResult:
        """End of input: check the CAR is complete, store the last batch, commit; return the result.

        ``keep_roots``: the roots become upload markers in the commit's batch (kept from
        garbage collection until their cluster pin is settled: :mod:`blockstore.uploads`)."""
        if self._journal is None:
            raise RuntimeError("CAR import already finished or aborted")
        try:
            self._parser.finish()
            self._flush()
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        journal, self._journal = self._journal, None
        self._store.commit(journal, uploads=self.roots if keep_roots else ())
        return CarImportResult(self.roots, self.blocks, self.bytes)

    def abort(self) -> None:
        """Give up: remove every block this import added. Safe to call more than once."""
        journal, self._journal = self._journal, None
        self._batch = []
        if journal is not None:
            try:
                self._writer.close()  # no write may land after the rollback
            except BaseException:
                pass  # the import is being abandoned; its first error is already on its way up
            self._store.rollback(journal)


def import_car(
    stream: Any, store: BlockStore, *, progress: Progress = None, read_size: int = READ_SIZE, **parser_options: Any
) -> CarImportResult:
    """Import a CAR (v1 or v2) read from ``stream`` (anything with ``read(n)``) into ``store``.

    Every block is verified before it is stored. On any error nothing of this
    CAR stays stored and the error is re-raised (:class:`blockstore.car.CarError`
    for a malformed or rejected CAR). ``progress(n)`` is called with the
    number of bytes of each chunk read.
    """
    importer = CarImporter(store, progress=progress, **parser_options)
    try:
        while True:
            chunk = stream.read(read_size)
            if not chunk:
                break
            importer.feed(chunk)
            if importer.done:
                break
        return importer.finish()
    except BaseException:
        importer.abort()
        raise

