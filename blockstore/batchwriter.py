"""Writing an import's batches of blocks from one background thread, one batch in flight.

Both importers (UnixFS in ``importer.py``, CAR in ``carimport.py``) hash and
parse in the calling thread while a writer thread stores the previous batch
(hashlib, zstd and LevelDB release the GIL, so the two overlap). The hand-off
holds no queue: :meth:`BatchWriter.submit` waits until the writer has stored
the batch before, so an import holds at most two batches of block data, the
one being written and the one being filled, whatever the size of the input.
The batch size itself comes from the store (``BlockStore.write_batch_bytes``,
set from ``Datastore.MemoryBudget``; see ``memory.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Batch = list[tuple[bytes, bytes]]


class BatchWriter:
    """Calls ``write(batch)`` for each submitted batch, from one thread, in order.

    The first batch is written in the submitting thread (a small import costs
    no thread); the writer thread starts with the second. The first error of
    ``write`` is re-raised to the submitter by the next :meth:`submit` or by
    :meth:`close`; later batches are then dropped unwritten.
    """

    def __init__(self, write: Callable[[Batch], object], name: str = "block-batch-writer") -> None:
        self._write = write
        self._name = name
        self._cond = threading.Condition()
        self._pending: Batch | None = None  # handed to the writer and not yet stored
        self._closing = False
        self._first = True
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def busy(self) -> bool:
        """True while a batch handed to the writer thread is not yet stored."""
        return self._pending is not None

    def submit(self, batch: Batch) -> None:
        """Store ``batch``: at once if it is the first, else after the previous one, in the writer thread."""
        if self._error is not None:
            raise self._error
        if self._first:
            self._first = False
            self._write(batch)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        with self._cond:
            while self._pending is not None and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._pending = batch
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                batch = self._pending
                if batch is None:
                    return
            error: BaseException | None = None
            try:
                self._write(batch)
            except BaseException as exc:  # handed to the submitting thread
                error = exc
            with self._cond:
                self._pending = None
                if error is not None and self._error is None:
                    self._error = error
                self._cond.notify_all()

    def close(self) -> None:
        """Wait until every submitted batch is stored (or dropped after an error); raise the first error."""
        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
