"""The bitswap service: engine (server) + want manager (client) + stream adapter + block store.

Runs in the trio thread that runs the libp2p host::

    bs = Bitswap(host, store)
    async with trio.open_nursery() as nursery:
        await nursery.start(bs.run)          # handlers registered, tasks running
        data = await bs.get_block(cid, timeout=30)
        ...
        nursery.cancel_scope.cancel()

Received blocks are verified (their CID is derived from the hash of their
bytes and must be one we want) before they are written to the store; other
peers' wants for them are then answered. Blocks stored by other means
(imports, CAR uploads) should be announced with :meth:`Bitswap.notify_new_blocks`
so waiting peers and local waiters are served.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import trio

from blockstore.cid import cid_to_str, multihash_of
from blockstore.store import BlockStore

from .client import WantManager
from .engine import Engine
from .message import MAX_MESSAGE_SIZE, Message
from .errors import BlockNotDelivered
from .network import BitswapNetwork

__all__ = ["Bitswap", "BitswapConfig", "BlockNotDelivered"]


log = logging.getLogger(__name__)

#: received messages with at least this many block bytes are written to the store from a worker thread
_THREAD_WRITE_BYTES = 128 * 1024


@dataclass(slots=True)
class BitswapConfig:
    """Tunables of the bitswap service (defaults follow boxo where it has one)."""

    #: server: wants kept per peer
    max_wants_per_peer: int = 1024
    #: server: messages are filled with blocks up to about this size
    target_message_bytes: int = 1024 * 1024
    #: server: a want-have for a block this small gets the block itself
    have_replace_size: int = 1024
    #: server: messages being sent at once (to different peers)
    send_workers: int = 4
    #: client: seconds a peer gets to deliver a want-block before we move on
    block_timeout: float = 10.0
    #: client: seconds a peer gets to answer a want-have
    have_timeout: float = 5.0
    #: client: seconds between want-have broadcasts of a want nobody has
    rebroadcast_interval: float = 10.0
    #: client: period of the timeout check
    tick_interval: float = 0.5
    #: client: seconds wantlist updates gather before they are sent (one message per peer per flush)
    want_flush_delay: float = 0.005
    #: client: longest wait of held wantlist updates for a peer that re-sends blocks (sent in rounds)
    round_wait: float = 1.0
    #: client: seconds a wait goes on once no peer is connected (after the last one left); None: until timeout
    no_peer_grace: float | None = 3.0
    #: stream layer: largest message read
    max_message_size: int = MAX_MESSAGE_SIZE


class _Pending:
    """A block some local callers are waiting for."""

    __slots__ = ("event", "data", "waiters", "since", "failure")

    def __init__(self, since: float) -> None:
        self.event = trio.Event()
        self.data: bytes | None = None
        self.waiters = 0
        self.since = since
        #: why the wait ended without the block (set when it was given up early)
        self.failure: str | None = None


class Bitswap:
    """The bitswap service on a libp2p host and a block store (see the module docstring)."""

    def __init__(self, host: Any, store: BlockStore, config: BitswapConfig | None = None) -> None:
        self.config = cfg = config or BitswapConfig()
        self.host = host
        self.store = store
        self.engine = Engine(
            store,
            max_wants_per_peer=cfg.max_wants_per_peer,
            target_message_bytes=cfg.target_message_bytes,
            have_replace_size=cfg.have_replace_size,
        )
        self.wants = WantManager(
            block_timeout=cfg.block_timeout,
            have_timeout=cfg.have_timeout,
            rebroadcast_interval=cfg.rebroadcast_interval,
            round_wait=cfg.round_wait,
        )
        self.network = BitswapNetwork(
            host, self._on_message, self._on_connect, self._on_disconnect, max_message_size=cfg.max_message_size
        )
        self._pending: dict[bytes, _Pending] = {}
        self._serve = trio.lowlevel.ParkingLot()
        self._flush = trio.lowlevel.ParkingLot()
        self._busy: set[Any] = set()
        self._running = False
        #: when the last connected peer left (None: a peer is connected, or none ever was)
        self._peerless_since: float | None = None

    # ----------------------------------------------------------------- life cycle
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve and fetch until cancelled (use with ``nursery.start``)."""
        async with trio.open_nursery() as nursery:
            self.network.start(nursery)
            self._running = True
            now = trio.current_time()
            for peer in self.network.connected_peers():
                self.wants.add_peer(peer, now)
            for _ in range(self.config.send_workers):
                nursery.start_soon(self._serve_worker)
            nursery.start_soon(self._flusher)
            nursery.start_soon(self._ticker)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._running = False
                # local callers stop waiting: their blocks will not come (they get BlockNotDelivered)
                for pending in self._pending.values():
                    pending.event.set()
                self._pending.clear()
                with trio.CancelScope(shield=True):
                    await self.network.close()

    # ----------------------------------------------------------------- client API
    async def get_block(self, cid: bytes, timeout: float | None = None) -> bytes:
        """The block's bytes, from the store or else from the network.

        Raises BlockNotDelivered if no peer delivers it within ``timeout`` seconds
        (None: wait until cancelled) or if the service stops first.
        """
        found, failure = await self._get_blocks([cid], timeout)
        if cid not in found:
            raise BlockNotDelivered(f"block {cid_to_str(cid)} {failure or f'not found within {timeout} s'}")
        return found[cid]

    async def get_blocks(self, cids: Iterable[bytes], timeout: float | None = None) -> dict[bytes, bytes]:
        """Fetch several blocks in one session; return those present or arrived within ``timeout`` (cid -> bytes).

        The wait ends early, without the missing blocks, when no peer has been
        connected for ``config.no_peer_grace`` seconds after the last one left.
        """
        found, _failure = await self._get_blocks(cids, timeout)
        return found

    async def _get_blocks(
        self, cids: Iterable[bytes], timeout: float | None
    ) -> tuple[dict[bytes, bytes], str | None]:
        """:meth:`get_blocks`, and why some blocks are missing when the wait was given up early."""
        failure: str | None = None
        found: dict[bytes, bytes] = {}
        missing: list[bytes] = []
        for cid in dict.fromkeys(cids):
            data = self.store.get(cid)
            if data is not None:
                found[cid] = data
            else:
                missing.append(cid)
        if not missing:
            return found, None
        if not self._running:
            raise RuntimeError("bitswap is not running")
        waits: list[tuple[bytes, bytes, _Pending]] = []
        now = trio.current_time()
        for cid in missing:
            mh = multihash_of(cid)
            pending = self._pending.get(mh)
            if pending is None:
                pending = self._pending[mh] = _Pending(now)
            pending.waiters += 1
            waits.append((cid, mh, pending))
        self.wants.want(missing, now)
        self._flush.unpark_all()
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                for _cid, _mh, pending in waits:
                    await pending.event.wait()
        finally:
            unfinished = []
            for cid, mh, pending in waits:
                pending.waiters -= 1
                if pending.data is not None:
                    found[cid] = pending.data
                    continue
                failure = failure or pending.failure
                unfinished.append(cid)
                if pending.waiters == 0 and self._pending.get(mh) is pending:
                    del self._pending[mh]
            if unfinished:
                self.wants.cancel(unfinished, trio.current_time())
                self._flush.unpark_all()
        return found, failure

    def notify_new_blocks(self, cids: Iterable[bytes]) -> None:
        """Blocks were added to the store by other means: serve peers and local waiters waiting for them."""
        cids = list(cids)
        done = []
        for cid in cids:
            pending = self._pending.get(multihash_of(cid))
            if pending is not None:
                data = self.store.get(cid)
                if data is not None:
                    del self._pending[multihash_of(cid)]
                    pending.data = data
                    pending.event.set()
                    done.append(cid)
        if done:
            self.wants.cancel(done, trio.current_time())
            self._flush.unpark_all()
        self.engine.notify_new_blocks(cids)
        self._serve.unpark_all()

    def stats(self) -> dict[str, int]:
        """Counters for metrics: blocks/bytes sent and received, wantlist size, peers, and more."""
        e, c, n = self.engine.stats, self.wants.stats, self.network.stats
        return {
            "blocks_sent": e.blocks_sent,
            "bytes_sent": e.bytes_sent,
            "blocks_received": c.blocks_received,
            "bytes_received": c.bytes_received,
            "duplicate_blocks": c.duplicate_blocks,
            "unwanted_blocks": c.unwanted_blocks,
            "invalid_blocks": c.invalid_blocks,
            "want_timeouts": c.timeouts,
            "wantlist_size": len(self.wants),
            "peers": len(self.wants.peers()),
            "haves_sent": e.haves_sent,
            "dont_haves_sent": e.dont_haves_sent,
            "messages_received": n.messages_received,
            "messages_sent": n.messages_sent,
            "bad_messages": n.bad_messages,
            "send_failures": n.send_failures,
        }

    # ----------------------------------------------------------------- events
    async def _on_message(self, peer: Any, msg: Message) -> None:
        if msg.wantlist or msg.full:
            self.engine.receive(peer, msg)
            self._serve.unpark_all()
        if not (msg.blocks or msg.presences):
            return
        got = self.wants.receive(peer, msg, trio.current_time())
        if got.blocks:
            # each CID was derived from the hash of its bytes in WantManager.receive: verified
            if sum(len(data) for _, data in got.blocks) >= _THREAD_WRITE_BYTES:
                await trio.to_thread.run_sync(functools.partial(self.store.put_many, got.blocks, verify=False))
            else:
                self.store.put_many(got.blocks, verify=False)
            for cid, data in got.blocks:
                pending = self._pending.pop(multihash_of(cid), None)
                if pending is not None:
                    pending.data = data
                    pending.event.set()
            self.engine.notify_new_blocks(cid for cid, _ in got.blocks)
            self._serve.unpark_all()
        self._flush.unpark_all()

    def _on_connect(self, peer: Any) -> None:
        self._peerless_since = None
        if self._running:
            self.wants.add_peer(peer, trio.current_time())
            self._flush.unpark_all()

    def _on_disconnect(self, peer: Any) -> None:
        self.wants.remove_peer(peer, trio.current_time())
        self.engine.peer_disconnected(peer)
        if not self.wants.peers():
            self._peerless_since = trio.current_time()
        self._flush.unpark_all()

    # ----------------------------------------------------------------- tasks
    async def _serve_worker(self) -> None:
        while True:
            try:
                item = self.engine.next_message(self._busy)
            except Exception:  # a store read failed: that want is dropped, serving goes on
                log.exception("bitswap: reading a block to serve failed")
                continue
            if item is None:
                await self._serve.park()
                continue
            peer, msg = item
            self._busy.add(peer)
            try:
                await self.network.send(peer, msg)
            finally:
                self._busy.discard(peer)
                self._serve.unpark_all()

    async def _flusher(self) -> None:
        while True:
            if not self.wants.has_outgoing(trio.current_time()):
                await self._flush.park()
                continue
            # let the wantlist updates of a burst (get_block calls, blocks arriving) gather into one
            # message per peer: every message makes the peer walk its ledger (a js peer even re-sends
            # blocks still in flight), so fewer, larger messages mean less work and fewer duplicates
            if self.config.want_flush_delay > 0:
                await trio.sleep(self.config.want_flush_delay)
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
            for peer, msg in self.wants.take_outgoing(trio.current_time()).items():
                self.network.post(peer, msg)

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.config.tick_interval)
            now = trio.current_time()
            self._give_up_without_peers(now)
            if len(self.wants):
                self.wants.tick(now)
                self._flush.unpark_all()

    def _give_up_without_peers(self, now: float) -> None:
        """End the waits that have had no connected peer for ``no_peer_grace`` seconds."""
        grace = self.config.no_peer_grace
        if grace is None or self._peerless_since is None or self.wants.peers():
            return
        for mh, pending in list(self._pending.items()):
            if now - max(self._peerless_since, pending.since) >= grace:
                del self._pending[mh]
                pending.failure = f"not found: no connected peer for {grace:g} s"
                pending.event.set()
