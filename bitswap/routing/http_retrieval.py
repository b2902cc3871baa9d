"""HTTP retrieval: blocks and whole DAGs from trustless gateways, verified before they are stored (asyncio).

Spec: https://specs.ipfs.tech/http-gateways/trustless-gateway/ . Providers are gateway base
URLs, usually taken from routing records that list ``transport-ipfs-gateway-http``
(:func:`gateway_urls`). Requests:

- a block: ``GET /ipfs/{cid}?format=raw`` with ``Accept: application/vnd.ipld.raw``; many in
  flight over a keep-alive connection pool (``max_in_flight`` in all, ``per_provider`` each);
- a DAG: ``GET /ipfs/{root}?format=car&dag-scope=all`` (``entity`` for one file or directory) with
  ``Accept: application/vnd.ipld.car;version=1;order=dfs;dups=y``, streamed through the
  project's sans-I/O :class:`blockstore.car.CarParser` (every block hashed against its CID) and
  stored in batches as it arrives: memory is one CAR section plus one store batch.

Every block is verified before it is stored. A provider that sends a block that does not match
its CID, a block that nothing received so far links to (or a CAR whose root is not the one asked
for), a malformed CAR or an oversized block is cut off and scored down
(:mod:`provider_scores`: banned for a while); the fetch goes on with the others. A DAG fetch
first streams one CAR from the best provider, then walks the DAG in the store and fetches what
is still missing block by block from every usable provider (the same walk resumes an
interrupted fetch). Which gateways may be asked: :class:`UrlPolicy` (by default only ``https``
and only public addresses: a routing answer must not make the node call into its own network).

Use (on the node's asyncio loop, beside bitswap in the trio thread)::

    fetcher = HttpFetcher(store)                      # blockstore.store.BlockStore
    for rec in provider_records:                      # records.PeerRecord from routing
        fetcher.add_record(rec)
    data = await fetcher.get_block(cid)               # bytes, stored; BlockUnavailable if no one has it
    async for cid, data in fetcher.get_blocks(cids):  # each as it arrives (stored); missing ones left out
        ...
    result = await fetcher.fetch_dag(root, progress=lambda blocks, nbytes: ...)   # HttpFetchResult
    result = await fetcher.fetch_entity(root)         # a file, or a directory's own blocks
    await fetcher.close()

For a DAG fetch the node can race ``fetch_dag`` against bitswap's ``fetch_dag`` on the same
store: both skip blocks already present, so whichever is faster fills the store and the other
finds the blocks there.

Why one module of over 500 lines: one fetcher whose block and DAG paths share the verification,
the connection pool and the provider scoring; the scores (``provider_scores.py``) and the URL
policy are separate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

import aiohttp
import multiaddr

from blockstore.car import CarBlock, CarError, CarHeader, CarParser
from blockstore.cid import RAW, CidError, HashMismatch, cid_to_str, codec_of, hash_digest, multihash_of, parse_cid, verify
from blockstore.links import LinksError, iter_links
from blockstore.store import BlockStore

from .provider_scores import ProviderScores
from .records import TRANSPORT_HTTP, PeerRecord
from ..errors import NetworkUnavailable

__all__ = [
    "BlockUnavailable",
    "HttpFetchResult",
    "HttpFetcher",
    "HttpRetrievalError",
    "UrlPolicy",
    "gateway_urls",
]

log = logging.getLogger(__name__)

RAW_TYPE = "application/vnd.ipld.raw"
CAR_ACCEPT = "application/vnd.ipld.car;version=1;order=dfs;dups=y"
#: blocks larger than this are refused (the store's own limit; bitswap's too)
MAX_BLOCK_SIZE = 2 * 1024 * 1024
_CHUNK = 256 * 1024
#: bytes of verified blocks gathered before one store write batch
_STORE_BATCH = 4 * 1024 * 1024
Progress = Callable[[int, int], None]


class HttpRetrievalError(NetworkUnavailable):
    """A DAG or block could not be fetched over HTTP."""


class BlockUnavailable(HttpRetrievalError):
    """No usable provider delivered the block."""

    def __init__(self, cid: bytes, why: str = "") -> None:
        super().__init__(f"block {cid_to_str(cid)} not available over HTTP" + (f": {why}" if why else ""))
        self.cid = cid


class _BadData(Exception):
    """The provider sent something that failed verification (internal: scored as bad data)."""


# --------------------------------------------------------------------------- provider addresses
@dataclass(frozen=True)
class UrlPolicy:
    """Which gateway URLs may be used: ``https`` only and public hosts only, unless allowed."""

    allow_http: bool = False
    allow_private: bool = False

    def allows(self, scheme: str, host: str) -> bool:
        """Whether a gateway at ``scheme://host`` may be asked."""
        if scheme == "http" and not self.allow_http:
            return False
        if self.allow_private:
            return True
        if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
            return False
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return True  # a DNS name: resolved by the connector
        return ip.is_global


def _url_of_addr(addr: str, policy: UrlPolicy) -> str | None:
    """The base URL of an HTTP(S) multiaddr (``/ip4/../tcp/../tls/http``, ``/dns/../tcp/443/https``), or None."""
    try:
        items = [(p.name, v) for p, v in multiaddr.Multiaddr(addr).items()]
    except Exception:
        return None
    host = port = None
    scheme = None
    tls = False
    path = ""
    for name, value in items:
        if name in ("ip4", "dns", "dns4", "dns6") and host is None:
            host = value
        elif name == "ip6" and host is None:
            host = f"[{value}]"
        elif name == "tcp" and port is None:
            port = value
        elif name == "tls":
            tls = True
        elif name == "sni":
            continue
        elif name == "http":
            scheme = "https" if tls else "http"
        elif name == "https":
            scheme = "https"
        elif name == "http-path":
            path = "/" + unquote(value or "").strip("/")
        elif name == "p2p":
            continue
        else:
            return None  # udp, quic, websockets...: not an HTTP gateway address
    if host is None or scheme is None:
        return None
    if port is None:
        port = "443" if scheme == "https" else "80"
    if not policy.allows(scheme, host):
        return None
    default = (scheme == "https" and port == "443") or (scheme == "http" and port == "80")
    return f"{scheme}://{host}{'' if default else ':' + port}{path if path != '/' else ''}"


def gateway_urls(rec: PeerRecord, policy: UrlPolicy = UrlPolicy()) -> list[str]:
    """The trustless-gateway base URLs of a routing record (none unless it lists ``transport-ipfs-gateway-http``)."""
    if TRANSPORT_HTTP not in rec.protocols:
        return []
    out: list[str] = []
    for addr in rec.addrs:
        url = _url_of_addr(addr, policy)
        if url is not None and url not in out:
            out.append(url)
    return out


# --------------------------------------------------------------------------- the fetcher
@dataclass
class HttpFetchResult:
    """What a DAG fetch did (the same counters as bitswap's ``FetchResult``, plus where blocks came from)."""

    blocks: int = 0  #: distinct blocks of the DAG seen (walked, or linked in the CAR)
    fetched: int = 0  #: blocks fetched over HTTP and stored
    fetched_bytes: int = 0
    present: int = 0  #: blocks that were already in the store
    car_blocks: int = 0  #: of ``fetched``, those that came in a CAR stream
    providers: dict[str, int] = field(default_factory=dict)  #: blocks per provider


class HttpFetcher:
    """Fetches blocks and DAGs from trustless gateways into a block store (see the module docstring)."""

    def __init__(
        self,
        store: BlockStore,
        *,
        session: aiohttp.ClientSession | None = None,
        scores: ProviderScores | None = None,
        policy: UrlPolicy = UrlPolicy(),
        max_in_flight: int = 32,
        per_provider: int = 16,
        block_timeout: float = 30.0,
        read_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1 or per_provider < 1:
            raise ValueError("max_in_flight and per_provider must be at least 1")
        self.store = store
        self.scores = scores or ProviderScores()
        self.policy = policy
        self.max_in_flight = max_in_flight
        self.per_provider = per_provider
        self.block_timeout = block_timeout
        self.read_timeout = read_timeout
        self._clock = clock
        self._session = session
        self._own_session = session is None
        self._providers: dict[str, bytes | None] = {}
        self._in_flight: dict[str, int] = {}
        self._slots = asyncio.Semaphore(max_in_flight)

    # ------------------------------------------------------------------ providers
    def add_provider(self, base_url: str, peer_id: bytes | None = None) -> bool:
        """Use the gateway at ``base_url`` (``http(s)://host[:port][/prefix]``); False if the policy refuses it."""
        base = base_url.rstrip("/")
        scheme, sep, rest = base.partition("://")
        host = rest.split("/")[0].rsplit(":", 1)[0] if not rest.startswith("[") else rest.split("]")[0] + "]"
        if not sep or scheme not in ("http", "https") or not host or not self.policy.allows(scheme, host):
            return False
        self._providers.setdefault(base, peer_id)
        return True

    def add_record(self, rec: PeerRecord) -> int:
        """Use every gateway URL of a routing record; return how many were added."""
        return sum(self.add_provider(url, rec.peer_id) for url in gateway_urls(rec, self.policy))

    @property
    def providers(self) -> list[str]:
        """The known provider base URLs."""
        return list(self._providers)

    def _session_(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_in_flight + 8, limit_per_host=self.per_provider + 2)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session this fetcher made."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _pick(self, tried: set[str]) -> str | None:
        """The best usable provider not yet tried, preferring the least busy among the best."""
        now = self._clock()
        ranked = [p for p in self.scores.ranked(self._providers, now) if p not in tried]
        if not ranked:
            return None
        free = [p for p in ranked if self._in_flight.get(p, 0) < self.per_provider]
        if not free:
            return ranked[0]
        best = self.scores.state(free[0]).score
        close = [p for p in free if self.scores.state(p).score >= best - 10]
        return min(close, key=lambda p: self._in_flight.get(p, 0))

    # ------------------------------------------------------------------ blocks
    async def _raw(self, provider: str, cid: bytes) -> bytes | None:
        """One raw block request; the verified bytes, None for "not found"; raises _BadData or aiohttp errors."""
        url = f"{provider}/ipfs/{cid_to_str(cid)}?format=raw"
        timeout = aiohttp.ClientTimeout(total=self.block_timeout)
        async with self._session_().get(url, headers={"Accept": RAW_TYPE}, timeout=timeout, allow_redirects=False) as resp:
            if resp.status in (404, 410):
                return None
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=resp.reason or "")
            length = resp.content_length
            if length is not None and length > MAX_BLOCK_SIZE:
                raise _BadData(f"announces a block of {length} bytes (limit {MAX_BLOCK_SIZE})")
            if length is not None:
                try:
                    data = await resp.content.readexactly(length)  # one buffer, no copies
                except asyncio.IncompleteReadError:
                    raise aiohttp.ClientPayloadError(f"the answer ended before its {length} bytes") from None
            else:
                buf = bytearray()
                while True:
                    chunk = await resp.content.read(_CHUNK)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > MAX_BLOCK_SIZE:
                        raise _BadData(f"sends a block over {MAX_BLOCK_SIZE} bytes")
                data = bytes(buf)
        try:
            verify(cid, data)
        except (HashMismatch, CidError):
            raise _BadData(f"sent bytes that do not match {cid_to_str(cid)}") from None
        return data

    async def _fetch_one(self, cid: bytes) -> tuple[bytes, str]:
        """Fetch, verify and store one block, trying providers best first; (data, provider) or BlockUnavailable."""
        try:
            hash_digest(parse_cid(cid).mh_code, b"")
        except CidError as exc:  # we could not verify it: no provider is to blame
            raise BlockUnavailable(cid, str(exc)) from None
        tried: set[str] = set()
        why = "no usable HTTP provider"
        async with self._slots:
            while True:
                provider = self._pick(tried)
                if provider is None:
                    raise BlockUnavailable(cid, why)
                tried.add(provider)
                self._in_flight[provider] = self._in_flight.get(provider, 0) + 1
                start = self._clock()
                try:
                    data = await self._raw(provider, cid)
                except _BadData as exc:
                    why = f"{provider} {exc}"
                    log.warning("HTTP provider %s %s: scored down", provider, exc)
                    self.scores.bad_data(provider, self._clock(), str(exc))
                    continue
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    why = f"{provider}: {type(exc).__name__}: {exc}"
                    self.scores.failure(provider, self._clock(), why)
                    continue
                finally:
                    self._in_flight[provider] -= 1
                if data is None:
                    why = f"{provider} does not have it"
                    self.scores.not_found(provider, self._clock())
                    continue
                self.scores.success(provider, len(data), self._clock() - start, self._clock())
                self.store.put(cid, data, verify=False)  # verified in _raw
                return data, provider

    async def get_block(self, cid: bytes) -> bytes:
        """The block (from the store if present, else over HTTP, then stored); raises BlockUnavailable."""
        data = self.store.get(cid)
        if data is not None:
            return data
        return (await self._fetch_one(cid))[0]

    async def get_blocks(self, cids: Iterable[bytes]) -> AsyncIterator[tuple[bytes, bytes]]:
        """Each requested block as soon as it is available (stored first); blocks no provider has are left out.

        ``cids`` is read lazily: at most ``2 * max_in_flight`` lookups are pending at a time.
        """

        async def one(cid: bytes) -> tuple[bytes, bytes] | None:
            data = self.store.get(cid)
            if data is not None:
                return cid, data
            try:
                return cid, (await self._fetch_one(cid))[0]
            except BlockUnavailable:
                return None

        seen: set[bytes] = set()
        it = iter(cids)
        pending: set[asyncio.Future[tuple[bytes, bytes] | None]] = set()
        try:
            while True:
                while len(pending) < 2 * self.max_in_flight:
                    cid = next(it, None)
                    if cid is None:
                        break
                    if cid not in seen:
                        seen.add(cid)
                        pending.add(asyncio.ensure_future(one(cid)))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    item = task.result()
                    if item is not None:
                        yield item
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # ------------------------------------------------------------------ DAGs
    async def fetch_dag(
        self,
        root: bytes,
        *,
        max_depth: int | None = None,
        use_car: bool = True,
        progress: Progress | None = None,
    ) -> HttpFetchResult:
        """Make the whole DAG under ``root`` present in the store; raises HttpRetrievalError naming a missing block.

        With ``use_car`` (and no depth limit) one CAR is streamed from the best provider first
        (the next one if a provider fails before sending anything); then a walk of the DAG in the
        store fetches whatever is still missing, block by block, from every usable provider.
        """
        parse_cid(root)
        result = HttpFetchResult()
        complete = False
        if use_car and max_depth is None:
            tried: set[str] = set()
            while not complete:
                provider = self._pick(tried)
                if provider is None:
                    break
                tried.add(provider)
                before = result.car_blocks
                complete = await self._car(provider, root, result, progress)
                if result.car_blocks > before:
                    break  # partial: the walk below completes it from every provider
        if complete:
            return result
        return await self._walk(root, max_depth, result, progress)

    async def fetch_entity(self, root: bytes, *, progress: Progress | None = None) -> HttpFetchResult:
        """Fetch the entity at ``root`` as one CAR with ``dag-scope=entity``: a whole UnixFS file, or a
        directory's own blocks (its HAMT shards included, not its children); any other DAG: the root block.

        What the gateway needs to answer a path request. Providers are tried best first until one
        delivers a complete, valid CAR; raises HttpRetrievalError when none does.
        """
        parse_cid(root)
        result = HttpFetchResult()
        tried: set[str] = set()
        while True:
            provider = self._pick(tried)
            if provider is None:
                raise HttpRetrievalError(f"entity {cid_to_str(root)}: no HTTP provider delivered it")
            tried.add(provider)
            if await self._car(provider, root, result, progress, scope="entity"):
                return result

    async def _car(
        self, provider: str, root: bytes, result: HttpFetchResult, progress: Progress | None, scope: str = "all"
    ) -> bool:
        """Stream one CAR of ``scope`` from ``provider`` into the store; True if it delivered all of it.

        For ``all``: the CAR ended cleanly and nothing linked is missing. For ``entity``: the CAR
        ended cleanly (an entity leaves links out by design).

        Parsing and hashing run on the loop; each store batch is written in a thread while the
        next one is parsed (LevelDB and hashlib release the GIL), one write in flight at a time.
        """
        url = f"{provider}/ipfs/{cid_to_str(root)}?format=car&dag-scope={scope}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.block_timeout, sock_read=self.read_timeout)
        stream = _CarStream(self.store, root)
        writing: asyncio.Future[list[int]] | None = None

        async def write(batch: list[tuple[bytes, bytes]] | None) -> None:
            nonlocal writing
            if writing is not None:
                self._count(result, provider, await writing, car=True, progress=progress)
                stream.written()
                writing = None
            if batch:
                writing = asyncio.ensure_future(asyncio.to_thread(stream.write, batch))

        start = self._clock()
        try:
            async with self._session_().get(url, headers={"Accept": CAR_ACCEPT}, timeout=timeout, allow_redirects=False) as resp:
                if resp.status in (404, 410):
                    self.scores.not_found(provider, self._clock())
                    return False
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=resp.reason or "")
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype != "application/vnd.ipld.car":
                    raise _BadData(f"answered a CAR request with {ctype[:60]!r}")
                last_block, blocks = self._clock(), 0
                while not stream.parser.done:
                    chunk = await resp.content.read(_CHUNK)
                    if not chunk:
                        break
                    stream.feed(chunk)
                    if stream.blocks != blocks:
                        last_block, blocks = self._clock(), stream.blocks
                    elif self._clock() - last_block > self.read_timeout:
                        # bytes trickle in but no block completes: a slow-loris answer
                        raise asyncio.TimeoutError(f"no complete block within {self.read_timeout:g} s")
                    if stream.batch_bytes >= _STORE_BATCH:
                        await write(stream.take_batch())
                stream.finish()
                await write(stream.take_batch())
                await write(None)
        except (_BadData, CarError) as exc:
            await write(stream.take_batch())  # what verified before the lie is kept
            await write(None)
            log.warning("HTTP provider %s sent a bad CAR for %s: %s: scored down", provider, cid_to_str(root), exc)
            self.scores.bad_data(provider, self._clock(), str(exc))
            return False
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            await write(stream.take_batch())
            await write(None)
            self.scores.failure(provider, self._clock(), f"{type(exc).__name__}: {exc}")
            return False
        except BaseException:
            if writing is not None:
                await asyncio.gather(writing, return_exceptions=True)
            raise
        self.scores.success(provider, stream.bytes, self._clock() - start, self._clock())
        if stream.complete or scope == "entity":
            result.blocks = result.car_blocks + stream.present
            result.present = stream.present
            return True
        return False

    def _count(self, result: HttpFetchResult, provider: str, new: list[int], *, car: bool, progress: Progress | None) -> None:
        if not new:
            return
        result.fetched += len(new)
        result.fetched_bytes += sum(new)
        if car:
            result.car_blocks += len(new)
        result.providers[provider] = result.providers.get(provider, 0) + len(new)
        if progress is not None:
            progress(result.fetched, result.fetched_bytes)

    async def _walk(self, root: bytes, max_depth: int | None, result: HttpFetchResult, progress: Progress | None) -> HttpFetchResult:
        """Walk the DAG in the store with ``max_in_flight`` workers, fetching missing blocks one by one."""
        result.blocks = 0
        result.present = 0
        seen = {multihash_of(root)}
        queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        queue.put_nowait((root, 0))
        outstanding = 1
        failure: list[BaseException] = []

        async def visit(cid: bytes, depth: int) -> None:
            nonlocal outstanding
            leaf = codec_of(cid) == RAW or (max_depth is not None and depth >= max_depth)
            if leaf and self.store.has(cid):
                result.present += 1
                data = None
            else:
                data = self.store.get(cid)
                if data is not None:
                    result.present += 1
                else:
                    data, provider = await self._fetch_one(cid)
                    result.fetched += 1
                    result.fetched_bytes += len(data)
                    result.providers[provider] = result.providers.get(provider, 0) + 1
            if data is not None and not leaf:
                try:
                    links = iter_links(cid, data)
                except LinksError as exc:
                    raise HttpRetrievalError(f"block {cid_to_str(cid)}: {exc}") from None
                for child in links:
                    mh = multihash_of(child)
                    if mh not in seen:
                        seen.add(mh)
                        outstanding += 1
                        queue.put_nowait((child, depth + 1))
            result.blocks += 1
            outstanding -= 1
            if progress is not None:
                progress(result.blocks, result.fetched_bytes)

        async def worker() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                try:
                    await visit(*item)
                except BaseException as exc:
                    failure.append(exc)
                    for _ in range(self.max_in_flight):
                        queue.put_nowait(None)
                    return
                if outstanding == 0:
                    for _ in range(self.max_in_flight):
                        queue.put_nowait(None)

        workers = [asyncio.ensure_future(worker()) for _ in range(self.max_in_flight)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if failure:
            raise failure[0]
        return result


class _CarStream:
    """One CAR response being checked: the DAG-order rules on top of the CAR parser's hashing.

    A block is accepted when the root or a block received before links to it (``pending``), or
    when the store already holds it (a duplicate). Anything else is a block nobody asked for.
    Accepted blocks gather in a batch that the caller writes (:meth:`take_batch`,
    :meth:`write`, :meth:`written`); :attr:`complete` is true when the CAR ended cleanly and
    nothing linked is missing.
    """

    def __init__(self, store: BlockStore, root: bytes) -> None:
        self.store = store
        self.root = root
        self.parser = CarParser(max_block_size=MAX_BLOCK_SIZE)
        self.pending: set[bytes] = {multihash_of(root)}
        self._batch: list[tuple[bytes, bytes]] = []
        self._unwritten: set[bytes] = set()  # multihashes accepted and not yet in the store
        self._writing: list[set[bytes]] = []  # multihashes of each batch taken and not yet written, oldest first
        self.batch_bytes = 0
        #: sections received (repeats of a block included, dups=y)
        self.blocks = 0
        #: linked blocks that were already in the store
        self.present = 0
        self.bytes = 0
        self.complete = False
        self._first = True

    def _held(self, mh: bytes) -> bool:
        return mh in self._unwritten or any(mh in w for w in self._writing) or self.store.has_multihash(mh)

    def feed(self, chunk: bytes) -> None:
        """Parse and check more of the CAR (raises _BadData or CarError on a lie)."""
        for ev in self.parser.feed(chunk):
            if isinstance(ev, CarHeader):
                if [multihash_of(r) for r in ev.roots[:1]] != [multihash_of(self.root)]:
                    raise _BadData("sent a CAR whose root is not the requested CID")
                continue
            assert isinstance(ev, CarBlock)
            self._block(ev.cid, ev.data)

    def _block(self, cid: bytes, data: bytes) -> None:
        mh = multihash_of(cid)
        if self._first and mh != multihash_of(self.root):
            raise _BadData(f"sent {cid_to_str(cid)} first, not the root it was asked for")
        self._first = False
        self.blocks += 1
        self.bytes += len(data)
        if mh in self.pending:
            self.pending.discard(mh)
            if self.store.has_multihash(mh):
                self.present += 1
            else:
                self._batch.append((cid, data))
                self._unwritten.add(mh)
                self.batch_bytes += len(data)
        elif not self._held(mh):
            raise _BadData(f"sent {cid_to_str(cid)}, which no block received so far links to")
        # else: a repeat (dups=y) of a block received before, or one held before this fetch
        if codec_of(cid) == RAW:
            return
        try:
            links = iter_links(cid, data)
        except LinksError as exc:
            raise _BadData(f"sent {cid_to_str(cid)} that does not decode: {exc}") from None
        for child in links:
            cmh = multihash_of(child)
            if cmh not in self.pending and not self._held(cmh) and parse_cid(child).mh_code != 0:
                self.pending.add(cmh)

    def take_batch(self) -> list[tuple[bytes, bytes]]:
        """The accepted blocks gathered so far (to :meth:`write`); they count as held until :meth:`written`."""
        batch = self._batch
        if not batch:
            return batch
        self._writing.append(self._unwritten)
        self._unwritten = set()
        self._batch = []
        self.batch_bytes = 0
        return batch

    def write(self, batch: list[tuple[bytes, bytes]]) -> list[int]:
        """Store a batch (verified by the CAR parser); return the block sizes. Safe in a thread."""
        self.store.put_many(batch, verify=False)
        return [len(d) for _, d in batch]

    def written(self) -> None:
        """The oldest batch taken is in the store now."""
        self._writing.pop(0)

    def finish(self) -> None:
        """The end of the response: check the CAR is whole and decide completeness."""
        self.parser.finish()
        if self.parser.header is None:
            raise _BadData("sent an empty CAR")
        self.complete = not self.pending
