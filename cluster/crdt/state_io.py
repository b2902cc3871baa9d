"""State export and import as NDJSON: one IPFS Cluster REST ``Pin`` object per line.

The format of ``ipfs-cluster-service state export``; the CLI (``pinion state
export|import``) opens the file (and zstd-wraps it for ``.zst``) and calls
these. Both stream: memory does not grow with the pinset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import IO

from blockstore.kv import KVStore
from blockstore.layout import NS_CRDT

from cluster.pin import Pin, PinError

from .replica import PUT, Replica


def export_pins(replica: Replica, out: IO[str], *, progress: Callable[[int], None] | None = None) -> int:
    """Write every pin of the state to ``out``, one JSON object per line; return the count.

    ``progress(n)`` is told every 1,000 pins written.
    """
    n = 0
    for _key, value in replica.set.items():
        out.write(json.dumps(Pin.from_cbor(value).to_json(), separators=(",", ":")))
        out.write("\n")
        n += 1
        if progress is not None and n % 1000 == 0:
            progress(1000)
    if progress is not None and n % 1000:
        progress(n % 1000)
    return n


def import_pins(
    replica: Replica, lines: Iterable[str], *, chunk: int = 1000, progress: Callable[[int], None] | None = None
) -> int:
    """Add the pins of an NDJSON stream to the replica; return the count.

    Lines are queued in chunks through :meth:`Replica.apply_many` and all is
    committed at the end. A bad line raises ``PinError`` naming its number;
    the pins of the lines before it are still imported. ``progress(n)`` is
    told of every chunk queued.
    """
    ops: list[tuple[int, bytes, bytes]] = []
    n = 0
    try:
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                pin = Pin.from_json(json.loads(line))
            except (ValueError, PinError) as exc:
                raise PinError(f"line {lineno}: {exc}") from None
            ops.append((PUT, pin.cid, pin.to_cbor()))
            n += 1
            if len(ops) >= chunk:
                replica.apply_many(ops)
                if progress is not None:
                    progress(len(ops))
                ops = []
    finally:
        if ops:
            replica.apply_many(ops)
        replica.commit()
    return n


def clear_state(db: KVStore) -> int:
    """Delete every CRDT key of an offline repo (``pinion state cleanup``); return how many.

    The delta blocks stay in the block store until the next garbage collection,
    which no longer sees them as CRDT blocks. No replica may be open on ``db``.
    """
    n = 0
    while True:
        with db.iterator(prefix=NS_CRDT, include_value=False) as it:
            keys = [k for _, k in zip(range(10_000), it)]
        if not keys:
            return n
        with db.write_batch() as wb:
            for k in keys:
                wb.delete(k)
        n += len(keys)
