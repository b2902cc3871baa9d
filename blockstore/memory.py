"""How a memory budget is split between LevelDB and the import paths.

``Datastore.MemoryBudget`` bounds the memory that grows while content is
written: LevelDB's memtables and block cache, the write batches an import
has in flight and the request body queued between the HTTP reader and the
importer. Everything else (the interpreter, the libraries, the pinset) is
outside it. :class:`MemoryPlan` turns one budget into those sizes:

========================  ===========  ==================================================
part                      share        why
========================  ===========  ==================================================
LevelDB write buffer      1/4          LevelDB keeps two memtables at once (one being
                                       written, one being flushed): 1/2 of the budget
LevelDB block cache       1/16         blocks read back (existence checks, the gateway)
import write batch        1/32         an import fills one batch while the previous one
                                       is written; LevelDB's WriteBatch copies the one
                                       being written (and grows by doubling): 4/32
upload buffer             1/16         multipart body queued for the importer
(slack)                   1/8          table index blocks, bloom filters, allocator
========================  ===========  ==================================================

The default budget (128 MiB) gives the sizes Pinion used before the budget
existed: a 32 MiB write buffer, an 8 MiB block cache, 4 MiB batches (the CAR
importer's; the UnixFS importer's were 16 MiB, three of them alive, which made
a 1 GiB ``add`` peak 100 MiB above a CAR import) and an 8 MiB upload buffer. LevelDB's options are documented in
https://github.com/google/leveldb/blob/main/include/leveldb/options.h
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
#: the budget when none is configured and no container limit is known
DEFAULT_BUDGET = 128 * MiB
#: smallest budget accepted (LevelDB works, slowly, with 2 MiB memtables)
MIN_BUDGET = 8 * MiB
#: largest budget accepted (LevelDB caps its write buffer at 1 GiB)
MAX_BUDGET = 4096 * MiB
#: a batch always takes at least this many bytes (one default-sized chunk)
MIN_BATCH_BYTES = 256 * 1024


@dataclass(frozen=True)
class MemoryPlan:
    """The sizes one memory budget gives (see the module docstring for the split)."""

    budget: int
    #: LevelDB ``write_buffer_size``: bytes of one memtable
    write_buffer_size: int
    #: LevelDB ``lru_cache_size``: bytes of uncompressed table blocks kept in memory
    block_cache_size: int
    #: bytes of block data an import hands to the store in one write batch
    write_batch_bytes: int
    #: bytes of an upload body queued between the HTTP reader and the importer
    upload_buffer_bytes: int

    @classmethod
    def from_budget(cls, budget: int) -> "MemoryPlan":
        """Split ``budget`` bytes; ValueError outside ``MIN_BUDGET..MAX_BUDGET``."""
        if isinstance(budget, bool) or not isinstance(budget, int) or not MIN_BUDGET <= budget <= MAX_BUDGET:
            raise ValueError(f"memory budget must be {MIN_BUDGET} to {MAX_BUDGET} bytes, not {budget!r}")
        sixteenth = budget // 16
        return cls(
            budget=budget,
            write_buffer_size=budget // 4,
            block_cache_size=sixteenth,
            write_batch_bytes=max(MIN_BATCH_BYTES, budget // 32),
            upload_buffer_bytes=max(MIN_BATCH_BYTES, sixteenth),
        )


#: the plan of :data:`DEFAULT_BUDGET`
DEFAULT_PLAN = MemoryPlan.from_budget(DEFAULT_BUDGET)


def budget_for_limit(limit: int | None) -> int:
    """The budget to use under a container memory limit of ``limit`` bytes (None: no limit).

    An idle daemon holds about 75 MiB of anonymous memory (the interpreter and
    its libraries) plus ~30 MiB of mapped code; what remains of the limit is best
    left to the page cache, through which LevelDB rewrites its tables while it
    compacts. An eighth of the limit goes to the budget: 16 MiB under a 128 MiB
    limit, the default from 1 GiB up.
    """
    if limit is None:
        return DEFAULT_BUDGET
    return max(MIN_BUDGET, min(DEFAULT_BUDGET, limit // 8))
