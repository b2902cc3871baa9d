"""The cluster pinset of a node: the Merkle-CRDT :class:`~cluster.crdt.Replica` over the repo, on the network.

- :func:`open_replica` opens the replica on the repo's LevelDB and block store
  (``pinion state ...`` on an offline repo, and the daemon).
- :class:`PinsetService` is the daemon's shell around it when the cluster
  host runs: an asyncio task commits batches at their deadlines, new heads
  are broadcast on a gossipsub topic derived from ``Cluster.Name`` (at most
  one message per ``BROADCAST_GAP``: a burst of commits is announced by its
  last heads; and rebroadcast every ``Cluster.RebroadcastInterval`` seconds), and received
  heads are synced: the missing deltas are fetched concurrently by a bitswap
  instance on the *cluster* host, then applied by ``Replica.receive`` in a
  worker thread. Every replica call does LevelDB I/O under the replica's
  lock, so none runs on the event loop; and none waits for the network (that
  would hold the lock, and with it every pin write): blocks are fetched on the
  event loop first, and the replica only reads the store.
- Compaction: every ``Cluster.SnapshotInterval`` seconds, when at least
  ``Cluster.SnapshotMinDeltas`` deltas were written since the last snapshot,
  the service makes a snapshot and compacts to the *previous* one (also in a
  round with too few new deltas for a snapshot of its own), so deltas
  stay fetchable for one interval (peers briefly offline catch up by deltas)
  and a peer that needs a dropped delta loads the announced snapshot instead.
  A compaction also waits (at most ``COMPACTION_MAX_WAIT``) until every
  trusted peer on the topic has announced heads that include the previous
  snapshot's heads: a live peer that is only slow keeps catching up by deltas
  instead of being made to load a whole snapshot.
- Catching up: the newest snapshot is announced (it covers every delta the
  compacted ones included). A peer far below it (``JUMP_LEVELS``) loads it
  before walking when that is cheaper than walking the levels it skips (a
  restarted peer: minutes of level-by-level walking become one load and a
  short walk).

Broadcast message (DAG-CBOR): ``{"heads": [CID, ...], "snapshot": CID | null}``.

:class:`PinsetService` is the :class:`~node.cluster.interfaces.PinsetState` the
cluster peer reads and writes (``get``, ``iter_pins`` a page at a time, ``add``,
``remove``). The low-level ``/api/v0/pinset/*`` routes are in ``pinset_routes.py``.

Size: over 500 lines because receiving, branch listing, snapshot loading and
compaction share the one rule that keeps the replica's lock off the network
(fetch on the loop, then apply in a thread) and the set of heads in flight;
splitting the sync half into its own module is the next step.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import libipld
import trio

from bitswap import Bitswap, BitswapConfig
from blockstore.cid import CidError, cid_to_str, parse_cid
from blockstore.store import BlockStore, HashMismatch
from cluster.crdt.delta import DeltaError
from cluster.crdt.replica import PUT, MissingBlock, Replica
from cluster.crdt.snapshot import SnapshotError, SnapshotRoot, decode_root
from cluster.pin import Pin, PinError, meta_term, name_term, pin_index_terms

from ..p2p.service import P2PService, Subscription
from ..repo import Repo
from .interfaces import PeerCaller
from ..tasks import cancel_tasks
from cluster.errors import InvalidRequest

log = logging.getLogger(__name__)

#: most head CIDs one broadcast may carry (more are refused as malformed)
MAX_HEADS = 1024
#: largest broadcast message accepted, in bytes
MAX_MESSAGE = 64 * 1024
#: seconds bitswap waits for one round of missing deltas
FETCH_TIMEOUT = 15.0
#: received heads synced at once
SYNC_CONCURRENCY = 8
#: seconds before a failed batch commit is tried again
RETRY_DELAY = 1.0
#: seconds between two broadcasts of new heads: the commits made meanwhile go out in one
#: message (a new head links the older ones, so only the latest heads matter)
BROADCAST_GAP = 0.1
#: most delta CIDs one ``pinset_branch`` answer lists
BRANCH_LIMIT = 100_000
#: connected peers asked in turn for a branch listing, seconds each may take, seconds
#: a peer that failed to answer is not asked again
BRANCH_PEERS = 2
BRANCH_TIMEOUT = 5.0
BRANCH_BACKOFF = 60.0
#: fetch rounds of one head after which a branch listing is asked for (a long walk asks again)
BRANCH_ROUNDS = (1, 8, 64)
#: delta CIDs asked of bitswap at once while fetching a listed branch
BRANCH_FETCH_CHUNK = 2_000
#: pins read per worker-thread call while listing
PAGE = 1000
#: seconds a due compaction waits at most for live peers that have not merged its snapshot
COMPACTION_MAX_WAIT = 600.0
#: announced snapshots tried, newest sender's first, when deltas cannot be fetched
SNAPSHOT_TRIES = 3
#: a peer whose height is this many levels below an announced snapshot's heads loads the
#: snapshot before walking, when the snapshot holds at most ``JUMP_ELEMENTS_PER_LEVEL``
#: elements per level skipped: a delta walked level by level costs a network round trip
#: (milliseconds), a snapshot element a few microseconds to load
JUMP_LEVELS = 64
JUMP_ELEMENTS_PER_LEVEL = 1000


class PinsetError(InvalidRequest):
    """A broadcast message or pinset request that cannot be used; the message names the problem."""


def open_replica(repo: Repo, **options: Any) -> Replica:
    """The CRDT replica of ``repo`` (peer ID and trusted peers from its ``Cluster`` config).

    ``options`` are passed to :class:`Replica` (batching, ``on_change``...).
    """
    cluster = repo.config["Cluster"]
    return Replica(
        repo.db,
        repo.store,
        peer_id=cluster.get("PeerID", ""),
        trusted_peers=cluster.get("TrustedPeers", ["*"]),
        index_terms=pin_index_terms,
        **options,
    )


def topic_for(cluster_name: str) -> str:
    """The gossipsub topic of the pinset heads of cluster ``cluster_name``."""
    return f"pinion/{cluster_name}/crdt/heads"


def encode_heads(heads: list[bytes], snapshot: bytes | None) -> bytes:
    """The broadcast message for ``heads`` (CIDs) and the latest snapshot root (or None)."""
    return libipld.encode_dag_cbor({"heads": list(heads), "snapshot": snapshot})


def decode_heads(data: bytes) -> tuple[list[bytes], bytes | None]:
    """Parse a broadcast message into (head CIDs, snapshot root or None); PinsetError if malformed."""
    if len(data) > MAX_MESSAGE:
        raise PinsetError(f"heads message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    try:
        obj = libipld.decode_dag_cbor(data)
    except Exception as exc:  # libipld raises plain ValueError/TypeError variants
        raise PinsetError(f"heads message is not DAG-CBOR: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("heads"), list):
        raise PinsetError("heads message must be a map with a 'heads' list")
    heads = obj["heads"]
    if len(heads) > MAX_HEADS:
        raise PinsetError(f"heads message names {len(heads)} heads (at most {MAX_HEADS})")
    snapshot = obj.get("snapshot")
    for cid in [*heads, *([snapshot] if snapshot is not None else [])]:
        if not isinstance(cid, bytes):
            raise PinsetError(f"heads message holds a {type(cid).__name__} where a CID belongs")
        try:
            parse_cid(cid)
        except CidError as exc:
            raise PinsetError(f"heads message holds a bad CID: {exc}") from None
    return list(heads), snapshot


class PinsetService:
    """The daemon's replica on the cluster network (see module docstring)."""

    def __init__(
        self,
        replica: Replica,
        store: BlockStore,
        p2p: P2PService,
        *,
        cluster_name: str,
        rebroadcast_interval: float = 60.0,
        fetch_timeout: float = FETCH_TIMEOUT,
        snapshot_interval: float = 0.0,
        snapshot_min_deltas: int = 1000,
        executor: Executor | None = None,
        rpc: PeerCaller | None = None,
    ) -> None:
        if p2p.cluster is None:
            raise PinsetError("the pinset needs the cluster host (set Cluster.Secret)")
        self.replica = replica
        self._store = store
        self._p2p = p2p
        #: where replica calls run (the daemon's pinset pool; None: the default executor)
        self._executor = executor
        self.topic = topic_for(cluster_name)
        self.rebroadcast_interval = rebroadcast_interval
        self.fetch_timeout = fetch_timeout
        self.snapshot_interval = snapshot_interval
        self.snapshot_min_deltas = snapshot_min_deltas
        #: snapshot made by the last round, compacted to by the next one
        self._next_compaction: bytes | None = None
        self._deltas_at_snapshot = 0
        self._loaded_at_round = 0
        #: trusted peer -> the heads and the snapshot of its latest message (the snapshots are
        #: loaded when deltas cannot be fetched; the heads tell compaction who has merged what)
        self._peer_heads: dict[str, list[bytes]] = {}
        self._peer_snapshots: dict[str, bytes] = {}
        #: monotonic time the due compaction was first put off for a lagging peer (None: not put off)
        self._compaction_put_off: float | None = None
        #: announced snapshots already weighed for a jump (each root once)
        self._jump_weighed: set[bytes] = set()
        #: snapshots merged by this process (never loaded twice) and the lock that orders loads
        self._loaded_snapshots: set[bytes] = set()
        self._snapshot_lock = asyncio.Lock()
        #: peer -> monotonic time before which it is not asked for branch listings
        self._branch_backoff: dict[str, float] = {}
        self._bs: Bitswap | None = None
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._queued = asyncio.Event()
        #: set when new heads are to be broadcast (by the broadcast task, see ``BROADCAST_GAP``)
        self._heads_changed = asyncio.Event()
        #: heads being synced -> monotonic time they were first announced (the sync lag)
        self._syncing: dict[bytes, float] = {}
        self._sync_tasks: set[asyncio.Task[None]] = set()
        self._sync_slots = asyncio.Semaphore(SYNC_CONCURRENCY)
        #: the cluster peer RPC: lets a peer that is far behind ask the announcer for a
        #: whole branch instead of walking it level by level (None: level by level only)
        self.rpc = rpc
        #: counters for metrics beside ``replica.stats()``
        self.counters = {
            "broadcasts": 0,
            "messages_received": 0,
            "messages_invalid": 0,
            "sync_failures": 0,
            "snapshots": 0,
            "snapshots_loaded": 0,
            "deltas_compacted": 0,
            "branches_listed": 0,
        }

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start bitswap on the cluster host, join the topic, start the commit, rebroadcast and receive tasks."""
        await self._p2p.start_libp2p_service(self._serve_bitswap)
        self._sub = await self._p2p.subscribe(self.topic)
        self._tasks = [
            asyncio.create_task(self._commit_loop(), name="pinset-commit"),
            asyncio.create_task(self._rebroadcast_loop(), name="pinset-rebroadcast"),
            asyncio.create_task(self._broadcast_loop(), name="pinset-broadcast"),
            asyncio.create_task(self._receive_loop(self._sub), name="pinset-receive"),
        ]
        if self.snapshot_interval > 0:
            self._tasks.append(asyncio.create_task(self._snapshot_loop(), name="pinset-snapshot"))

    async def _serve_bitswap(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        assert self._p2p.cluster is not None
        host = self._p2p.cluster.host
        if host is None:
            raise RuntimeError("the cluster host is not running")
        self._bs = Bitswap(host, self._store, BitswapConfig())
        await self._bs.run(task_status=task_status)

    async def stop(self) -> None:
        """Cancel the tasks, leave the topic and commit what is still queued (before the hosts stop)."""
        await cancel_tasks([*self._tasks, *self._sync_tasks], "pinset", log)
        self._tasks.clear()
        self._sync_tasks.clear()
        if self._heads_changed.is_set():  # heads committed within the last broadcast gap
            await self.broadcast()
        if self._sub is not None:
            try:
                await self._p2p.unsubscribe(self._sub)
            except Exception:
                log.exception("leaving %s failed", self.topic)
            self._sub = None
        await self.in_thread(self.replica.commit)

    # ------------------------------------------------------------ local writes
    async def add(self, pin: Pin) -> None:
        """Put ``pin`` in the pinset (durably queued on return); broadcast if it committed a delta."""
        head = await self.in_thread(self.replica.put, pin.cid, pin.to_cbor(), time.monotonic())
        await self._after_write(head)

    async def add_many(self, pins: list[Pin]) -> None:
        """Put several pins in one write (queued in one batch, committed as the batching says)."""
        ops = [(PUT, pin.cid, pin.to_cbor()) for pin in pins]
        head = await self.in_thread(self.replica.apply_many, ops, time.monotonic())
        await self._after_write(head)

    async def update_many(self, cids: list[bytes], build: Callable[[list[Pin | None]], list[Pin]]) -> None:
        """Read the pins of ``cids`` and write the pins ``build(held)`` returns, in one worker-thread
        call under the replica's lock (``build`` runs in that thread: no other write of the pinset
        comes between its read and its write); queued as :meth:`add_many`."""

        def ops(values: list[bytes | None]) -> list[tuple[int, bytes, bytes]]:
            held = [Pin.from_cbor(v) if v is not None else None for v in values]
            return [(PUT, pin.cid, pin.to_cbor()) for pin in build(held)]

        head = await self.in_thread(self.replica.update_many, cids, ops, time.monotonic())
        await self._after_write(head)

    async def get_many(self, cids: list[bytes]) -> list[Pin | None]:
        """The pins of ``cids`` (None where absent), read in one worker-thread call."""

        def read() -> list[bytes | None]:
            return [self.replica.set.get(cid) for cid in cids]

        return [Pin.from_cbor(v) if v is not None else None for v in await self.in_thread(read)]

    async def remove(self, cid: bytes) -> bool:
        """Remove the pin of ``cid``; False when the pinset does not hold it."""
        if not await self.in_thread(self.replica.set.has, cid):
            return False
        head = await self.in_thread(self.replica.delete, cid, time.monotonic())
        await self._after_write(head)
        return True

    async def get(self, cid: bytes) -> Pin | None:
        """The pin of ``cid``, or None."""
        value = await self.in_thread(self.replica.set.get, cid)
        return Pin.from_cbor(value) if value is not None else None

    async def iter_pins(
        self,
        start: bytes | None = None,
        *,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
        cids: Sequence[bytes] | None = None,
    ) -> AsyncIterator[Pin]:
        """Pins in CID order from ``start``, read a page at a time in a worker thread.

        ``cids``: only those pins (absent ones left out). ``name``/``meta``: exact name and
        metadata matches, found through the index (the first term drives, the others are
        checked on each pin). An undecodable pin is logged and skipped."""
        replica = self.replica
        if cids is not None:
            for cid in sorted(set(cids)):
                if start is not None and cid < start:
                    continue
                pin = await self.get(cid)
                if pin is not None:
                    yield pin
            return
        terms: list[bytes] = []
        if name:
            terms.append(name_term(name))
        for k, v in (meta or {}).items():
            terms.append(meta_term(k, v))
        if terms:

            def matches() -> list[bytes]:
                return list(replica.set.find(terms[0]))

            for cid in sorted(await self.in_thread(matches)):
                if start is not None and cid < start:
                    continue
                pin = await self.get(cid)
                if pin is None:
                    continue
                if name and pin.name != name:
                    continue
                if meta and any(pin.metadata.get(k) != v for k, v in meta.items()):
                    continue
                yield pin
            return
        while True:
            rows = await self.in_thread(self.page, start)
            for _key, value in rows[:PAGE]:
                try:
                    yield Pin.from_cbor(value)
                except PinError as exc:
                    log.warning("undecodable pin in the state skipped: %s", exc)
            if len(rows) <= PAGE:
                return
            start = rows[PAGE][0]

    def page(self, start: bytes | None) -> list[tuple[bytes, bytes]]:
        """Up to ``PAGE + 1`` (key, value) pairs of the pinset from ``start`` (blocking): the last
        one starts the next page."""
        return list(itertools.islice(self.replica.set.items(start), PAGE + 1))

    async def _after_write(self, head: bytes | None) -> None:
        if head is not None:
            self._heads_changed.set()
        else:
            self._queued.set()  # a batch is open: the commit task watches its deadline

    # ------------------------------------------------------------ broadcasting
    async def broadcast(self) -> None:
        """Publish the current heads (and latest snapshot) on the topic."""
        heads = [cid for cid, _h in await self.in_thread(self.replica.heads)]
        if not heads:
            return
        # the newest snapshot made here covers all the older one does (and its blocks are
        # kept until the round after next): a peer far behind loads it and walks less
        snapshot = self._next_compaction or await self.in_thread(self.replica.latest_snapshot)
        try:
            await self._p2p.publish(self.topic, encode_heads(heads[:MAX_HEADS], snapshot))
            self.counters["broadcasts"] += 1
        except Exception as exc:
            log.warning("publishing pinset heads failed: %s", exc)

    async def _commit_loop(self) -> None:
        """Commit open batches at their deadlines (and queue items left by a crash at start)."""
        while True:
            try:
                deadline = await self.in_thread(self.replica.next_deadline)
                if deadline is None:
                    self._queued.clear()
                    if await self.in_thread(self.replica.next_deadline) is None:
                        await self._queued.wait()
                    continue
                delay = deadline - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                head = await self.in_thread(self.replica.tick, time.monotonic())
                if head is not None:
                    self._heads_changed.set()
            except Exception:  # a failed commit (disk full...) is retried; the queue is durable
                log.exception("committing the pinset batch failed; retrying in %s s", RETRY_DELAY)
                await asyncio.sleep(RETRY_DELAY)

    async def _broadcast_loop(self) -> None:
        """Broadcast new heads as they are committed, at most once per ``BROADCAST_GAP``."""
        while True:
            await self._heads_changed.wait()
            self._heads_changed.clear()
            try:
                await self.broadcast()
            except Exception:
                log.exception("broadcasting the pinset heads failed")
            await asyncio.sleep(BROADCAST_GAP)

    async def _rebroadcast_loop(self) -> None:
        """Broadcast at start (peers learn our heads) and every ``rebroadcast_interval`` seconds."""
        while True:
            try:
                await self.broadcast()
            except Exception:
                log.exception("rebroadcasting the pinset heads failed")
            await asyncio.sleep(self.rebroadcast_interval)

    # ------------------------------------------------------------ receiving
    async def _receive_loop(self, sub: Subscription) -> None:
        own = self.replica.peer_id
        while True:
            sender, data = await sub.get()
            if sender == own:
                continue
            self.counters["messages_received"] += 1
            try:
                heads, snapshot = decode_heads(data)
            except PinsetError as exc:
                self.counters["messages_invalid"] += 1
                log.info("pinset message from %s ignored: %s", sender, exc)
                continue
            if not self.replica.is_trusted(sender):
                continue
            self._peer_heads[sender] = heads
            if snapshot is not None:
                self._peer_snapshots[sender] = snapshot
            if snapshot is not None and not await self.in_thread(self.replica.heads):
                await self._load_snapshot(snapshot)
            for head in heads:
                if head in self._syncing:
                    continue
                self._syncing[head] = time.monotonic()
                task = asyncio.create_task(self._sync_head(head, sender), name="pinset-sync")
                self._sync_tasks.add(task)
                task.add_done_callback(self._sync_tasks.discard)

    async def _sync_head(self, head: bytes, sender: str) -> None:
        """Fetch the branch of ``head`` (missing deltas in concurrent rounds), then apply it.

        When a round of missing deltas gets none of them (every peer compacted
        them away), a snapshot trusted peers announced is loaded (the sender's
        latest first, then the others', as announced when the round failed:
        the one a peer announced earlier may be gone by then) and the walk
        tried again.
        """
        try:
            async with self._sync_slots:
                if await self.in_thread(self.replica.is_processed, head):
                    return
                await self._jump_if_far_behind(sender)
                fallback = bool(await self._snapshot_candidates(sender))
                outcome = await self._fetch_branch(head, sender, snapshot_fallback=fallback)
                if outcome == "none":
                    for snapshot in (await self._snapshot_candidates(sender))[:SNAPSHOT_TRIES]:
                        log.info("pinset head %s: loading snapshot %s instead", cid_to_str(head), cid_to_str(snapshot))
                        if await self._load_snapshot(snapshot):
                            outcome = await self._fetch_branch(head, sender)
                            break
                if outcome != "complete":
                    self.counters["sync_failures"] += 1
                    return
                # every delta of the branch is stored now: the replica reads the store only
                await self.in_thread(self.replica.receive, head, sender, None)
        except MissingBlock as exc:
            self.counters["sync_failures"] += 1
            log.info("pinset head %s: %s", cid_to_str(head), exc)
        except (DeltaError, HashMismatch, ValueError) as exc:
            self.counters["sync_failures"] += 1
            log.warning("pinset head %s from %s dropped: %s", cid_to_str(head), sender, exc)
        except Exception:
            self.counters["sync_failures"] += 1
            log.exception("syncing pinset head %s failed", cid_to_str(head))
        finally:
            self._syncing.pop(head, None)

    async def _snapshot_candidates(self, sender: str) -> list[bytes]:
        """The snapshots trusted peers announced that this replica has not merged yet:
        ``sender``'s first, then the most recently heard of the others."""
        latest = await self.in_thread(self.replica.latest_snapshot)
        announced = [self._peer_snapshots.get(sender), *reversed(self._peer_snapshots.values())]
        fresh = (s for s in announced if s is not None and s != latest and s not in self._loaded_snapshots)
        return list(dict.fromkeys(fresh))

    async def _jump_if_far_behind(self, sender: str) -> None:
        """Load the snapshot ``sender`` (or another peer) announced when this replica is at least
        ``JUMP_LEVELS`` below its heads and the snapshot is small for the levels it skips."""
        candidates = await self._snapshot_candidates(sender)
        if not candidates or candidates[0] in self._jump_weighed:
            return
        root = candidates[0]
        if len(self._jump_weighed) > 1000:
            self._jump_weighed.clear()
        self._jump_weighed.add(root)
        parsed = await self._fetch_root(root)
        if parsed is None:
            return  # a sync that needs it reports it
        gap = max(h for _c, h in parsed.heads) - await self.in_thread(self.replica.height)
        if gap >= JUMP_LEVELS and parsed.count <= JUMP_ELEMENTS_PER_LEVEL * gap:
            log.info("pinset %d levels behind snapshot %s (%d pins): loading it first", gap, cid_to_str(root), parsed.count)
            await self._load_snapshot(root)

    async def _fetch_branch(self, head: bytes, sender: str, *, snapshot_fallback: bool = False) -> str:
        """Fetch every missing delta below ``head``: "complete", "partial" (some of a round
        came: the next announcement resumes) or "none" (a round got nothing, or, with
        ``snapshot_fallback``, the peer listing the branch named every missing delta absent:
        compacted, so the announced snapshot is the only way on)."""
        # each round walks only below the blocks fetched by the previous one (not from the head
        # again), so a long chain of missing deltas costs one decode per delta
        frontier = [head]
        rounds = 0
        while missing := await self.in_thread(self._missing_below, frontier):
            if rounds in BRANCH_ROUNDS:
                # more than one level is missing: ask a peer for the whole branch, so a
                # long chain takes a few bitswap rounds instead of one per delta
                absent = await self._prefetch_branch(head, sender)
                missing = await self.in_thread(self._missing_below, frontier)
                if not missing:
                    break
                if snapshot_fallback and absent.issuperset(missing):
                    # the peer that holds the head does not have these either: they were
                    # compacted, and waiting for bitswap to time out on them gains nothing
                    return "none"
            rounds += 1
            got = await self._fetch_many(missing)
            if len(got) < len(missing):
                log.info("pinset head %s: %d deltas did not arrive", cid_to_str(head), len(missing) - len(got))
                return "partial" if got else "none"
            frontier = missing
        return "complete"

    async def _prefetch_branch(self, head: bytes, sender: str) -> set[bytes]:
        """Fetch the deltas a connected peer lists for ``head``'s branch above our height
        (``pinset_branch``); the deltas that peer named as absent (not stored there).

        Only a hint: the blocks are verified by bitswap like any other and the
        walk that follows still finds whatever the answer left out.
        """
        if self.rpc is None:
            return set()
        # below our lowest head everything is usually merged (a concurrent branch may not
        # be: the walk that follows fetches what the listing leaves out)
        heads = await self.in_thread(self.replica.heads)
        above = max(0, min(h for _c, h in heads) - 1) if heads else 0
        # the sender is the head's author, often not connected to us: ask connected
        # peers on the topic (the author first when it is one of them)
        now = time.monotonic()
        connected = [p for p in await self.topic_peers() if self._branch_backoff.get(p, 0.0) <= now]
        candidates = [p for p in connected if p == sender] + [p for p in connected if p != sender]
        items: list[Any] = []
        for peer in [p for p in candidates if self.replica.is_trusted(p)][:BRANCH_PEERS]:
            try:
                args = {"head": head, "above": above}
                async with asyncio.timeout(2 * BRANCH_TIMEOUT + 1):  # bounded even if libp2p ignores its timeout
                    items = [item async for item in self.rpc.stream(peer, "pinset_branch", args, timeout=BRANCH_TIMEOUT)]
            except Exception as exc:  # an old peer or a stream that does not open: not asked again for a while
                self._branch_backoff[peer] = time.monotonic() + BRANCH_BACKOFF
                log.info("pinset head %s: %s did not list its branch: %s", cid_to_str(head), peer, exc or "timed out")
                continue
            if items:
                break
        listed = [item for item in items if isinstance(item, bytes)][:BRANCH_LIMIT]
        absent = {item["absent"] for item in items if isinstance(item, dict) and isinstance(item.get("absent"), bytes)}
        if not listed:
            return set()  # nobody could list it: the walk goes level by level
        self.counters["branches_listed"] += 1
        wanted = await self.in_thread(self._not_stored, listed)
        for start in range(0, len(wanted), BRANCH_FETCH_CHUNK):
            part = wanted[start : start + BRANCH_FETCH_CHUNK]
            got = await self._fetch_many(part)
            if len(got) < len(part):
                break  # the walk fetches (or reports) what is still missing
        return absent

    def _not_stored(self, cids: list[bytes]) -> list[bytes]:
        """The CIDs of ``cids`` whose blocks are not in the store (blocking: worker thread)."""
        return [cid for cid in cids if not self._store.has(cid)]

    async def serve_branch(self, _peer: str, args: Any) -> AsyncIterator[list[Any]]:
        """RPC ``pinset_branch`` ``{"head": CID bytes, "above": height}``: the CIDs of the stored
        deltas of that branch with a priority above ``above``, newest first, then
        ``{"absent": CID}`` for each of their links not stored here (pages of 1,000)."""
        if not isinstance(args, dict):
            raise PinsetError("pinset_branch takes {head, above}")
        head, above = args.get("head"), args.get("above")
        if not isinstance(head, bytes) or not isinstance(above, int) or isinstance(above, bool) or above < 0:
            raise PinsetError("pinset_branch takes {head: CID bytes, above: height >= 0}")
        try:
            parse_cid(head)
        except CidError as exc:
            raise PinsetError(f"pinset_branch: bad head CID: {exc}") from None
        found, absent = await self.in_thread(self.replica.branch, head, above, BRANCH_LIMIT)
        items: list[Any] = [*found, *({"absent": cid} for cid in absent)]
        for start in range(0, len(items), 1000):
            yield items[start : start + 1000]

    def _missing_below(self, roots: list[bytes]) -> list[bytes]:
        """The missing deltas under ``roots`` (blocking: worker thread), each once."""
        missing: dict[bytes, None] = {}
        for root in roots:
            for cid in self.replica.missing_blocks(root):
                missing[cid] = None
        return list(missing)

    async def _load_snapshot(self, root: bytes) -> bool:
        """Merge a peer's snapshot (bootstrap, or deltas compacted away); each root once.
        True when it is merged (now or before)."""
        async with self._snapshot_lock:  # concurrent syncs often want the same one
            if root in self._loaded_snapshots:
                return True
            try:
                await self._fetch_snapshot(root)  # on the event loop, so the replica's lock is never held for the network
                await self.in_thread(self.replica.load_snapshot, root, None)
                self.counters["snapshots_loaded"] += 1
                self._loaded_snapshots.add(root)
                return True
            except (MissingBlock, SnapshotError, DeltaError, HashMismatch, ValueError) as exc:
                self.counters["sync_failures"] += 1
                log.warning("pinset snapshot %s not loaded: %s", cid_to_str(root), exc)
                return False

    # ------------------------------------------------------------ compaction
    async def _snapshot_loop(self) -> None:
        """Every ``snapshot_interval`` s: snapshot, and compact to the previous round's snapshot."""
        self._deltas_at_snapshot = (await self.in_thread(self.replica.stats))["deltas"]
        while True:
            await asyncio.sleep(self.snapshot_interval)
            try:
                await self.snapshot_round()
            except Exception:
                log.exception("pinset snapshot/compaction failed")

    async def snapshot_round(self) -> bytes | None:
        """One compaction round (see module docstring): a new snapshot when enough deltas came
        since the last one, and the compaction to the previous round's snapshot (even when too
        few came for a new one: the deltas it covers are one interval old). The new snapshot's
        root, or None."""
        deltas = (await self.in_thread(self.replica.stats))["deltas"]
        if self._syncing:
            return None
        fresh = deltas - self._deltas_at_snapshot >= self.snapshot_min_deltas
        previous = self._next_compaction
        if self.counters["snapshots_loaded"] != self._loaded_at_round:
            # a loaded snapshot now covers deltas we never had: compacting to an older
            # snapshot of ours would announce one that does not cover them
            previous = self._next_compaction = None
            self._loaded_at_round = self.counters["snapshots_loaded"]
        if not fresh and previous is None:
            return None
        if previous is not None and await self._put_off_compaction(previous):
            return None
        root = None
        if fresh:
            root = await self.in_thread(self.replica.create_snapshot)
            self.counters["snapshots"] += 1
            self._deltas_at_snapshot = deltas
        self._next_compaction = root
        if previous is not None:
            dropped = await self.in_thread(self.replica.compact, previous)
            self.counters["deltas_compacted"] += dropped
            log.info("pinset compacted to snapshot %s: %d blocks dropped", cid_to_str(previous), dropped)
        return root

    async def _put_off_compaction(self, root: bytes) -> bool:
        """True while a trusted peer on the topic has not announced heads that merged the
        snapshot ``root`` (it would lose deltas it is still fetching), for at most
        ``COMPACTION_MAX_WAIT`` seconds from the first time the compaction was put off."""
        peers = [p for p in await self.topic_peers() if p != self.replica.peer_id and self.replica.is_trusted(p)]
        heads = {p: self._peer_heads.get(p, []) for p in peers}

        def lagging() -> list[str]:
            return [p for p, h in heads.items() if not self.replica.merged_by(h, root)]

        behind = await self.in_thread(lagging)
        now = time.monotonic()
        if not behind:
            self._compaction_put_off = None
            return False
        if self._compaction_put_off is None:
            self._compaction_put_off = now
            log.info("pinset compaction put off: %d peers have not merged snapshot %s", len(behind), cid_to_str(root))
        if now - self._compaction_put_off < COMPACTION_MAX_WAIT:
            return True
        log.warning(
            "pinset compacting to snapshot %s although %s have not merged it after %.0f s",
            cid_to_str(root), ", ".join(behind), now - self._compaction_put_off,
        )
        self._compaction_put_off = None
        return False

    async def _fetch_many(self, cids: list[bytes]) -> dict[bytes, bytes]:
        """Fetch blocks over the cluster host's bitswap (stored on arrival); those that came.

        Bounded here too (twice the fetch timeout): a libp2p call that ignores its own
        timeout must not hold the head in ``_syncing`` for ever (it would never be retried).
        """
        bs = self._bitswap()
        try:
            async with asyncio.timeout(2 * self.fetch_timeout + 1):
                return await self._p2p.run_in_libp2p(bs.get_blocks, cids, self.fetch_timeout)
        except TimeoutError:
            log.info("pinset fetch of %d blocks did not return in time", len(cids))
            return {}

    async def _fetch_root(self, root: bytes) -> SnapshotRoot | None:
        """A snapshot's root block, fetched (stored on arrival) and decoded; None when it did
        not come or is not a snapshot root."""
        block = (await self._fetch_many([root])).get(root)
        if block is None:
            return None
        try:
            return decode_root(block)
        except SnapshotError:
            return None

    async def _fetch_snapshot(self, root: bytes) -> None:
        """Fetch a snapshot's root and chunk blocks that are not stored yet (what is missing
        afterwards makes ``load_snapshot`` raise MissingBlock)."""
        parsed = await self._fetch_root(root)
        if parsed is None:
            return  # load_snapshot reports it
        chunks = [*parsed.covered, *parsed.elements]
        wanted = await self.in_thread(self._not_stored, chunks)
        for start in range(0, len(wanted), BRANCH_FETCH_CHUNK):
            await self._fetch_many(wanted[start : start + BRANCH_FETCH_CHUNK])

    def _bitswap(self) -> Bitswap:
        if self._bs is None:
            raise RuntimeError("the cluster bitswap is not running")
        return self._bs

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        """Run a blocking call (replica, LevelDB) in the daemon's pinset pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def topic_peers(self) -> list[str]:
        """Cluster peers known to be subscribed to the pinset topic."""
        handle = self._p2p.cluster
        assert handle is not None

        async def collect() -> list[str]:
            return handle.topic_peers(self.topic)

        return await self._p2p.run_in_libp2p(collect)

    # ------------------------------------------------------------ metrics
    def stats(self) -> dict[str, Any]:
        """``Replica.stats()`` (pins, heads, height, deltas, batches, queued, pending), heads being synced
        now (``syncing``, the sync lag in heads), ``sync_lag_seconds`` (since the oldest head being synced
        was announced; 0 when in sync) and the shell's counters."""
        oldest = min(self._syncing.values(), default=None)
        lag = time.monotonic() - oldest if oldest is not None else 0.0
        return {**self.replica.stats(), "syncing": len(self._syncing), "sync_lag_seconds": lag, **self.counters}
