"""The bitswap server core (sans-I/O): per-peer ledgers and fair message scheduling.

The engine holds, for every peer, the wants it has sent us (its *ledger*) and
the subset still to be answered (its *task queue*). :meth:`Engine.next_message`
builds the next message to send, taking peers in round-robin order so a peer
with a huge wantlist cannot starve the others, and answers each want from a
:class:`BlockSource` (the block store):

- want-block, present: the block;
- want-have, present: the block itself if it is at most ``have_replace_size``
  bytes (cheaper than a round trip), else HAVE;
- absent: DONT_HAVE if the peer asked for it (``sendDontHave``); the want
  stays in the ledger and is answered when the block arrives
  (:meth:`Engine.notify_new_blocks`).

Answered wants leave the ledger. Memory per peer is bounded: at most
``max_wants_per_peer`` wants, CIDs are bounded by the codec. When a peer's
ledger is full, a new want first takes the place of the oldest want already
answered as absent (we do not hold that block: it waits only for
:meth:`Engine.notify_new_blocks`), then of a want of lower priority; else it is
rejected. Without the first rule a peer that asked for many blocks nobody
holds any more (CRDT deltas compacted away on every peer) could never get a
block we do hold (the snapshot that replaced them): boxo fixed the same
"toxic" overflow in https://github.com/ipfs/boxo/pull/629. No sockets, no clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .message import DONT_HAVE, HAVE, MAX_MESSAGE_SIZE, WANT_BLOCK, Block, Message, Presence, WantEntry, block_prefix

__all__ = ["BlockSource", "Engine", "EngineStats"]

#: bytes of protobuf framing counted per block or presence when sizing a message
_OVERHEAD = 16


class BlockSource(Protocol):
    """Where the engine reads blocks: the block store, or anything shaped like it."""

    def get(self, cid: bytes) -> bytes | None:
        """The block's bytes, or None when absent."""

    def size(self, cid: bytes) -> int | None:
        """The block's size, or None when absent."""


@dataclass(slots=True)
class EngineStats:
    """Counters of what the server side has done."""

    blocks_sent: int = 0
    bytes_sent: int = 0
    haves_sent: int = 0
    dont_haves_sent: int = 0
    messages_built: int = 0
    wants_received: int = 0
    wants_rejected: int = 0


@dataclass(slots=True)
class _Ledger:
    wants: dict[bytes, WantEntry] = field(default_factory=dict)
    #: wants still to answer: cid -> sequence number of its live heap item
    queued: dict[bytes, int] = field(default_factory=dict)
    heap: list[tuple[int, int, bytes]] = field(default_factory=list)
    #: wants answered as absent (block not held), oldest first: the first to make room
    absent: dict[bytes, None] = field(default_factory=dict)


class Engine:
    """Server-side decisions for every connected peer (see the module docstring)."""

    def __init__(
        self,
        source: BlockSource,
        *,
        max_wants_per_peer: int = 1024,
        target_message_bytes: int = 1024 * 1024,
        have_replace_size: int = 1024,
    ) -> None:
        if target_message_bytes > MAX_MESSAGE_SIZE:
            raise ValueError(f"target_message_bytes exceeds the {MAX_MESSAGE_SIZE}-byte message limit")
        self._source = source
        self.max_wants_per_peer = max_wants_per_peer
        self.target_message_bytes = target_message_bytes
        self.have_replace_size = have_replace_size
        self._ledgers: dict[Hashable, _Ledger] = {}
        self._ready: deque[Hashable] = deque()
        self._in_ready: set[Hashable] = set()
        self._seq = itertools.count()
        self.stats = EngineStats()

    # ----------------------------------------------------------------- peers
    def peer_disconnected(self, peer: Hashable) -> None:
        """Forget a peer's ledger (its wants die with the connection)."""
        self._ledgers.pop(peer, None)
        if peer in self._in_ready:
            self._in_ready.discard(peer)
            self._ready.remove(peer)

    def peers(self) -> list[Hashable]:
        """Peers with a ledger."""
        return list(self._ledgers)

    def wantlist(self, peer: Hashable) -> list[WantEntry]:
        """The wants a peer has sent us and we have not answered yet."""
        ledger = self._ledgers.get(peer)
        return list(ledger.wants.values()) if ledger else []

    def queued(self, peer: Hashable) -> int:
        """Number of wants of ``peer`` waiting to be answered."""
        ledger = self._ledgers.get(peer)
        return len(ledger.queued) if ledger else 0

    # ----------------------------------------------------------------- input
    def receive(self, peer: Hashable, msg: Message) -> None:
        """Apply the wantlist part of a message from ``peer``."""
        if not msg.wantlist and not msg.full:
            return
        ledger = self._ledgers.get(peer)
        if ledger is None:
            ledger = self._ledgers[peer] = _Ledger()
        if msg.full:
            ledger.wants.clear()
            ledger.queued.clear()
            ledger.heap.clear()
            ledger.absent.clear()
        for entry in msg.wantlist:
            if entry.cancel:
                ledger.wants.pop(entry.cid, None)
                ledger.queued.pop(entry.cid, None)
                ledger.absent.pop(entry.cid, None)
                continue
            self.stats.wants_received += 1
            if entry.cid not in ledger.wants and len(ledger.wants) >= self.max_wants_per_peer:
                if not self._evict_for(ledger, entry.priority):
                    self.stats.wants_rejected += 1
                    continue
            ledger.wants[entry.cid] = entry
            ledger.absent.pop(entry.cid, None)
            self._enqueue(ledger, entry)
        if ledger.queued:
            self._mark_ready(peer)
        elif not ledger.wants:
            del self._ledgers[peer]

    def notify_new_blocks(self, cids: Iterable[bytes]) -> None:
        """New blocks are stored: queue again every want of them that is waiting in a ledger."""
        cids = list(cids)
        for peer, ledger in self._ledgers.items():
            hit = False
            for cid in cids:
                entry = ledger.wants.get(cid)
                if entry is not None and cid not in ledger.queued:
                    ledger.absent.pop(cid, None)
                    self._enqueue(ledger, entry)
                    hit = True
            if hit:
                self._mark_ready(peer)

    # ----------------------------------------------------------------- output
    def has_work(self) -> bool:
        """True if some peer has wants to answer."""
        return bool(self._ready)

    def next_message(self, busy: Iterable[Hashable] = ()) -> tuple[Hashable, Message] | None:
        """The next (peer, message) to send, in round-robin order over peers.

        Peers in ``busy`` (a message to them is still being sent) are skipped.
        Returns None if no other peer has anything to answer. A message holds
        at least one answer and at most about ``target_message_bytes``.
        """
        busy = set(busy)
        for _ in range(len(self._ready)):
            peer = self._ready.popleft()
            if peer in busy:
                self._ready.append(peer)
                continue
            self._in_ready.discard(peer)
            ledger = self._ledgers.get(peer)
            if ledger is None:
                continue
            msg = self._build(ledger)
            if ledger.queued:
                self._mark_ready(peer)
            elif not ledger.wants:
                del self._ledgers[peer]
            if msg is not None:
                self.stats.messages_built += 1
                return peer, msg
        return None

    # ----------------------------------------------------------------- internals
    def _enqueue(self, ledger: _Ledger, entry: WantEntry) -> None:
        seq = next(self._seq)
        ledger.queued[entry.cid] = seq
        heapq.heappush(ledger.heap, (-entry.priority, seq, entry.cid))

    def _mark_ready(self, peer: Hashable) -> None:
        if peer not in self._in_ready:
            self._in_ready.add(peer)
            self._ready.append(peer)

    def _evict_for(self, ledger: _Ledger, priority: int) -> bool:
        """Make room in a full ledger for a want of ``priority``: drop the oldest want answered
        as absent, else the lowest-priority want below ``priority``; False if neither exists."""
        if ledger.absent:
            cid = next(iter(ledger.absent))
            del ledger.absent[cid]
            del ledger.wants[cid]
            self.stats.wants_rejected += 1
            return True
        cid, lowest = min(ledger.wants.items(), key=lambda item: item[1].priority)
        if lowest.priority >= priority:
            return False
        del ledger.wants[cid]
        ledger.queued.pop(cid, None)
        self.stats.wants_rejected += 1
        return True

    def _build(self, ledger: _Ledger) -> Message | None:
        msg = Message()
        size = 0
        heap = ledger.heap
        while heap and ledger.queued:
            _prio, seq, cid = heap[0]
            if ledger.queued.get(cid) != seq:
                heapq.heappop(heap)
                continue
            entry = ledger.wants[cid]
            if entry.want_type == WANT_BLOCK:
                need = self._source.size(cid)
                send_block = need is not None
            else:
                need = self._source.size(cid)
                send_block = need is not None and need <= self.have_replace_size
            cost = (need + _OVERHEAD) if send_block and need is not None else len(cid) + _OVERHEAD
            if size and size + cost > self.target_message_bytes:
                break
            heapq.heappop(heap)
            del ledger.queued[cid]
            if need is None:
                ledger.absent[cid] = None
                if entry.send_dont_have:
                    msg.presences.append(Presence(cid, DONT_HAVE))
                    self.stats.dont_haves_sent += 1
                    size += cost
                continue
            if send_block:
                data = self._source.get(cid)
                if data is None:  # deleted between size() and get()
                    ledger.absent[cid] = None
                    if entry.send_dont_have:
                        msg.presences.append(Presence(cid, DONT_HAVE))
                        self.stats.dont_haves_sent += 1
                    continue
                msg.blocks.append(Block(block_prefix(cid), data))
                self.stats.blocks_sent += 1
                self.stats.bytes_sent += len(data)
            else:
                msg.presences.append(Presence(cid, HAVE))
                self.stats.haves_sent += 1
            del ledger.wants[cid]
            size += cost
        if not ledger.queued:
            heap.clear()
        return msg if (msg.blocks or msg.presences) else None
