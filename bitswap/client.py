"""The bitswap client core (sans-I/O): what we want, from whom, and what to do next.

:class:`WantManager` keeps every block we are waiting for and, for each, which
peers were asked, which said HAVE or DONT_HAVE and which one was sent the
want-block. Its decisions, per want:

1. a new want goes as **want-block** to the best connected peer (highest
   score, then most bytes delivered; optimistic: most DAG fetches come from
   one peer, and a want-have first would cost a round trip and a second
   wantlist message) and as **want-have** (with sendDontHave) to every other
   connected peer;
2. a HAVE makes that peer a candidate; when no want-block is outstanding,
   the best candidate (highest score) gets one;
3. DONT_HAVE, or no answer within ``block_timeout`` / ``have_timeout``
   (a simulated DONT_HAVE), moves on to the next candidate; a slow peer is
   scored down and sent a cancel;
4. when every peer has said no, the want is broadcast again as want-have
   every ``rebroadcast_interval`` (content may have arrived since);
5. a peer that sends the same block twice (a js peer re-sends every block
   still wanted each time a wantlist message arrives) gets its updates in
   rounds: they are held while it still owes want-blocks (at most
   ``round_wait`` seconds), so it is never asked again mid-send;
6. a received block is verified by deriving its CID from the prefix and the
   hash of its bytes; a block nobody wants is ignored (and its sender scored
   down unless it is a late duplicate), a wanted one ends the want and sends
   CANCEL to every other peer that was asked.

Every entry a peer holds from us is remembered (per peer: multihash -> want
type), and an entry it already holds is not sent again: a wantlist message
costs the peer work (a js peer even re-sends blocks it is still sending), so
only upgrades (want-have -> want-block), cancels and the periodic rebroadcast
go out. Wants are keyed by multihash, so a CIDv0 want is satisfied by a block sent
with a CIDv1 prefix of the same bytes. Time is passed in (``now``, seconds);
the core has no clock, no sockets and no tasks. Messages to send are
collected with :meth:`WantManager.take_outgoing`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from blockstore.cid import multihash_of

from .message import DONT_HAVE, HAVE, WANT_BLOCK, WANT_HAVE, Message, MessageError, WantEntry, block_cid

__all__ = ["WantManager", "ClientStats", "Received"]

#: how many recently received multihashes are remembered to tell duplicates from junk
_RECENT = 4096


@dataclass(slots=True)
class ClientStats:
    """Counters of what the client side has received."""

    blocks_received: int = 0
    bytes_received: int = 0
    duplicate_blocks: int = 0
    unwanted_blocks: int = 0
    invalid_blocks: int = 0
    timeouts: int = 0


@dataclass(slots=True)
class Received:
    """The outcome of one incoming message for the client side."""

    #: verified, wanted blocks: (the CID we wanted, its bytes)
    blocks: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: blocks dropped because their CID was not wanted, or could not be derived
    dropped: int = 0


@dataclass(slots=True)
class _Want:
    cid: bytes
    priority: int
    refs: int = 1
    asked_have: dict[Hashable, float] = field(default_factory=dict)
    have: set[Hashable] = field(default_factory=set)
    dont_have: set[Hashable] = field(default_factory=set)
    block_peer: Hashable | None = None
    block_sent: float = 0.0
    broadcast_at: float = 0.0


@dataclass(slots=True)
class _Peer:
    score: int = 0
    blocks: int = 0
    bytes: int = 0
    #: it sent a block twice (re-sends still-wanted blocks on every wantlist message): updates in rounds
    resends: bool = False
    #: when updates for it were first held back (rounds), None when nothing is held
    held_since: float | None = None


class WantManager:
    """Client-side decisions for all wants and peers (see the module docstring)."""

    def __init__(
        self,
        *,
        block_timeout: float = 10.0,
        have_timeout: float = 5.0,
        rebroadcast_interval: float = 10.0,
        round_wait: float = 1.0,
    ) -> None:
        self.block_timeout = block_timeout
        self.round_wait = round_wait
        self.have_timeout = have_timeout
        self.rebroadcast_interval = rebroadcast_interval
        self._wants: dict[bytes, _Want] = {}
        self._peers: dict[Hashable, _Peer] = {}
        self._out: dict[Hashable, dict[bytes, WantEntry]] = {}
        #: per peer: the wantlist it holds from us (multihash -> WANT_HAVE / WANT_BLOCK)
        self._held: dict[Hashable, dict[bytes, int]] = {}
        #: recently received multihash -> the peer that delivered it
        self._recent: OrderedDict[bytes, Hashable] = OrderedDict()
        self.stats = ClientStats()

    # ----------------------------------------------------------------- queries
    def wanted(self) -> list[bytes]:
        """The CIDs currently wanted."""
        return [w.cid for w in self._wants.values()]

    def is_wanted(self, cid: bytes) -> bool:
        """True if ``cid`` (or another CID of the same multihash) is wanted."""
        return multihash_of(cid) in self._wants

    def peers(self) -> list[Hashable]:
        """Connected peers known to the client."""
        return list(self._peers)

    def score(self, peer: Hashable) -> int:
        """A peer's score: up for delivered blocks, down for junk and timeouts."""
        p = self._peers.get(peer)
        return p.score if p else 0

    def held_by(self, peer: Hashable) -> dict[bytes, int]:
        """The wantlist ``peer`` holds from us (multihash -> WANT_HAVE / WANT_BLOCK), a copy."""
        return dict(self._held.get(peer, {}))

    def __len__(self) -> int:
        return len(self._wants)

    # ----------------------------------------------------------------- peers
    def add_peer(self, peer: Hashable, now: float) -> None:
        """A peer connected: send it our whole wantlist as want-have."""
        if peer in self._peers:
            return
        self._peers[peer] = _Peer()
        for mh, want in self._wants.items():
            self._send(peer, mh, want, WANT_HAVE)
            want.asked_have[peer] = now

    def remove_peer(self, peer: Hashable, now: float) -> None:
        """A peer disconnected: forget it, and move its want-blocks elsewhere."""
        if self._peers.pop(peer, None) is None:
            return
        self._out.pop(peer, None)
        self._held.pop(peer, None)
        for mh, want in self._wants.items():
            want.asked_have.pop(peer, None)
            want.have.discard(peer)
            want.dont_have.discard(peer)
            if want.block_peer == peer:
                want.block_peer = None
                self._advance(mh, want, now)

    # ----------------------------------------------------------------- wants
    def want(self, cids: Iterable[bytes], now: float, priority: int = 1) -> None:
        """Start wanting ``cids`` (a CID wanted twice is counted twice; see :meth:`cancel`)."""
        best = self._best_peer(self._peers)
        for cid in cids:
            mh = multihash_of(cid)
            want = self._wants.get(mh)
            if want is not None:
                want.refs += 1
                continue
            want = self._wants[mh] = _Want(cid, priority, broadcast_at=now)
            if best is not None:
                self._send(best, mh, want, WANT_BLOCK)
                want.block_peer = best
                want.block_sent = now
            for peer in self._peers:
                if peer != want.block_peer:
                    self._send(peer, mh, want, WANT_HAVE)
                    want.asked_have[peer] = now

    def cancel(self, cids: Iterable[bytes], now: float) -> None:
        """Stop wanting ``cids`` (once per earlier :meth:`want`); send CANCEL when nobody waits any more."""
        for cid in cids:
            mh = multihash_of(cid)
            want = self._wants.get(mh)
            if want is None:
                continue
            want.refs -= 1
            if want.refs <= 0:
                self._finish(mh, want, except_peer=None)

    # ----------------------------------------------------------------- input
    def receive(self, peer: Hashable, msg: Message, now: float) -> Received:
        """Apply the blocks and presences of a message from ``peer``."""
        out = Received()
        info = self._peers.get(peer)
        if info is None:
            info = self._peers[peer] = _Peer()
        for block in msg.blocks:
            try:
                cid = block_cid(block.prefix, block.data)
            except MessageError:
                self.stats.invalid_blocks += 1
                info.score -= 1
                out.dropped += 1
                continue
            mh = multihash_of(cid)
            want = self._wants.get(mh)
            if want is None:
                out.dropped += 1
                if mh in self._recent:
                    self.stats.duplicate_blocks += 1
                    if self._recent[mh] == peer and not info.resends:
                        # it sent the same block twice: it re-sends every block still wanted whenever
                        # a wantlist message arrives, so it gets its updates in rounds from now on
                        info.resends = True
                else:
                    self.stats.unwanted_blocks += 1
                    info.score -= 1
                continue
            self._recent[mh] = peer
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
            out.blocks.append((want.cid, block.data))
            self.stats.blocks_received += 1
            self.stats.bytes_received += len(block.data)
            info.score += 1
            info.blocks += 1
            info.bytes += len(block.data)
            self._finish(mh, want, except_peer=peer)
        for pres in msg.presences:
            mh = multihash_of(pres.cid)
            want = self._wants.get(mh)
            if want is None:
                continue
            want.asked_have.pop(peer, None)
            if pres.type == HAVE:
                want.have.add(peer)
                want.dont_have.discard(peer)
            elif pres.type == DONT_HAVE:
                want.have.discard(peer)
                want.dont_have.add(peer)
                if want.block_peer == peer:
                    want.block_peer = None
            self._advance(mh, want, now)
        return out

    def tick(self, now: float) -> None:
        """Apply timeouts: slow want-block peers, unanswered want-haves, periodic rebroadcast."""
        for mh, want in self._wants.items():
            changed = False
            if want.block_peer is not None and now - want.block_sent >= self.block_timeout:
                slow = want.block_peer
                self.stats.timeouts += 1
                want.block_peer = None
                want.have.discard(slow)
                want.dont_have.add(slow)
                if slow in self._peers:
                    self._peers[slow].score -= 2
                    self._send(slow, mh, want, WANT_BLOCK, cancel=True)
                changed = True
            for peer, sent in list(want.asked_have.items()):
                if now - sent >= self.have_timeout:
                    del want.asked_have[peer]
                    want.dont_have.add(peer)
                    changed = True
            if changed:
                self._advance(mh, want, now)
            if (
                want.block_peer is None
                and not want.have
                and not want.asked_have
                and now - want.broadcast_at >= self.rebroadcast_interval
            ):
                want.broadcast_at = now
                want.dont_have.clear()
                for peer in self._peers:
                    self._send(peer, mh, want, WANT_HAVE, again=True)
                    want.asked_have[peer] = now

    # ----------------------------------------------------------------- output
    def take_outgoing(self, now: float = 0.0) -> dict[Hashable, Message]:
        """The wantlist updates to send, one message per peer, and forget them.

        A peer known to re-send blocks (see :meth:`resends`) gets its updates
        in rounds: they wait while it still owes us want-blocks, for at most
        ``round_wait`` seconds.
        """
        out: dict[Hashable, Message] = {}
        for peer in list(self._out):
            entries = self._out[peer]
            if entries and self._holds_back(peer, now):
                continue
            del self._out[peer]
            if entries:
                out[peer] = Message(wantlist=list(entries.values()))
                info = self._peers.get(peer)
                if info is not None:
                    info.held_since = None
        return out

    def has_outgoing(self, now: float = 0.0) -> bool:
        """True if :meth:`take_outgoing` would return something."""
        return any(entries and not self._holds_back(peer, now) for peer, entries in self._out.items())

    def resends(self, peer: Hashable) -> bool:
        """True if ``peer`` sent a block twice: it re-sends still-wanted blocks on every wantlist message."""
        info = self._peers.get(peer)
        return info is not None and info.resends

    def owed_by(self, peer: Hashable) -> int:
        """How many want-blocks sent to ``peer`` (not those still queued) it has not answered yet."""
        unsent = self._out.get(peer, {})
        return sum(1 for mh, w in self._wants.items() if w.block_peer == peer and mh not in unsent)

    def _holds_back(self, peer: Hashable, now: float) -> bool:
        info = self._peers.get(peer)
        if info is None or not info.resends or not self.owed_by(peer):
            return False
        if info.held_since is None:
            info.held_since = now
        return now - info.held_since < self.round_wait

    # ----------------------------------------------------------------- internals
    def _best_peer(self, candidates: Iterable[Hashable]) -> Hashable | None:
        best = None
        best_key = None
        for peer in candidates:
            info = self._peers.get(peer)
            if info is None:
                continue
            key = (info.score, info.bytes)
            if best_key is None or key > best_key:
                best, best_key = peer, key
        return best

    def _advance(self, mh: bytes, want: _Want, now: float) -> None:
        if want.block_peer is not None:
            return
        peer = self._best_peer(p for p in want.have if p not in want.dont_have)
        if peer is None:
            return
        self._send(peer, mh, want, WANT_BLOCK)
        want.block_peer = peer
        want.block_sent = now

    def _finish(self, mh: bytes, want: _Want, except_peer: Hashable | None) -> None:
        del self._wants[mh]
        if except_peer is not None:
            # the sender dropped the want when it sent the block: no cancel, and nothing still queued
            held = self._held.get(except_peer)
            if held is not None:
                held.pop(mh, None)
            unsent = self._out.get(except_peer)
            if unsent is not None:
                unsent.pop(mh, None)
        asked = set(want.asked_have) | want.have | want.dont_have  # a DONT_HAVE peer still holds the want
        if want.block_peer is not None:
            asked.add(want.block_peer)
        for peer in asked:
            if peer != except_peer and peer in self._peers:
                self._send(peer, mh, want, WANT_BLOCK, cancel=True)

    def _send(
        self, peer: Hashable, mh: bytes, want: _Want, want_type: int, cancel: bool = False, again: bool = False
    ) -> None:
        """Queue an entry for ``peer``, unless it already holds that want (``again``: send anyway)."""
        held = self._held.setdefault(peer, {})
        if cancel:
            if held.pop(mh, None) is None:
                return  # the peer does not hold this want: nothing to cancel
        else:
            had = held.get(mh)
            if had is not None and not again and (had == WANT_BLOCK or want_type == WANT_HAVE):
                return
            if had == WANT_BLOCK and want_type == WANT_HAVE:
                want_type = WANT_BLOCK  # a rebroadcast does not downgrade a want-block the peer holds
            held[mh] = want_type
        self._out.setdefault(peer, {})[mh] = WantEntry(
            want.cid, priority=want.priority, cancel=cancel, want_type=want_type, send_dont_have=not cancel
        )
