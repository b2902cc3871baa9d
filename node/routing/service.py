"""``RoutingService``: the node's content routing on the swarm host (never the cluster host).

Owns, by ``Routing.Type`` (:func:`bitswap.routing.dht_config.routing_plan`):

- the Amino DHT (:class:`bitswap.routing.dht.DHT`) in the libp2p (trio) thread, in client or
  server mode (``auto``: server only when the swarm host announces a public address, as
  Pinion has no AutoNAT);
- the delegated routers (:class:`bitswap.routing.delegated.DelegatedRouting`), asked in parallel
  with the DHT (``auto``, ``autoclient``) or alone (``delegated``);
- the connection manager (:mod:`node.routing.connmgr`) and the bootstrap dials;
- the provide queue and the reprovider (:mod:`bitswap.routing.provide_queue`) when the DHT
  runs: new pins are queued at once (``Pins.on_pinned``), new blocks too with strategy ``all``;
  the cluster's CRDT blocks are never announced (``cluster/crdt/provide_exclusion.py``).

``none`` runs nothing of this: no DHT, no bootstrap, no routers, no announcements.
Every method is asyncio; the DHT calls cross the bridge (``P2PService.run_in_libp2p``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from libp2p.peer.id import ID

from bitswap.routing.delegated import DelegatedRouting
from bitswap.routing.dht import DHT, ProvideResult
from bitswap.routing.dht_config import DHTConfig, is_public_ip, resolve_mode, routing_plan
from bitswap.routing.provide_queue import ProvideConfig, ProvideQueue, ProvideStats, Reprovider, strategy_source
from bitswap.routing.records import PeerRecord
from blockstore.cid import RAW, codec_of, multihash_of
from blockstore.links import LinksError, iter_links
from blockstore.pins import Pins
from blockstore.store import BlockStore
from cluster.crdt.provide_exclusion import crdt_exclusion

from ..p2p.service import P2PService
from .bootstrap_addrs import dialable, resolve_bootstrap
from .connmgr import ConnectionManager
from .settings import RoutingSettings
from .errors import RoutingUnavailable

__all__ = ["RoutingService", "RoutingUnavailable", "record_of"]

log = logging.getLogger(__name__)

#: seconds between checks that the swarm host still has bootstrap connections
BOOTSTRAP_CHECK_INTERVAL = 30.0
#: fewer connections than this (or an empty DHT table) and the bootstrap list is dialled again
MIN_PEERS = 4
#: a key queued this recently is not queued again; at most this many are remembered
RECENT_TTL = 600.0
RECENT_MAX = 200_000
_DONE = object()


def record_of(info: Any) -> PeerRecord:
    """A libp2p ``PeerInfo`` (from the DHT) as a routing record (protocols unknown)."""
    return PeerRecord(info.peer_id.to_bytes(), tuple(str(a) for a in info.addrs))


class RoutingService:
    """Content routing of one node (see the module docstring)."""

    def __init__(
        self,
        settings: RoutingSettings,
        p2p: P2PService,
        store: BlockStore,
        pins: Pins,
        *,
        delegated: DelegatedRouting | None = None,
        provide_config: ProvideConfig | None = None,
    ) -> None:
        self.settings = settings
        self.plan = routing_plan(settings.routing_type)
        self._p2p = p2p
        self._store = store
        self._pins = pins
        if delegated is None and self.plan.delegated and settings.delegated_routers:
            delegated = DelegatedRouting(settings.delegated_routers)
        self.delegated = delegated if self.plan.delegated else None
        self.dht: DHT | None = None
        self.connmgr: ConnectionManager | None = None
        self.queue: ProvideQueue | None = None
        self.reprovider: Reprovider | None = None
        if self.plan.dht is not None:
            db = store.db
            self.queue = ProvideQueue(db, exclude=crdt_exclusion(db))
            cfg = provide_config or ProvideConfig(strategy=settings.strategy, interval=settings.interval)
            self.reprovider = Reprovider(self.queue, self._announce, strategy_source(cfg.strategy, store), cfg)
        self._protected: dict[str, int] = {}
        self._recent: dict[bytes, float] = {}  #: multihash -> when it was last queued
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = {"provider_searches": 0, "providers_found": 0, "searches_without_provider": 0, "provider_dials": 0, "provider_dial_failures": 0}

    @property
    def active(self) -> bool:
        """Whether any routing runs (False for ``Routing.Type none``)."""
        return self.plan.dht is not None or self.delegated is not None

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Start the DHT and the connection manager in the libp2p thread, the bootstrap and the reprovider."""
        self._loop = asyncio.get_running_loop()
        if not self.active:
            return
        host = self._p2p.swarm.host
        if host is None:
            raise RuntimeError("the swarm host is not running")
        if self.plan.dht is not None:
            mode = resolve_mode(self.plan.dht, self._publicly_reachable())
            self.dht = DHT(host, self._store.db, DHTConfig(mode=mode, allow_private_addrs=self.settings.allow_private_addrs))
            await self._p2p.start_libp2p_service(self.dht.run)
            log.info("routing: DHT running in %s mode", mode)
        s = self.settings
        self.connmgr = ConnectionManager(
            host, low=s.conn_low, high=s.conn_high, grace=s.conn_grace, protected=self._is_protected, value=self._value_of
        )
        await self._p2p.start_libp2p_service(self.connmgr.run)
        self._tasks.append(asyncio.create_task(self._keep_bootstrapped(), name="routing-bootstrap"))
        if self.reprovider is not None:
            self._pins.on_pinned(self._pinned_from_thread)
            self._tasks.append(asyncio.create_task(self.reprovider.run(), name="reprovider"))

    async def stop(self) -> None:
        """Stop the reprovider and the background tasks (the DHT stops with the p2p service)."""
        if self.reprovider is not None:
            await self.reprovider.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.delegated is not None:
            await self.delegated.close()

    def _publicly_reachable(self) -> bool:
        for addr in self._p2p.peer_info("swarm")["Addresses"]:
            parts = addr.strip("/").split("/")
            if len(parts) > 1 and parts[0] in ("ip4", "ip6") and is_public_ip(parts[1]):
                return True
        return False

    # ------------------------------------------------------------------ connections
    def _is_protected(self, peer: str) -> bool:
        """Peers the connection manager keeps: the swarm peer book (connected by hand) and providers in use."""
        if self._protected.get(peer):
            return True
        book = self._p2p.swarm.peer_book
        return book is not None and bool(book.addrs(peer))

    def _value_of(self, peer: str) -> int:
        if self.dht is None:
            return 0
        try:
            return 1 if ID.from_base58(peer).to_bytes() in self.dht.table else 0
        except Exception:
            return 0

    @contextlib.contextmanager
    def protecting(self, peers: Iterable[str]) -> Any:
        """Keep ``peers`` from the connection manager for the duration of the block (a fetch's providers)."""
        peers = list(peers)
        for p in peers:
            self._protected[p] = self._protected.get(p, 0) + 1
        try:
            yield
        finally:
            for p in peers:
                n = self._protected.get(p, 0) - 1
                if n > 0:
                    self._protected[p] = n
                else:
                    self._protected.pop(p, None)

    async def connect_record(self, rec: PeerRecord, timeout: float = 5.0) -> bool:
        """Dial a provider at one of its TCP addresses (not remembered in the peer book); True once connected."""
        me = self._p2p.swarm.peer_id
        peer = rec.id_str
        if peer == me:
            return False
        self.counters["provider_dials"] += 1
        for addr in rec.addrs:
            full = addr if "/p2p/" in addr else f"{addr}/p2p/{peer}"
            if not dialable(full) or not self._may_dial(full):
                continue
            try:
                await self._p2p.run_in_libp2p(functools.partial(self._p2p.swarm.connect, full, timeout, remember=False))
                return True
            except Exception as exc:
                log.debug("routing: dialling provider %s at %s: %s", peer, addr, exc)
        self.counters["provider_dial_failures"] += 1
        return False

    def _may_dial(self, addr: str) -> bool:
        """Routing answers are untrusted: without ``Routing.AllowPrivateAddrs`` only public IPs (and DNS names)
        are dialled, so a router cannot make the node probe its own network."""
        if self.settings.allow_private_addrs:
            return True
        parts = addr.strip("/").split("/")
        return parts[0] not in ("ip4", "ip6") or is_public_ip(parts[1])

    async def _keep_bootstrapped(self) -> None:
        """Dial the bootstrap list at start, and again whenever connections run low."""
        while True:
            try:
                await self.bootstrap()
            except Exception:
                log.exception("routing: bootstrap failed")
            await asyncio.sleep(BOOTSTRAP_CHECK_INTERVAL)
            while not await self._needs_bootstrap():
                await asyncio.sleep(BOOTSTRAP_CHECK_INTERVAL)

    async def _needs_bootstrap(self) -> bool:
        if not self.settings.bootstrap:
            return False
        connected = len(await self._p2p.peers("swarm"))
        return connected < MIN_PEERS or (self.dht is not None and len(self.dht.table) == 0)

    async def bootstrap(self) -> int:
        """Dial the bootstrap peers (``/dnsaddr`` resolved); with the DHT, fill the routing table. Returns its size (or peers dialled)."""
        if not self.settings.bootstrap:
            return 0
        addrs = await resolve_bootstrap(self.settings.bootstrap)
        if not addrs:
            log.warning("routing: no dialable bootstrap address in Routing.Bootstrap")
            return 0
        if self.dht is not None:
            size = await self._p2p.run_in_libp2p(self.dht.bootstrap, addrs)
            log.info("routing: bootstrapped from %d addresses, %d peers in the DHT table", len(addrs), size)
            return size
        ok = 0
        for addr in addrs:
            try:
                await self._p2p.run_in_libp2p(functools.partial(self._p2p.swarm.connect, addr, 10.0, remember=False))
                ok += 1
            except Exception as exc:
                log.info("routing: bootstrap peer %s: %s", addr, exc)
        return ok

    # ------------------------------------------------------------------ lookups
    async def _dht_providers(self, cid: bytes, limit: int) -> AsyncIterator[PeerRecord]:
        """The DHT's providers of ``cid`` as they are found (a trio lookup pumped into an asyncio queue)."""
        dht = self.dht
        assert dht is not None
        queue: asyncio.Queue[Any] = asyncio.Queue()
        bridge = self._p2p.bridge

        async def pump() -> None:
            try:
                async with dht.find_providers_stream(cid, limit) as found:
                    async for info in found:
                        bridge.call_soon_asyncio(queue.put_nowait, record_of(info))
            finally:
                bridge.call_soon_asyncio(queue.put_nowait, _DONE)

        task = asyncio.ensure_future(self._p2p.run_in_libp2p(pump))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                yield item
            await asyncio.gather(task, return_exceptions=True)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def find_providers(self, cid: bytes, limit: int = 20) -> AsyncIterator[PeerRecord]:
        """Providers of ``cid`` from the DHT and the delegated routers in parallel, each once, as found."""
        from bitswap.routing.delegated import merge_records

        sources: list[AsyncIterator[PeerRecord]] = []
        if self.dht is not None:
            sources.append(self._dht_providers(cid, limit))
        if self.delegated is not None:
            sources.append(self.delegated.find_providers(cid, limit=limit))
        if not sources:
            raise RoutingUnavailable("content routing is off (Routing.Type none)")
        return merge_records(sources, limit=limit)

    async def find_peer(self, peer_id: bytes) -> PeerRecord | None:
        """Addresses of a peer: the DHT and the delegated routers in parallel, the first answer with addresses wins."""
        if not self.active:
            raise RoutingUnavailable("content routing is off (Routing.Type none)")
        tasks: list[asyncio.Task[PeerRecord | None]] = []
        if self.dht is not None:
            dht = self.dht

            async def via_dht() -> PeerRecord | None:
                info = await self._p2p.run_in_libp2p(dht.find_peer, ID(peer_id))
                return record_of(info) if info is not None and info.addrs else None

            tasks.append(asyncio.ensure_future(via_dht()))
        if self.delegated is not None:
            tasks.append(asyncio.ensure_future(self.delegated.find_peer(peer_id)))
        try:
            for fut in asyncio.as_completed(tasks):
                try:
                    rec = await fut
                except Exception as exc:
                    log.debug("routing: find_peer: %s", exc)
                    continue
                if rec is not None:
                    return rec
            return None
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ providing
    async def _announce(self, batch: list[bytes]) -> None:
        """The reprovider's ``announce``: one ``provide_many`` over the DHT; raises when no server took them."""
        result = await self.provide_now(batch)
        if batch and result.keys == 0:
            raise RuntimeError("no DHT server took the provider records (is the routing table empty?)")

    async def provide_now(self, keys: list[bytes]) -> ProvideResult:
        """Announce CIDs or multihashes now (``pinion routing provide``); RoutingUnavailable without a DHT."""
        if self.dht is None:
            raise RoutingUnavailable(f"providing needs the DHT (Routing.Type is {self.settings.routing_type})")
        return await self._p2p.run_in_libp2p(self.dht.provide_many, list(keys))

    def enqueue(self, cids: Iterable[bytes]) -> int:
        """Queue CIDs for announcement (on the event loop); 0 when nothing provides.

        A key queued in the last :data:`RECENT_TTL` seconds is not queued again (a new pin's
        blocks arrive both as new blocks and as the pin's DAG)."""
        return self._enqueue_keys(multihash_of(c) for c in cids)

    def _enqueue_keys(self, multihashes: Iterable[bytes]) -> int:
        if self.reprovider is None:
            return 0
        now = time.monotonic()
        recent = self._recent
        fresh = []
        for mh in multihashes:
            at = recent.get(mh)
            if at is not None and now - at < RECENT_TTL:
                continue
            recent[mh] = now
            fresh.append(mh)
        if len(recent) > RECENT_MAX:  # drop the oldest half (insertion order)
            for mh in list(itertools.islice(recent, len(recent) // 2)):
                del recent[mh]
        return self.reprovider.enqueue(fresh) if fresh else 0

    def new_blocks(self, cids: Iterable[bytes]) -> None:
        """New blocks were stored (adds, imports, block put): with strategy ``all`` they are announced at once."""
        if self.reprovider is None or self.settings.strategy != "all" or self._loop is None:
            return
        cids = list(cids)
        self._loop.call_soon_threadsafe(self.enqueue, cids)

    def _pinned_from_thread(self, cids: list[bytes]) -> None:
        """``Pins.on_pinned`` listener (any thread): queue the new pins (their DAG's blocks unless ``roots``)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._schedule_pinned, list(cids))

    def _schedule_pinned(self, cids: list[bytes]) -> None:
        if self.settings.strategy == "roots":
            self.enqueue(cids)
            return
        task = asyncio.ensure_future(self._enqueue_dags(cids))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _enqueue_dags(self, roots: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        keys = await loop.run_in_executor(None, self._dag_blocks, roots)
        self._enqueue_keys(keys)

    def _dag_blocks(self, roots: list[bytes]) -> list[bytes]:
        """Multihashes of every stored block of the DAGs under ``roots`` (blocking)."""
        seen: set[bytes] = set()
        out: list[bytes] = []
        stack = list(roots)
        while stack:
            cid = stack.pop()
            mh = multihash_of(cid)
            if mh in seen:
                continue
            seen.add(mh)
            data = self._store.get(cid)
            if data is None:
                continue
            out.append(mh)
            if codec_of(cid) == RAW:
                continue
            try:
                stack.extend(iter_links(cid, data))
            except LinksError:
                continue
        return out

    # ------------------------------------------------------------------ figures
    def provide_stats(self) -> ProvideStats | None:
        """The provide queue's figures (None when nothing provides)."""
        return self.reprovider.stats() if self.reprovider is not None else None

    def stats(self) -> dict[str, Any]:
        """Counters for metrics and ``pinion top``: mode, table size, DHT counters, searches, trims."""
        out: dict[str, Any] = {"type": self.settings.routing_type, **self.counters}
        if self.dht is not None:
            d = self.dht.stats()
            out["dht_mode"] = self.dht.mode
            out["routing_table_size"] = d.get("routing_table_size", 0)
            out["provider_records"] = d.get("provider_records", 0)
            out["dht_requests_sent"] = d.get("requests_sent", 0)
            out["dht_request_failures"] = d.get("request_failures", 0)
            out["dht_lookups"] = d.get("lookups", 0)
        if self.connmgr is not None:
            out["connections_trimmed"] = self.connmgr.trimmed_total
        out["time"] = time.time()
        return out
