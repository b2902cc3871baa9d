"""One replica of the Merkle-CRDT pinset: batching, local commits, received heads.

Sans-I/O: no sockets, no event loop, no clock. The caller passes ``now``
(any monotonic seconds) to the batching calls, broadcasts the head CIDs the
commits return, and hands in received heads with a block getter (backed by
bitswap in the node). Everything durable lives in the repo's LevelDB: the
deltas as ordinary blocks of the :class:`~blockstore.store.BlockStore`, the
set, heads, queue and markers under ``NS_CRDT`` (see :mod:`.layout`).

Crash safety: every step writes in one LevelDB write batch.

- A local operation is written to the queue (``c/q/``) before ``put`` or
  ``delete`` returns; the commit of a batch merges the delta, moves the
  heads and deletes the queued items in one write batch. Items still queued
  at open are committed by the next :meth:`Replica.tick`.
- A received head is recorded as pending (``c/p/``) with the dirty flag
  before its branch is walked; every delta of the branch is applied oldest
  first, each with its processed marker and head update in one batch, so the
  applied part is always closed under ancestry. Opening a dirty store
  resumes the pending heads from local blocks; a head whose blocks are still
  missing stays pending (:meth:`Replica.pending_heads`) until they arrive.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import libipld

from blockstore.cid import DAG_CBOR, CidError, cid_to_str, codec_of, parse_cid
from blockstore.kv import KVStore, KVWriteBatch
from blockstore.store import BlockStore

from . import layout as L
from .delta import MAX_DELTA_SIZE, Delta, DeltaError, decode_delta, delta_links
from .orset import Change, IndexTerms, ORSet, OutOfOrder
from .snapshot import SnapshotError, build_snapshot, decode_covered, decode_elements, decode_root
from ..errors import ClusterError

#: cid -> block bytes, or None when the block cannot be had now
BlockGetter = Callable[[bytes], "bytes | None"]

PUT = 1
DELETE = 2
#: a delta is cut before its elements reach this many bytes (go-ds-crdt uses 1 MiB)
DELTA_BUDGET = MAX_DELTA_SIZE // 2
#: the carry of a snapshot load that met elements out of key order: the rest goes key by key
_UNSORTED: tuple[bytes, bytes] = (b"", b"")


class MissingBlock(ClusterError, LookupError):
    """A delta needed to apply a head is neither stored locally nor returned by the getter."""

    def __init__(self, cid: bytes) -> None:
        super().__init__(f"CRDT delta {cid_to_str(cid)} is not available")
        self.cid = cid


class ReceiveQueueFull(ClusterError, RuntimeError):
    """The batching queue holds ``max_queue_size`` items."""


@dataclass(frozen=True)
class Received:
    """Outcome of :meth:`Replica.receive`."""

    applied: int  #: deltas merged
    ignored: bool = False  #: the sender is not trusted


class Replica:
    """A Merkle-CRDT replica over one repo database and its block store.

    Thread-safe: every public call takes the replica's lock.
    """

    def __init__(
        self,
        db: KVStore,
        blocks: BlockStore,
        *,
        peer_id: str = "",
        trusted_peers: Iterable[str] = (),
        max_batch_size: int = 0,
        max_batch_age: float = 0.0,
        max_queue_size: int = 50_000,
        index_terms: IndexTerms | None = None,
        on_change: Callable[[Change], None] | None = None,
        on_changes: Callable[[list[Change]], None] | None = None,
        sync: bool = False,
    ) -> None:
        """Open the replica; resume pending heads from local blocks.

        Batching is on only when both ``max_batch_size`` and ``max_batch_age``
        are > 0 (as IPFS Cluster). ``on_change`` is told each change of the set;
        ``on_changes`` (instead) all the changes of one write at once. ``sync=True`` fsyncs queue and commit
        writes (durable across power loss, not only process crashes).
        """
        if max_batch_size < 0 or max_batch_age < 0 or max_queue_size < 1:
            raise ValueError("batch size/age must be >= 0 and max_queue_size >= 1")
        self._db = db
        self._blocks = blocks
        self.peer_id = peer_id
        self.set_trusted(trusted_peers)
        self.batching = max_batch_size > 0 and max_batch_age > 0
        self.max_batch_size = max_batch_size if self.batching else 0
        self.max_batch_age = max_batch_age
        self.max_queue_size = max_queue_size
        self._on_change = on_change
        self._on_changes = on_changes
        self._sync = sync
        self._lock = threading.RLock()
        self.set = ORSet(db, index_terms)
        self._heads: dict[bytes, int] = {}
        n = len(L.HEAD)
        for k, v in db.iterator(prefix=L.HEAD):
            self._heads[k[n:]] = L.read_u64(v)
        self._next_seq = 0
        #: the queue in memory, oldest first: (queue key, op, key, value), what ``c/q/`` holds
        #: (commits take their items from here instead of reading the queue back)
        self._pending: deque[tuple[bytes, int, bytes, bytes]] = deque()
        with db.iterator(prefix=L.QUEUE) as it:
            for k, v in it:
                op, key, value = libipld.decode_dag_cbor(v)
                self._pending.append((k, op, key, value))
                self._next_seq = L.read_u64(k, len(L.QUEUE)) + 1
        self._queued = len(self._pending)
        #: time of the first item of the open batch; None = due now (replayed items)
        self._first_at: float | None = None
        self._deltas = self._counter(L.DELTAS)
        self._batches = self._counter(L.BATCHES)
        self.resume()

    def _reload_counters(self) -> None:
        """Re-read the counters from disk after a write batch that was not written."""
        self.set.reload_count()
        self._deltas = self._counter(L.DELTAS)
        self._batches = self._counter(L.BATCHES)

    def _counter(self, key: bytes) -> int:
        raw = self._db.get(key)
        return L.read_u64(raw) if raw else 0

    # ------------------------------------------------------------------ trust
    def set_trusted(self, peers: Iterable[str]) -> None:
        """Replace the trusted peers; ``"*"`` trusts everyone. This replica is always trusted."""
        peers = set(peers)
        self._trust_all = "*" in peers
        self._trusted = peers - {"*"}

    def is_trusted(self, peer: str) -> bool:
        """True when heads from ``peer`` are accepted."""
        return self._trust_all or peer == self.peer_id or peer in self._trusted

    # ------------------------------------------------------------------ reads
    def heads(self) -> list[tuple[bytes, int]]:
        """Current heads as (CID, height), sorted by CID."""
        with self._lock:
            return sorted(self._heads.items())

    def height(self) -> int:
        """Height of the DAG: the greatest head height (0 when empty)."""
        with self._lock:
            return max(self._heads.values(), default=0)

    def is_processed(self, cid: bytes) -> bool:
        """True when the delta ``cid`` has been merged into the state."""
        return self._db.get(L.PROCESSED + cid) is not None

    def pending_heads(self) -> list[bytes]:
        """Received heads whose branch is not fully applied (blocks missing)."""
        n = len(L.PENDING)
        return [k[n:] for k in self._db.iterator(prefix=L.PENDING, include_value=False)]

    def is_dirty(self) -> bool:
        """True while some received branch is not fully applied."""
        return self._db.get(L.DIRTY) is not None

    def block_cids(self) -> Iterator[bytes]:
        """CIDs of every CRDT block in the block store: the GC roots of the CRDT.

        The listing is a LevelDB snapshot taken under the replica's lock (at the
        call, not lazily): a block stored by a write in progress is either listed
        or stored after the snapshot, when a running collection's write barrier
        marks it (see ``blockstore/gc.py``)."""
        with self._lock:
            it = self._db.iterator(prefix=L.BLOCK, include_value=False)
        return _strip(it, len(L.BLOCK))

    def queued(self) -> int:
        """Operations acknowledged and not yet committed."""
        return self._queued

    def stats(self) -> dict[str, int]:
        """Figures for metrics: pins, heads, height, deltas, batches, queued, pending.

        Read without the replica's lock (a sync holds it for a whole branch): the
        counters are plain ints, the heads are copied in one step, so a scrape
        never waits for a sync, at the price of figures a moment apart.
        """
        heights = list(self._heads.values())
        return {
            "pins": len(self.set),
            "heads": len(heights),
            "height": max(heights, default=0),
            "deltas": self._deltas,
            "batches": self._batches,
            "queued": self._queued,
            "pending": len(self.pending_heads()),
        }

    # ------------------------------------------------------------------ local writes
    def put(self, key: bytes, value: bytes, now: float = 0.0) -> bytes | None:
        """Add or replace ``key`` (a pin CID) with ``value``.

        Returns once the operation is durably queued; returns the CID of the
        delta committed by this call (to broadcast), or None.
        """
        if not isinstance(value, bytes):
            raise TypeError(f"CRDT value must be bytes, got {type(value).__name__}")
        return self.apply_many([(PUT, key, value)], now)

    def delete(self, key: bytes, now: float = 0.0) -> bytes | None:
        """Remove ``key``: tombstone every element of it observed at commit time."""
        return self.apply_many([(DELETE, key, b"")], now)

    def apply_many(self, ops: Iterable[tuple[int, bytes, bytes]], now: float = 0.0) -> bytes | None:
        """Queue (op, key, value) operations in one write; commit what is due.

        ``op`` is :data:`PUT` or :data:`DELETE`. Returns the CID of the last
        delta committed by this call, or None.
        """
        ops = list(ops)
        for op, key, value in ops:
            if op not in (PUT, DELETE):
                raise ValueError(f"unknown CRDT operation {op!r}")
            _check_key(key)
        with self._lock:
            if self._queued + len(ops) > self.max_queue_size:
                raise ReceiveQueueFull(f"batching max_queue_size reached ({self.max_queue_size} items queued)")
            entries = []
            with self._db.write_batch(transaction=True, sync=self._sync) as wb:
                for op, key, value in ops:
                    qkey = L.QUEUE + L.u64(self._next_seq)
                    wb.put(qkey, libipld.encode_dag_cbor([op, key, value]))
                    entries.append((qkey, op, key, value))
                    self._next_seq += 1
            self._pending.extend(entries)
            if self._queued == 0:
                self._first_at = now
            self._queued += len(ops)
            head = None
            if not self.batching:
                return self.commit()
            while self._queued >= self.max_batch_size:
                head = self._commit_one(self.max_batch_size) or head
            return head

    def update_many(
        self,
        keys: list[bytes],
        build: Callable[[list[bytes | None]], Iterable[tuple[int, bytes, bytes]]],
        now: float = 0.0,
    ) -> bytes | None:
        """Read the values of ``keys``, then queue the operations ``build(values)`` returns, under
        the replica's lock (no other write comes between the read and the write); as :meth:`apply_many`."""
        with self._lock:
            return self.apply_many(build([self.set.get(key) for key in keys]), now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called (None: nothing queued)."""
        with self._lock:
            if self._queued == 0:
                return None
            if self._first_at is None:
                return float("-inf")
            return self._first_at + self.max_batch_age

    def tick(self, now: float) -> bytes | None:
        """Commit the open batch if it is due at ``now``; the new head CID or None."""
        with self._lock:
            deadline = self.next_deadline()
            if deadline is None or now < deadline:
                return None
            return self.commit()

    def commit(self) -> bytes | None:
        """Commit everything queued now (at shutdown, or when due); the last head CID or None."""
        with self._lock:
            head = None
            while self._queued:
                head = self._commit_one(self.max_batch_size or self._queued) or head
            return head

    def _commit_one(self, limit: int) -> bytes | None:
        """Commit up to ``limit`` queued items as one delta."""
        db = self._db
        items: list[tuple[bytes, int, bytes, bytes]] = []
        size = 0
        for item in self._pending:
            items.append(item)
            size += len(item[2]) + len(item[3]) + 64
            if len(items) >= limit or size >= DELTA_BUDGET:
                break
        final: dict[bytes, bytes | None] = {}
        for _k, op, key, value in items:
            final[key] = value if op == PUT else None
        elements = tuple(sorted((k, v) for k, v in final.items() if v is not None))
        tombstones = tuple(sorted((k, eid) for k in final for eid in self.set.live_ids(k)))
        cid = None
        try:
            with db.write_batch(transaction=True, sync=self._sync) as wb:
                for k, *_ in items:
                    wb.delete(k)
                if elements or tombstones:
                    prio = max(self._heads.values(), default=0) + 1
                    delta = Delta(prio, tuple(sorted(self._heads)), elements, tombstones)
                    cid, data = delta.block()
                    self._blocks.put(cid, data, verify=False)
                    changes = self._stage_apply(wb, cid, delta)
                    self._batches += 1
                    wb.put(L.BATCHES, L.u64(self._batches))
        except BaseException:
            self._reload_counters()
            raise
        for _ in items:
            self._pending.popleft()
        self._queued -= len(items)
        self._first_at = None if self._queued == 0 else self._first_at
        if cid is not None:
            self._finish_apply(cid, delta, changes)
        return cid

    # ------------------------------------------------------------------ applying deltas
    def _stage_apply(self, wb: KVWriteBatch, cid: bytes, delta: Delta) -> list[Change]:
        """Stage the merge of one delta with its markers and head update."""
        changes = self.set.merge(wb, delta, cid)
        wb.put(L.PROCESSED + cid, b"")
        wb.put(L.BLOCK + cid, b"")
        for link in delta.links:
            if link in self._heads:
                wb.delete(L.HEAD + link)
        wb.put(L.HEAD + cid, L.u64(delta.priority))
        self._deltas += 1
        wb.put(L.DELTAS, L.u64(self._deltas))
        return changes

    def _finish_apply(self, cid: bytes, delta: Delta, changes: list[Change]) -> None:
        """After the write batch: move the in-memory heads and report changes."""
        for link in delta.links:
            self._heads.pop(link, None)
        self._heads[cid] = delta.priority
        self._report(changes)

    def _report(self, changes: list[Change]) -> None:
        """Tell the change hooks (after the write batch that made ``changes``)."""
        if self._on_changes is not None and changes:
            self._on_changes(changes)
        if self._on_change is not None:
            for change in changes:
                self._on_change(change)

    def _apply(self, cid: bytes, delta: Delta) -> None:
        try:
            with self._db.write_batch(transaction=True, sync=self._sync) as wb:
                changes = self._stage_apply(wb, cid, delta)
        except BaseException:
            self._reload_counters()
            raise
        self._finish_apply(cid, delta, changes)

    def _load(self, cid: bytes, get_block: BlockGetter | None, decode: Callable[[bytes], Any] = decode_delta) -> Any:
        """Read (or fetch, verify and store) the delta ``cid`` and decode it (``decode``:
        :func:`~.delta.decode_delta`, or :func:`~.delta.delta_links` for its links only)."""
        if codec_of(cid) != DAG_CBOR:
            raise DeltaError(f"CRDT delta {cid_to_str(cid)}: not a dag-cbor CID")
        data = self._blocks.get_kept(cid)  # kept by a collection running now (blockstore/gc.py)
        if data is None:
            data = get_block(cid) if get_block is not None else None
            if data is None:
                raise MissingBlock(cid)
            self._blocks.put(cid, data)  # verifies the hash; HashMismatch if forged
            self._db.put(L.BLOCK + cid, b"")
        try:
            return decode(data)
        except DeltaError as exc:
            raise DeltaError(f"CRDT delta {cid_to_str(cid)}: {exc}") from None

    def receive(self, head: bytes, sender: str, get_block: BlockGetter | None = None) -> Received:
        """Apply the branch of a head broadcast by ``sender``.

        Walks back from ``head`` to what is already applied, reading deltas
        from the block store or, when missing there, from ``get_block`` (whose
        blocks are verified and stored), and merges them oldest first.
        Raises :class:`MissingBlock` when a delta cannot be had (the head stays
        pending and is resumed by :meth:`resume`), ``DeltaError`` or
        ``HashMismatch`` for a bad block (the head is dropped).
        """
        _check_key(head)
        if not self.is_trusted(sender):
            return Received(0, ignored=True)
        with self._lock:
            if self.is_processed(head):
                if self._db.get(L.PENDING + head) is not None:
                    self._drop_pending(head)
                return Received(0)
            with self._db.write_batch(transaction=True, sync=self._sync) as wb:
                wb.put(L.PENDING + head, b"")
                wb.put(L.DIRTY, b"")
            applied = self._walk(head, get_block)
            return Received(applied)

    def _walk(self, head: bytes, get_block: BlockGetter | None) -> int:
        applied = 0
        visited: set[bytes] = set()
        stack: list[tuple[bytes, bool]] = [(head, False)]
        try:
            while stack:
                cid, expanded = stack.pop()
                if expanded:
                    self._apply(cid, self._load(cid, None))
                    applied += 1
                    continue
                if cid in visited or self.is_processed(cid):
                    continue
                visited.add(cid)
                links = self._load(cid, get_block, delta_links)  # the full decode comes with the merge
                stack.append((cid, True))
                for link in links:
                    if link not in visited and not self.is_processed(link):
                        stack.append((link, False))
        except ValueError:
            # bad content (DeltaError, HashMismatch, BlockTooLarge, CidError): a CID
            # never names other bytes, so this head can never be applied
            self._drop_pending(head)
            raise
        # anything else (MissingBlock, I/O errors, interruption) leaves the head
        # pending for resume()
        self._drop_pending(head)
        return applied

    def _drop_pending(self, head: bytes) -> None:
        with self._db.write_batch(transaction=True, sync=self._sync) as wb:
            wb.delete(L.PENDING + head)
            others = [k for k in self._db.iterator(prefix=L.PENDING, include_value=False) if k != L.PENDING + head]
            if not others:
                wb.delete(L.DIRTY)

    def missing_blocks(self, head: bytes, limit: int = 1024) -> list[bytes]:
        """CIDs the branch of ``head`` needs that are not stored locally.

        Walks the locally stored, unapplied part of the branch and returns its
        frontier (up to ``limit``), so the network shell can fetch them all at
        once (bitswap sessions) before calling :meth:`receive`.
        """
        _check_key(head)
        missing: list[bytes] = []
        visited: set[bytes] = set()
        stack = [head]
        while stack and len(missing) < limit:
            cid = stack.pop()
            if cid in visited or self.is_processed(cid):
                continue
            visited.add(cid)
            data = self._blocks.get(cid)
            if data is None:
                missing.append(cid)
                continue
            try:
                links = delta_links(data)
            except DeltaError:
                continue  # receive() reports it
            stack.extend(links)
        return missing

    def branch(self, head: bytes, above: int, limit: int = 100_000) -> tuple[list[bytes], list[bytes]]:
        """The stored deltas of ``head``'s branch whose priority is above ``above``, and the
        links of those deltas that are not stored here (compacted away, or never fetched).

        Walks only local blocks, newest first, up to ``limit`` deltas. A peer
        at height ``above`` asks for this so it can fetch a long branch in one
        go rather than one level at a time, and load a snapshot at once for
        what nobody stores any more.
        """
        _check_key(head)
        found: list[bytes] = []
        absent: list[bytes] = []
        visited: set[bytes] = set()
        stack = [head]
        while stack and len(found) < limit:
            cid = stack.pop()
            if cid in visited:
                continue
            visited.add(cid)
            data = self._blocks.get(cid)
            if data is None:
                absent.append(cid)
                continue
            try:
                delta = decode_delta(data)
            except DeltaError:
                continue
            if delta.priority <= above:
                continue
            found.append(cid)
            stack.extend(delta.links)
        return found, absent

    def merged_by(self, heads: Iterable[bytes], root: bytes, limit: int = 100_000) -> bool:
        """Whether a peer whose heads are ``heads`` has merged every delta of the snapshot
        ``root``: each head of the snapshot is one of ``heads`` or an ancestor of one.

        Walks the locally stored deltas below ``heads``, never below the lowest
        snapshot head's height (so the walk covers only what came after the
        snapshot). A head we do not store, or a walk of more than ``limit``
        deltas, counts as not merged: the caller waits and asks again.
        """
        _check_key(root)
        with self._lock:
            parsed, _chunks = self._snapshot_blocks(root, None)
            wanted = {cid: height for cid, height in parsed.heads}
            floor = min(wanted.values(), default=0)
            visited: set[bytes] = set()
            stack = list(heads)
            while stack and wanted:
                cid = stack.pop()
                if cid in visited:
                    continue
                visited.add(cid)
                wanted.pop(cid, None)
                if len(visited) > limit:
                    return False
                data = self._blocks.get(cid)
                if data is None:
                    continue  # not stored here (compacted, or ahead of us): cannot tell
                try:
                    delta = decode_delta(data)
                except DeltaError:
                    continue
                if delta.priority > floor:
                    stack.extend(delta.links)
            return not wanted

    def resume(self, get_block: BlockGetter | None = None) -> int:
        """Re-walk pending heads (after a crash or missing blocks); deltas applied.

        Heads whose blocks are still missing stay pending; a head with a bad
        block is dropped. Clears a dirty flag left with nothing pending.
        """
        applied = 0
        with self._lock:
            loading = self._db.get(L.LOADING)
            if loading is not None:
                try:
                    self.load_snapshot(loading, get_block)
                except (MissingBlock, SnapshotError, ValueError):
                    pass
            for head in self.pending_heads():
                try:
                    applied += self._walk(head, get_block)
                except MissingBlock:
                    continue
                except (DeltaError, ValueError):
                    continue
            if not self.pending_heads() and self._db.get(L.LOADING) is None and self.is_dirty():
                self._db.delete(L.DIRTY)
        return applied

    # ------------------------------------------------------------------ snapshots
    def create_snapshot(self) -> bytes:
        """Write a snapshot of the state at the current heads; return its root CID.

        The snapshot's blocks are stored in the block store and kept by GC.
        """
        with self._lock:
            if not self._heads:
                raise ValueError("cannot snapshot an empty CRDT (no heads)")
            heads = list(self._heads.items())
            snap = self._db.snapshot()
        try:
            np = len(L.PROCESSED)

            def covered() -> Iterator[bytes]:
                with snap.iterator(prefix=L.PROCESSED, include_value=False) as it:
                    for k in it:
                        yield k[np:]

            def elements() -> Iterator[tuple[bytes, bytes, int, bytes]]:
                with snap.iterator(prefix=L.ELEMENT) as it:
                    for k, v in it:
                        key, eid = L.split_keyed(L.ELEMENT, k)
                        yield key, eid, L.read_u64(v), v[8:]

            root = b""
            for cid, data in build_snapshot(heads, covered(), elements()):
                self._blocks.put(cid, data, verify=False)
                self._db.put(L.BLOCK + cid, b"")
                root = cid
            return root
        finally:
            snap.close()

    def _snapshot_blocks(self, root: bytes, get_block: BlockGetter | None) -> tuple[object, list[bytes]]:
        """Fetch (or read) the root and every chunk of a snapshot; (root, chunk CIDs)."""
        data = self._fetch(root, get_block)
        try:
            parsed = decode_root(data)
        except SnapshotError as exc:
            raise SnapshotError(f"snapshot {cid_to_str(root)}: {exc}") from None
        chunks = list(parsed.covered) + list(parsed.elements)
        for cid in chunks:
            self._fetch(cid, get_block)
        return parsed, chunks

    def _fetch(self, cid: bytes, get_block: BlockGetter | None) -> bytes:
        data = self._blocks.get_kept(cid)
        if data is None:
            data = get_block(cid) if get_block is not None else None
            if data is None:
                raise MissingBlock(cid)
            self._blocks.put(cid, data)
        self._db.put(L.BLOCK + cid, b"")
        return data

    def load_snapshot(self, root: bytes, get_block: BlockGetter | None = None) -> int:
        """Merge a snapshot into this replica (empty or not); return the elements it held.

        Afterwards every delta the snapshot covers counts as processed, so
        heads received later are walked only down to the snapshot. Safe to
        kill: the load is recorded and redone by :meth:`resume`.

        Into an empty replica (a new peer) the load is a bulk ingest: each
        element chunk is one write batch of sorted runs, one per key, with no
        reads (see :meth:`ORSet.merge_sorted_into_empty`), and the processed
        marks are written a covered chunk at a time, so memory does not grow
        with the number of deltas.
        """
        _check_key(root)
        with self._lock:
            parsed, _chunks = self._snapshot_blocks(root, get_block)
            with self._db.write_batch(transaction=True, sync=self._sync) as wb:
                wb.put(L.LOADING, root)
                wb.put(L.DIRTY, b"")
            # an empty replica (the usual bootstrap) has nothing for step 2 to remove
            with self._db.iterator(prefix=L.ELEMENT, include_value=False) as it:
                empty = not self._heads and next(it, None) is None
            covered: set[bytes] = set()
            if not empty:
                for link in parsed.covered:
                    covered.update(decode_covered(self._blocks.get(link)))
            loaded = 0
            carry: tuple[bytes, bytes] | None = None
            # 1. the snapshot's live elements, marked so that step 2 can tell them apart
            for link in parsed.elements:
                elems = decode_elements(self._blocks.get(link))
                loaded += len(elems)
                records = [(k, i, L.u64(p) + v) for k, i, p, v in elems]
                if empty:
                    carry = self._merge_batch([], records, [], fresh=True, carry=carry)
                else:
                    self._merge_batch([], records, [L.keyed(L.SCRATCH, k) + i for k, i, _p, _v in elems])
            # 2. local elements of covered deltas that the snapshot no longer holds were removed
            if not empty:
                self._remove_uncovered(covered)
            # 3. processed marks and heads (decided before the marks are written)
            local = dict(self._heads)
            snap_heads = dict(parsed.heads)
            new_heads = {c: h for c, h in local.items() if not (c in covered and c not in snap_heads)}
            for c, h in snap_heads.items():
                if c not in local and self.is_processed(c):
                    continue  # an ancestor of a local head already
                new_heads[c] = h
            if empty:  # streamed, a chunk per batch, the counter with them (a resumed load counts right)
                for link in parsed.covered:
                    self._mark_processed(decode_covered(self._blocks.get(link)))
            else:
                self._mark_processed(covered)
            with self._db.write_batch(transaction=True, sync=self._sync) as wb:
                for c in local:
                    if c not in new_heads:
                        wb.delete(L.HEAD + c)
                for c, h in new_heads.items():
                    wb.put(L.HEAD + c, L.u64(h))
                wb.delete(L.LOADING)
            self._heads = new_heads
            self._clear_prefix(L.SCRATCH)
            for head in self.pending_heads():
                if self.is_processed(head):
                    self._drop_pending(head)
            if not self.pending_heads():
                self._db.delete(L.DIRTY)
            # The deltas the snapshot covers are not stored here: peers that need
            # them bootstrap from our latest snapshot, which must cover every
            # delta we lack. Without an earlier one, that is the loaded root;
            # otherwise a new snapshot of our own covers both.
            previous = self._db.get(L.SNAPSHOT)
            if previous is None or previous == root:
                self._db.put(L.SNAPSHOT, root)
            else:
                self._db.put(L.SNAPSHOT, self.create_snapshot())
            return loaded

    def _mark_processed(self, cids: Iterable[bytes]) -> None:
        """Mark deltas processed (those not yet) and count them, in one write batch."""
        fresh = 0
        with self._db.write_batch(transaction=True, sync=self._sync) as wb:
            for c in cids:
                if not self.is_processed(c):
                    wb.put(L.PROCESSED + c, b"")
                    fresh += 1
            wb.put(L.DELTAS, L.u64(self._deltas + fresh))
        self._deltas += fresh

    def _remove_uncovered(self, covered: set[bytes]) -> None:
        """Tombstone local elements of ``covered`` deltas that the loaded snapshot did not mark."""
        tombs: list[tuple[bytes, bytes]] = []
        with self._db.iterator(prefix=L.ELEMENT, include_value=False) as it:
            for k in it:
                key, eid = L.split_keyed(L.ELEMENT, k)
                if eid in covered and self._db.get(L.keyed(L.SCRATCH, key) + eid) is None:
                    tombs.append((key, eid))
                    if len(tombs) >= 1000:
                        self._merge_batch(tombs, [], [])
                        tombs = []
        if tombs:
            self._merge_batch(tombs, [], [])

    def _merge_batch(
        self,
        tombs: list[tuple[bytes, bytes]],
        elements: list[tuple[bytes, bytes, bytes]],
        marks: list[bytes],
        *,
        fresh: bool = False,
        carry: tuple[bytes, bytes] | None = None,
    ) -> tuple[bytes, bytes] | None:
        """Stage and write one batch of a snapshot load; with ``fresh`` (an empty replica), the
        sorted-run path when the elements are in order (``carry``: see
        :meth:`ORSet.merge_sorted_into_empty`); returns the carry for the next batch."""
        try:
            changes: list[Change] | None = None
            if fresh and carry is not _UNSORTED:
                try:
                    with self._db.write_batch(transaction=True, sync=self._sync) as wb:
                        changes, carry = self.set.merge_sorted_into_empty(wb, elements, carry)
                except OutOfOrder:  # nothing was written: key by key from here on
                    changes, carry = None, _UNSORTED
            if changes is None:
                with self._db.write_batch(transaction=True, sync=self._sync) as wb:
                    if fresh:
                        changes = self.set.merge_into_empty(wb, elements)
                    else:
                        changes = self.set.merge_records(wb, tombs, elements)
                    for m in marks:
                        wb.put(m, b"")
        except BaseException:
            self._reload_counters()
            raise
        self._report(changes)
        return carry

    def _clear_prefix(self, prefix: bytes) -> None:
        while True:
            with self._db.iterator(prefix=prefix, include_value=False) as it:
                batch = [k for _, k in zip(range(10_000), it)]
            if not batch:
                return
            with self._db.write_batch() as wb:
                for k in batch:
                    wb.delete(k)

    def compact(self, root: bytes) -> int:
        """Drop the delta blocks covered by the snapshot ``root``; return how many.

        The snapshot must be fully merged here (made here or loaded). Current
        heads are kept, processed marks stay (they are what stops walks), and
        the blocks of the previous compaction snapshot are dropped.
        """
        _check_key(root)
        with self._lock:
            parsed, chunks = self._snapshot_blocks(root, None)
            keep = {root, *chunks, *self._heads}
            doomed: list[bytes] = []
            for link in parsed.covered:
                for cid in decode_covered(self._blocks.get(link)):
                    if not self.is_processed(cid):
                        raise ValueError(f"snapshot covers delta {cid_to_str(cid)} that this replica has not merged")
                    if cid not in keep:
                        doomed.append(cid)
            previous = self._db.get(L.SNAPSHOT)
            if previous is not None and previous != root:
                try:
                    _old, old_chunks = self._snapshot_blocks(previous, None)
                    doomed.extend(c for c in [previous, *old_chunks] if c not in keep)
                except (MissingBlock, SnapshotError):
                    pass
            dropped = 0
            for start in range(0, len(doomed), 1000):
                part = doomed[start : start + 1000]
                with self._db.write_batch() as wb:
                    for cid in part:
                        wb.delete(L.BLOCK + cid)
                for cid in part:
                    dropped += self._blocks.delete(cid)
            self._db.put(L.SNAPSHOT, root)
            return dropped

    def latest_snapshot(self) -> bytes | None:
        """Root CID of the snapshot that covers every delta this replica lacks.

        Set by :meth:`compact` and :meth:`load_snapshot`; the network shell
        offers it to peers that cannot fetch an old delta from here.
        """
        return self._db.get(L.SNAPSHOT)


def _check_key(key: object) -> None:
    if not isinstance(key, bytes):
        raise TypeError(f"CRDT key must be CID bytes, got {type(key).__name__}")
    try:
        parse_cid(key)
    except CidError as exc:
        raise ValueError(f"CRDT key is not a valid CID: {exc}") from None


def _strip(it: Any, n: int) -> Iterator[bytes]:
    """The keys of a LevelDB key iterator without their first ``n`` bytes (closes it at the end)."""
    with it:
        for key in it:
            yield key[n:]
