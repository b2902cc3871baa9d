"""Opening the one LevelDB database of a repo (plyvel), and its disk-full message.

Its key namespaces are declared in :mod:`blockstore.layout`; code that reads
and writes it types against :class:`blockstore.kv.KVStore`.
"""

from __future__ import annotations

import os
from pathlib import Path

import plyvel

from .layout import NS_META
from .memory import DEFAULT_PLAN, MemoryPlan
from .errors import BlockstoreError

FORMAT_VERSION = b"1"

#: bits per key of LevelDB's bloom filters: an import asks for every block whether it is
#: stored already, and a filter answers "no" without reading a table block (about 1 %
#: false positives; https://github.com/google/leveldb/blob/main/doc/index.md#filters)
BLOOM_FILTER_BITS = 10


class RepoLockedError(BlockstoreError, RuntimeError):
    """Another process holds the LevelDB lock of this repo."""


#: the memory plan of :func:`open_db` calls that pass none (a benchmark may replace it)
DEFAULT_MEMORY: MemoryPlan = DEFAULT_PLAN


def open_db(path: str | os.PathLike[str], *, create: bool = True, memory: MemoryPlan | None = None) -> plyvel.DB:
    """Open (or create) the repo's LevelDB with options tuned for blocks.

    LevelDB's own snappy compression is off: the block store decides per
    block with zstd. Large table files keep bulk imports fast (fewer files to compact and
    reopen; ``benchmarks/bench_import.py`` measures it). The write buffer (two memtables
    are alive at once: most of LevelDB's own memory) and the block cache come from
    ``memory`` (``Datastore.MemoryBudget``, see ``memory.py``). Tables written before
    the bloom filter was configured have none and are read as before.
    """
    p = Path(path)
    memory = memory or DEFAULT_MEMORY
    if create:
        p.mkdir(parents=True, exist_ok=True)
    try:
        db = plyvel.DB(
            str(p),
            create_if_missing=create,
            compression=None,
            write_buffer_size=memory.write_buffer_size,
            max_file_size=64 * 1024 * 1024,
            block_size=64 * 1024,
            lru_cache_size=memory.block_cache_size,
            bloom_filter_bits=BLOOM_FILTER_BITS,
            max_open_files=500,
        )
    except plyvel.IOError as exc:
        if "lock" in str(exc).lower():
            raise RepoLockedError(
                f"repo {p} is in use by another process (is a pinion daemon running?)"
            ) from None
        raise
    except plyvel.Error as exc:
        raise RepoLockedError(f"cannot open repo database {p}: {exc}") from None
    version = db.get(NS_META + b"format")
    if version is None:
        db.put(NS_META + b"format", FORMAT_VERSION, sync=True)
    elif version != FORMAT_VERSION:
        db.close()
        raise RuntimeError(f"repo database {p} has format {version!r}, expected {FORMAT_VERSION!r}")
    return db


def disk_full_message(exc: BaseException) -> str | None:
    """A clear message when ``exc`` is a write that failed because the disk is full, else None.

    LevelDB reports it as ``plyvel.IOError`` ("... No space left on device"),
    Python file writes as ``OSError`` with ``errno.ENOSPC``. After such an
    error LevelDB refuses every write until the database is reopened.
    """
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full ({exc.strerror}): free space, then restart the daemon"
    if isinstance(exc, plyvel.Error):
        text = exc.args[0] if exc.args else b""
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        if "No space left on device" in text:
            return (
                "the disk is full (No space left on device): the datastore takes no more writes "
                "until the daemon is restarted with free space; what was stored is kept"
            )
    return None
