"""Delegated routing client: ask ``/routing/v1`` HTTP routers for providers and peers (asyncio + aiohttp).

Spec: https://specs.ipfs.tech/routing/http-routing-v1/ . Behaviour follows kubo/boxo where the
spec leaves room:

- every router of the list is asked in parallel; provider records are yielded as they arrive
  (an async iterator), identical records from several routers once; a peer lookup returns the
  first record with addresses and cancels the other requests (kubo's parallel router);
- ``Accept: application/x-ndjson,application/json``: an NDJSON answer is parsed line by line
  as it streams, a JSON one when complete; a 404 is an empty answer (IPIP-513: old servers);
- each router has its own timeout for the whole request (kubo: 15 s); a router that hangs,
  fails or answers garbage only loses its own results, the others still answer;
- ``filter-protocols`` (IPIP-484) is sent, and applied again locally in case the router
  ignores it (as kubo forces); the default asks for bitswap, HTTP gateways and "unknown";
- bounded input: see :class:`records.Limits` (1 MiB JSON, 8 MiB NDJSON, 64 KiB a line,
  1,000 records per answer): past a limit the answer is cut and what came before is kept.

Use (on the node's asyncio loop)::

    routing = DelegatedRouting(default_routers("auto"), timeout=15)
    async with contextlib.aclosing(routing.find_providers(cid, limit=20)) as found:
        async for rec in found:          # records.PeerRecord: peer_id, addrs, protocols
            ...
    rec = await routing.find_peer(peer_multihash)        # PeerRecord | None
    routing.stats()                                       # per-router counters, for metrics
    await routing.close()

``merge_records`` merges any async iterators of records (e.g. the DHT's and this client's, for
``Routing.Type auto``), deduplicated, up to a limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import aiohttp

from blockstore.cid import cid_to_str, parse_cid, to_v1

from .records import (
    DEFAULT_LIMITS,
    JSON_TYPE,
    NDJSON_TYPE,
    TRANSPORT_BITSWAP,
    TRANSPORT_HTTP,
    Limits,
    PeerRecord,
    RecordsParser,
    RoutingAnswerError,
    filter_record,
    peer_id_to_str,
)
from ..errors import NetworkUnavailable

__all__ = [
    "DEFAULT_FILTER_PROTOCOLS",
    "DEFAULT_TIMEOUT",
    "DelegatedRouter",
    "DelegatedRouting",
    "RouterError",
    "RouterStats",
    "default_routers",
    "merge_records",
]

log = logging.getLogger(__name__)

#: the network indexer: what kubo queries besides its own DHT in ``Routing.Type auto``
#: (boxo autoconf fallback: IPNI's delegated endpoint, providers only)
CID_CONTACT = "https://cid.contact"
#: the public someguy instance (Amino DHT + IPNI): what kubo adds when it has no DHT of its own
DELEGATED_IPFS_DEV = "https://delegated-ipfs.dev"
#: kubo: 15 s per HTTP router in its parallel router (5x the server's value)
DEFAULT_TIMEOUT = 15.0
#: kubo's filter-protocols: results without a protocol list, bitswap, and HTTP when retrieval is on
DEFAULT_FILTER_PROTOCOLS = ("unknown", TRANSPORT_BITSWAP, TRANSPORT_HTTP)
USER_AGENT = "pinion/0.1.0"
_ACCEPT = f"{NDJSON_TYPE},{JSON_TYPE}"
_CHUNK = 64 << 10


def default_routers(routing_type: str) -> list[str]:
    """The routers kubo uses by default for a ``Routing.Type``.

    ``auto`` (the DHT runs too): the network indexer at cid.contact, which the DHT does not
    cover. ``delegated`` (no DHT): cid.contact and delegated-ipfs.dev, which answers from the
    Amino DHT. Anything else: none.
    """
    if routing_type in ("auto", "autoclient"):
        return [CID_CONTACT]
    if routing_type == "delegated":
        return [CID_CONTACT, DELEGATED_IPFS_DEV]
    return []


class RouterError(NetworkUnavailable):
    """One router's request failed (status, content type, timeout, connection, unusable body)."""


@dataclass
class RouterStats:
    """Counters of one router (for metrics and logs)."""

    requests: int = 0
    records: int = 0
    skipped: int = 0
    truncated: int = 0
    timeouts: int = 0
    errors: int = 0
    last_error: str = ""


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"invalid delegated router URL {url!r}: expected http(s)://host[:port][/path]")
    return url.rstrip("/")


class DelegatedRouter:
    """One ``/routing/v1`` endpoint (a base URL such as ``https://cid.contact``)."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        limits: Limits = DEFAULT_LIMITS,
        filter_protocols: Sequence[str] = DEFAULT_FILTER_PROTOCOLS,
        filter_addrs: Sequence[str] = (),
    ) -> None:
        self.url = _check_url(base_url)
        self._session = session
        self.timeout = timeout
        self.limits = limits
        self.filter_protocols = sorted(p.lower() for p in filter_protocols)
        self.filter_addrs = sorted(a.lower() for a in filter_addrs)
        self.stats = RouterStats()

    def _query(self) -> str:
        parts = []
        if self.filter_addrs:
            parts.append("filter-addrs=" + quote(",".join(self.filter_addrs), safe=",!"))
        if self.filter_protocols:
            parts.append("filter-protocols=" + quote(",".join(self.filter_protocols), safe=","))
        return "?" + "&".join(parts) if parts else ""

    async def find_providers(self, cid: bytes) -> AsyncIterator[PeerRecord]:
        """Provider records of ``cid`` from this router (CIDv1 in the path, as the spec prefers)."""
        parse_cid(cid)
        async for rec in self._get(f"/routing/v1/providers/{cid_to_str(to_v1(cid))}", "Providers"):
            yield rec

    async def find_peers(self, peer_id: bytes) -> AsyncIterator[PeerRecord]:
        """Peer records of the peer with this ID multihash."""
        async for rec in self._get(f"/routing/v1/peers/{peer_id_to_str(peer_id)}", "Peers"):
            yield rec

    async def _get(self, path: str, key: str) -> AsyncIterator[PeerRecord]:
        """One request, parsed as it streams; RouterError when it fails (records already yielded stand)."""
        st = self.stats
        st.requests += 1
        url = self.url + path + self._query()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        headers = {"Accept": _ACCEPT, "User-Agent": USER_AGENT}
        try:
            async with self._session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as resp:
                if resp.status == 404:
                    return  # IPIP-513: old servers answer "nothing" with 404
                if resp.status != 200:
                    text = (await resp.content.read(200)).decode("utf-8", "replace").strip()
                    raise RouterError(f"{self.url}: HTTP {resp.status} {text[:200]!r}")
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype == NDJSON_TYPE:
                    parser = RecordsParser("ndjson", key, self.limits)
                elif ctype == JSON_TYPE:
                    parser = RecordsParser("json", key, self.limits)
                else:
                    raise RouterError(f"{self.url}: unexpected content type {ctype[:80]!r}")
                try:
                    while not parser.done:
                        chunk = await resp.content.read(_CHUNK)
                        if not chunk:
                            break
                        for rec in self._filtered(parser.feed(chunk)):
                            yield rec
                    for rec in self._filtered(parser.finish()):
                        yield rec
                except RoutingAnswerError as exc:
                    raise RouterError(f"{self.url}: {exc}") from None
                finally:
                    st.skipped += parser.skipped
                    if parser.truncated:
                        st.truncated += 1
                        log.info("delegated router %s: answer cut at a limit after %d records", self.url, parser.records)
        except RouterError as exc:
            st.errors += 1
            st.last_error = str(exc)
            raise
        except asyncio.TimeoutError:
            st.timeouts += 1
            st.last_error = f"{self.url}: no complete answer within {self.timeout:g} s"
            raise RouterError(st.last_error) from None
        except aiohttp.ClientError as exc:
            st.errors += 1
            st.last_error = f"{self.url}: {type(exc).__name__}: {exc}"
            raise RouterError(st.last_error) from None

    def _filtered(self, records: list[PeerRecord]) -> list[PeerRecord]:
        out = []
        for rec in records:
            kept = filter_record(rec, self.filter_addrs, self.filter_protocols)
            if kept is not None:
                out.append(kept)
        self.stats.records += len(out)
        return out


def _record_key(rec: PeerRecord) -> tuple[bytes, frozenset[str], frozenset[str]]:
    return rec.peer_id, frozenset(rec.addrs), frozenset(rec.protocols)


_DONE = object()


async def merge_records(sources: Sequence[AsyncIterator[PeerRecord]], *, limit: int | None = None) -> AsyncIterator[PeerRecord]:
    """Records of every source as they arrive, each distinct record once, at most ``limit``.

    Each source is consumed by its own task; a source that raises only ends itself (logged).
    When the caller stops iterating (or the limit is reached) the remaining sources are cancelled.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=256)

    async def pump(source: AsyncIterator[PeerRecord]) -> None:
        # a cancelled pump (the caller stopped) puts nothing more; the source's own
        # cleanup (closing its HTTP response) runs as the cancellation passes through it
        try:
            async for rec in source:
                await queue.put(rec)
        except Exception as exc:  # one failing source must not end the others
            log.debug("routing source failed: %s", exc)
        await queue.put(_DONE)

    tasks = [asyncio.ensure_future(pump(s)) for s in sources]
    running = len(tasks)
    seen: set[tuple[bytes, frozenset[str], frozenset[str]]] = set()
    sent = 0
    try:
        while running and (limit is None or sent < limit):
            item = await queue.get()
            if item is _DONE:
                running -= 1
                continue
            assert isinstance(item, PeerRecord)
            key = _record_key(item)
            if key in seen:
                continue
            seen.add(key)
            sent += 1
            yield item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class DelegatedRouting:
    """Several delegated routers asked in parallel (``Routing.DelegatedRouters``).

    ``session``: an aiohttp session to use (the caller closes it); by default one is made with
    a keep-alive pool and closed by :meth:`close`.
    """

    urls: Sequence[str]
    timeout: float = DEFAULT_TIMEOUT
    limits: Limits = DEFAULT_LIMITS
    filter_protocols: Sequence[str] = DEFAULT_FILTER_PROTOCOLS
    filter_addrs: Sequence[str] = ()
    session: aiohttp.ClientSession | None = None
    routers: list[DelegatedRouter] = field(init=False, default_factory=list)
    _own_session: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        for url in self.urls:
            _check_url(url)  # fail at construction, not at the first lookup

    def _ensure(self) -> list[DelegatedRouter]:
        if not self.routers and self.urls:
            if self.session is None:
                self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, limit_per_host=20))
                self._own_session = True
            self.routers = [
                DelegatedRouter(
                    url,
                    self.session,
                    timeout=self.timeout,
                    limits=self.limits,
                    filter_protocols=self.filter_protocols,
                    filter_addrs=self.filter_addrs,
                )
                for url in dict.fromkeys(u.rstrip("/") for u in self.urls)
            ]
        return self.routers

    def find_providers(self, cid: bytes, *, limit: int | None = None) -> AsyncIterator[PeerRecord]:
        """Provider records of ``cid`` from every router, as they arrive, deduplicated, at most ``limit``."""
        parse_cid(cid)  # a bad CID is the caller's error, raised here rather than once per router
        return merge_records([r.find_providers(cid) for r in self._ensure()], limit=limit)

    async def find_peer(self, peer_id: bytes) -> PeerRecord | None:
        """The first record with addresses for this peer from any router (the others are cancelled), or None."""
        async with contextlib.aclosing(merge_records([r.find_peers(peer_id) for r in self._ensure()])) as found:
            async for rec in found:
                if rec.peer_id == peer_id and rec.addrs:
                    return rec
        return None

    def stats(self) -> dict[str, RouterStats]:
        """Counters per router URL."""
        return {r.url: r.stats for r in self.routers}

    async def close(self) -> None:
        """Close the session this object made (a session passed in is left open)."""
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None
            self.routers = []
