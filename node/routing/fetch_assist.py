"""``FetchAssist``: what a fetch asks of content routing when connected peers do not serve it.

Every fetch of the node (gateway read, ``cat``, ``pin add``, the cluster pin tracker) goes
through :class:`node.content.NetworkContent`, which wraps its bitswap wait in
``assist.searching(cid)``. As kubo's bitswap sessions do (``provSearchDelay``), the search
starts only when the wait has lasted ``RoutingSettings.search_delay`` (1 s): content held by
connected peers (the pin tracker's origins, uploader and cluster peers, connected first) never
costs a lookup. Then:

- providers of the CID come from :meth:`RoutingService.find_providers` (DHT and delegated
  routers in parallel), each as soon as it is found;
- up to ``max_dials`` of them are dialled on the swarm host (not remembered in the peer book;
  kept from the connection manager while the fetch runs); bitswap's want list goes to every
  new connection, so the waiting fetch is served by them;
- providers that advertise ``transport-ipfs-gateway-http`` are fetched from over HTTP in
  parallel (:class:`bitswap.routing.http_retrieval.HttpFetcher`: every block verified against
  its CID, a lying provider scored down and dropped); blocks it stores are handed to bitswap
  (``on_stored``) so the waiting fetch finds them.

When the lookup ends without any provider, :meth:`Search.explain` adds "no provider was found"
to the fetch's error, which is what the pin tracker's status shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from bitswap.routing.http_retrieval import HttpFetcher, UrlPolicy, gateway_urls
from bitswap.routing.records import TRANSPORT_BITSWAP, PeerRecord
from blockstore.cid import cid_to_str
from blockstore.errors import BlockNotFound
from blockstore.dagwalk import walk_dag
from blockstore.store import BlockStore

from .service import RoutingService, RoutingUnavailable

__all__ = ["FetchAssist", "Search", "NO_PROVIDER"]

log = logging.getLogger(__name__)

NO_PROVIDER = "no provider was found by content routing"
#: providers asked of the routers per search
PROVIDER_LIMIT = 20
#: provider searches running at once (all fetches of the node)
MAX_SEARCHES = 32


@dataclass
class Search:
    """What one fetch's provider search did."""

    cid: bytes
    started: bool = False  #: the lookup ran (the fetch outlasted the search delay)
    finished: bool = False  #: the lookup ended
    providers: int = 0
    dialled: int = 0
    http_providers: int = 0
    peers: list[str] = field(default_factory=list)

    def explain(self, error: str) -> str:
        """``error`` of the fetch, with why routing did not help when it found nobody."""
        if self.started and self.finished and self.providers == 0:
            return f"{error}; {NO_PROVIDER} for {cid_to_str(self.cid)}"
        return error


class FetchAssist:
    """Provider search for fetches (see the module docstring)."""

    def __init__(
        self,
        routing: RoutingService,
        store: BlockStore,
        *,
        on_stored: Callable[[list[bytes]], None],
        delay: float = 1.0,
        max_dials: int = 5,
        max_searches: int = MAX_SEARCHES,
        http_policy: UrlPolicy = UrlPolicy(),
    ) -> None:
        self.routing = routing
        self.store = store
        self.on_stored = on_stored
        self.delay = delay
        self.max_dials = max_dials
        self.http_policy = http_policy
        #: lookups at once, all fetches together: a flood of gateway requests for unknown CIDs
        #: waits here instead of starting a DHT walk each
        self._searches = asyncio.Semaphore(max_searches)

    def new_blocks(self, cids: list[bytes]) -> None:
        """New blocks were stored (any thread): announced at once with ``Reprovider.Strategy all``."""
        self.routing.new_blocks(cids)

    @contextlib.asynccontextmanager
    async def searching(self, cid: bytes, *, dag: bool = False, max_depth: int | None = None) -> AsyncIterator[Search]:
        """Run a provider search beside the fetch inside the block; it stops when the block ends."""
        search = Search(cid)
        if not self.routing.active:
            yield search
            return
        task = asyncio.ensure_future(self._run(search, dag, max_depth))
        try:
            yield search
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, search: Search, dag: bool, max_depth: int | None) -> None:
        await asyncio.sleep(self.delay)
        with contextlib.ExitStack() as protected:
            async with self._searches:
                await self._search(search, dag, max_depth, protected)
            # the search slot is free again; the providers stay protected from the connection
            # manager until the fetch ends (this task is cancelled then)
            await asyncio.Event().wait()

    async def _search(self, search: Search, dag: bool, max_depth: int | None, protected: contextlib.ExitStack) -> None:
        search.started = True
        self.routing.counters["provider_searches"] += 1
        tasks: list[asyncio.Task[object]] = []
        http: HttpFetcher | None = None
        dials = 0
        try:
            try:
                async with contextlib.aclosing(self.routing.find_providers(search.cid, PROVIDER_LIMIT)) as found:
                    async for rec in found:
                        search.providers += 1
                        self.routing.counters["providers_found"] += 1
                        if gateway_urls(rec, self.http_policy):
                            first = http is None
                            if http is None:
                                http = HttpFetcher(self.store, policy=self.http_policy)
                            search.http_providers += http.add_record(rec)
                            if first and http.providers:  # the first HTTP provider starts the HTTP fetch
                                tasks.append(asyncio.ensure_future(self._fetch_http(http, search.cid, dag, max_depth)))
                        if _speaks_bitswap(rec) and dials < self.max_dials:
                            dials += 1
                            protected.enter_context(self.routing.protecting([rec.id_str]))
                            tasks.append(asyncio.ensure_future(self._dial(search, rec)))
            except RoutingUnavailable:
                return
            except Exception as exc:  # a failed lookup leaves the fetch to bitswap's own peers
                log.info("routing: provider search for %s failed: %s", cid_to_str(search.cid), exc)
            search.finished = True
            if search.providers == 0:
                self.routing.counters["searches_without_provider"] += 1
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if http is not None:
                await http.close()

    async def _dial(self, search: Search, rec: PeerRecord) -> bool:
        ok = await self.routing.connect_record(rec)
        if ok:
            search.dialled += 1
            search.peers.append(rec.id_str)
        return ok

    async def _fetch_http(self, http: HttpFetcher, cid: bytes, dag: bool, max_depth: int | None) -> None:
        """Fetch over HTTP (verified), then hand what is now stored to bitswap's waiters."""
        try:
            if dag:
                await http.fetch_dag(cid, max_depth=max_depth)
            else:
                await http.get_block(cid)
        except Exception as exc:  # bitswap may still complete it
            log.info("routing: HTTP retrieval of %s: %s", cid_to_str(cid), exc)
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(None, self._present, cid, dag, max_depth)
        if stored:
            self.on_stored(stored)

    def _present(self, root: bytes, dag: bool, max_depth: int | None) -> list[bytes]:
        """CIDs of the DAG's blocks now in the store (blocking)."""
        if not dag:
            return [root] if self.store.has(root) else []
        out: list[bytes] = []
        try:
            for cid, _data in walk_dag(root, self.store.get, max_depth=max_depth):
                out.append(cid)
        except BlockNotFound:
            pass
        return out


def _speaks_bitswap(rec: PeerRecord) -> bool:
    """A record worth dialling for bitswap: it says bitswap, or says nothing (the DHT's records)."""
    return bool(rec.addrs) and (not rec.protocols or TRANSPORT_BITSWAP in rec.protocols)
