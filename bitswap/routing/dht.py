"""The Amino DHT (``/ipfs/kad/1.0.0``) on a py-libp2p host: the I/O shell around the sans-I/O cores.

Public API (all in the trio thread that runs the host)::

    from bitswap.routing.dht import DHT
    from bitswap.routing.dht_config import DHTConfig, SERVER

    dht = DHT(host, db, DHTConfig(mode=SERVER))     # db: the repo's plyvel DB (records under r/)
    async with trio.open_nursery() as n:
        await n.start(dht.run)                     # handler (server mode), probes, refresh, sweeper
        await dht.bootstrap(["/ip4/…/tcp/4001/p2p/12D3…", …])   # -> peers in the table
        await dht.provide(cid)                     # -> peers that took the record
        result = await dht.provide_many(cids)      # batched: ProvideResult(keys, records, peers, failed, seconds)
        async with dht.find_providers_stream(cid, count=20) as found:
            async for info in found: ...           # libp2p PeerInfo, each provider once, as found
        infos = await dht.find_providers(cid, count=20)
        info = await dht.find_peer(peer_id)        # PeerInfo or None
        dht.set_mode(CLIENT)                       # switch modes at run time
        dht.stats()                                # dict of counters

Keys are binary CIDs (``blockstore.cid``) or bare multihashes; the DHT key is
the multihash, as every IPFS implementation uses.

How it talks (go-libp2p-kad-dht and js ``@libp2p/kad-dht`` do the same):
requests of lookups use a new stream each (varint-length-prefixed frames,
``request_timeout`` for open + write + answer); inbound streams are read in a
loop, every complete frame answered in order, so a peer may pipeline; batched
ADD_PROVIDERs go many frames per write on one stream per peer. A peer enters
the routing table only after it answered a request of ours (so it is a DHT
server); a new connection is probed with FIND_NODE(our ID) to find out.

Why one module of over 500 lines: it is one class, the I/O shell that owns the host's streams
(handler, lookups, batched providing, bootstrap, probes); every rule it applies lives in a sans-I/O
``kad_*.py`` module of its own (message codec, keyspace, table, lookup, server).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p.abc import INotifee
from libp2p.custom_types import TProtocol
from libp2p.identity.identify_push.identify_push import push_identify_to_peers
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

from blockstore.cid import CidError, parse_cid
from blockstore.kv import KVStore

from ..network import FrameError, read_frames
from .dht_config import SERVER, DHTConfig, is_public_ip
from .kad_keyspace import KEY_BITS, kad_point, random_key_in_bucket
from .kad_lookup import Lookup
from .kad_message import (
    ADD_PROVIDER,
    FIND_NODE,
    GET_PROVIDERS,
    MAX_MESSAGE_SIZE,
    KadMessage,
    KadMessageError,
    Peer,
    decode_message,
    encode_message,
    encode_peer,
    frame,
    len_field,
)
from .kad_server import KadRequestError, KadServer, check_provider_key
from .kad_table import RoutingTable
from .providers_store import ProviderStore
from ..errors import NetworkUnavailable

__all__ = ["PROTOCOL_ID", "DHT", "DHTError", "ProvideResult", "to_dht_key"]

log = logging.getLogger(__name__)

PROTOCOL_ID = "/ipfs/kad/1.0.0"  #: the Amino DHT (kad-dht spec)
_READ_SIZE = 64 * 1024
_PROVIDE_CHUNK = 4096  #: keys handled per round of provide_many (bounds its memory)
_IDENTIFY_WAIT = 3.0  #: seconds a new connection's identify is awaited before probing anyway
_FAILURE_BACKOFF = 60.0  #: seconds a peer whose request failed is not asked again by lookups
_MAX_FAILED_REMEMBERED = 4096


class DHTError(NetworkUnavailable):
    """A DHT operation that cannot run (bad key, DHT not running)."""


def to_dht_key(key: bytes) -> bytes:
    """The DHT key of a binary CID (its multihash), or ``key`` itself when it is already a multihash."""
    try:
        return parse_cid(key).multihash
    except CidError:
        pass
    try:
        return check_provider_key(key)
    except KadRequestError as exc:
        raise DHTError(f"not a CID or multihash: {exc}") from None


@dataclass(slots=True)
class ProvideResult:
    """What a provide_many run did."""

    keys: int  #: keys announced to at least one peer
    records: int  #: ADD_PROVIDER messages written (key x peer)
    peers: int  #: distinct peers written to
    failed_peers: int  #: peers whose stream could not be opened or written
    lookups: int  #: lookups run to find the closest peers
    seconds: float


class _Notifee(INotifee):
    """New connections are probed: a DHT server that answers enters the table."""

    def __init__(self, dht: "DHT") -> None:
        self._dht = dht

    async def opened_stream(self, network: Any, stream: Any) -> None:
        """Unused."""

    async def closed_stream(self, network: Any, stream: Any) -> None:
        """Unused."""

    async def connected(self, network: Any, conn: Any) -> None:
        """Probe the peer (later, in the DHT's nursery)."""
        self._dht._on_connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: Any, conn: Any) -> None:
        """Unused: peers stay in the table until a request to them fails (as go does)."""

    async def listen(self, network: Any, multiaddr: Any) -> None:
        """Unused."""

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        """Unused."""


class DHT:
    """One DHT node on a py-libp2p host (see the module docstring)."""

    def __init__(self, host: Any, db: KVStore, config: DHTConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.config = config or DHTConfig()
        self.clock = clock
        self.local_id: ID = host.get_id()
        self.local = self.local_id.to_bytes()
        cfg = self.config
        self.table = RoutingTable(self.local, k=cfg.k, refresh_interval=cfg.refresh_interval, stale_after=cfg.refresh_interval)
        self.store = ProviderStore(
            db,
            validity=cfg.provide_validity,
            max_records=cfg.max_records,
            max_per_key=cfg.max_records_per_key,
            max_per_peer=cfg.max_records_per_peer,
            max_addrs=cfg.max_addrs_per_peer,
        )
        self.server = KadServer(self.local, self.table, self.store, self._peer_info, addr_filter=self.filter_addrs)
        self._nursery: trio.Nursery | None = None
        self._notifee = _Notifee(self)
        self._handler_set = False
        self._probing: set[ID] = set()
        self._probe_slots = trio.Semaphore(cfg.probe_concurrency)
        self._inbound = 0
        self._inbound_by_peer: dict[ID, int] = {}
        self._addr_cache: dict[tuple[bytes, ...], list[bytes]] = {}
        self._size_estimates: list[float] = []
        self._self_lookup_at: float | None = None
        self._failed_at: dict[bytes, float] = {}  # peer -> when a request to it last failed
        self.counters = {
            "requests_sent": 0,
            "request_failures": 0,
            "inbound_streams": 0,
            "inbound_refused": 0,
            "bad_inbound_messages": 0,
            "lookups": 0,
            "probes": 0,
            "provide_records_sent": 0,
        }

    # ----------------------------------------------------------------- life cycle
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled: the protocol handler (server mode), connection probes, refresh, sweeper."""
        async with trio.open_nursery() as nursery:
            self.set_mode(self.config.mode)  # before _nursery is set: no push at start
            self._nursery = nursery
            self.host.get_network().register_notifee(self._notifee)
            nursery.start_soon(self._refresher)
            nursery.start_soon(self._sweeper)
            try:
                task_status.started(self)
                await trio.sleep_forever()
            finally:
                self._nursery = None
                self._remove_handler()
                network = self.host.get_network()
                if hasattr(network, "remove_notifee"):
                    network.remove_notifee(self._notifee)
                nursery.cancel_scope.cancel()

    def set_mode(self, mode: str) -> None:
        """Switch between CLIENT and SERVER: registers or removes the ``/ipfs/kad/1.0.0`` handler,
        and (when running) tells connected peers with identify/push, so they add or drop us."""
        self.config.mode = DHTConfig(mode=mode).mode  # validates
        changed = False
        if mode == SERVER and not self._handler_set:
            self.host.set_stream_handler(TProtocol(PROTOCOL_ID), self._handle_stream)
            self._handler_set = True
            changed = True
        elif mode != SERVER and self._handler_set:
            self._remove_handler()
            changed = True
        if changed and self._nursery is not None:
            self._nursery.start_soon(self._push_identify)

    async def _push_identify(self) -> None:
        if not self.host.get_connected_peers():
            return
        try:
            with trio.fail_after(self.config.request_timeout):
                await push_identify_to_peers(self.host)
        except Exception as exc:  # a peer that cannot take the push is not our failure
            log.debug("dht: identify push failed: %s", exc)

    def _remove_handler(self) -> None:
        if self._handler_set:
            try:
                self.host.remove_stream_handler(TProtocol(PROTOCOL_ID))
            except (KeyError, AttributeError):
                pass
            self._handler_set = False

    @property
    def mode(self) -> str:
        """CLIENT or SERVER."""
        return self.config.mode

    def stats(self) -> dict[str, Any]:
        """Counters: table size, stored records, requests served by type, lookups, provides, failures."""
        return {
            **self.counters,
            "mode": self.config.mode,
            "routing_table_size": len(self.table),
            "buckets": self.table.bucket_sizes(),
            "provider_records": self.store.count(),
            "records_stored": self.server.stats.records_stored,
            "records_renewed": self.server.stats.records_renewed,
            "records_refused": self.server.stats.records_refused,
            "providers_rejected": self.server.stats.providers_rejected,
            "bad_requests": self.server.stats.bad_requests,
            "requests_served": dict(self.server.stats.requests),
        }

    # ----------------------------------------------------------------- addresses
    def filter_addrs(self, addrs: list[bytes]) -> list[bytes]:
        """Binary multiaddrs that parse, without a /p2p/ suffix, public unless private ones are
        allowed; at most ``max_addrs_per_peer``."""
        key = tuple(addrs)
        hit = self._addr_cache.get(key)
        if hit is not None:
            return hit
        out: list[bytes] = []
        for raw in addrs:
            try:
                ma = multiaddr.Multiaddr(raw)
                text = str(ma)
            except Exception:
                continue
            if "/p2p/" in text:
                text = text.split("/p2p/")[0]
                if not text:
                    continue
                ma = multiaddr.Multiaddr(text)
            if not self.config.allow_private_addrs:
                parts = text.split("/")
                if len(parts) > 2 and parts[1] in ("ip4", "ip6") and not is_public_ip(parts[2]):
                    continue
            b = ma.to_bytes()
            if b not in out:
                out.append(b)
            if len(out) >= self.config.max_addrs_per_peer:
                break
        if len(self._addr_cache) > 4096:
            self._addr_cache.clear()
        self._addr_cache[key] = out
        return out

    def _peer_info(self, pid: bytes) -> tuple[list[bytes], bool]:
        """(binary addresses, connected) of a peer from the host's peer store."""
        if pid == self.local:
            return [a.to_bytes() for a in self.host.get_transport_addrs()], True
        try:
            peer = ID(pid)
        except Exception:
            return [], False
        try:
            addrs = [a.to_bytes() for a in self.host.get_peerstore().addrs(peer)]
        except Exception:
            addrs = []
        connected = bool(self.host.get_network().get_connections(peer)) if hasattr(self.host.get_network(), "get_connections") else False
        return addrs, connected

    def _learn_addrs(self, peer: Peer) -> bool:
        """Put a peer's acceptable addresses in the peer store (only when it has none there)."""
        if peer.id == self.local:
            return False
        addrs = self.filter_addrs(peer.addrs)
        if not addrs:
            return False
        try:
            pid = ID(peer.id)
        except Exception:
            return False
        store = self.host.get_peerstore()
        try:
            if store.addrs(pid):
                return True
        except Exception:
            pass
        store.add_addrs(pid, [multiaddr.Multiaddr(a) for a in addrs], 0)
        return True

    def _own_provider_peer(self) -> Peer:
        addrs = [a.to_bytes() for a in self.host.get_transport_addrs()][: self.config.max_addrs_per_peer]
        return Peer(self.local, addrs)

    # ----------------------------------------------------------------- inbound
    async def _handle_stream(self, stream: Any) -> None:
        peer: ID = stream.muxed_conn.peer_id
        cfg = self.config
        if (
            cfg.mode != SERVER
            or self._inbound >= cfg.max_inbound_streams
            or self._inbound_by_peer.get(peer, 0) >= cfg.max_inbound_streams_per_peer
        ):
            self.counters["inbound_refused"] += 1
            await _reset(stream)
            return
        self._inbound += 1
        self._inbound_by_peer[peer] = self._inbound_by_peer.get(peer, 0) + 1
        self.counters["inbound_streams"] += 1
        try:
            await self._serve_stream(peer, stream)
        finally:
            self._inbound -= 1
            n = self._inbound_by_peer[peer] - 1
            if n:
                self._inbound_by_peer[peer] = n
            else:
                del self._inbound_by_peer[peer]

    async def _serve_stream(self, peer: ID, stream: Any) -> None:
        sender = peer.to_bytes()
        buf = bytearray()
        try:
            while True:
                with trio.move_on_after(self.config.inbound_idle_timeout):
                    try:
                        chunk = await stream.read(_READ_SIZE)
                    except EOFError:
                        chunk = b""
                    if not chunk:
                        await _close(stream)
                        return
                    buf += chunk
                    frames = read_frames(buf, self.config.max_request_size)
                    if not frames:
                        continue
                    msgs = [decode_message(f) for f in frames]
                    responses = self.server.handle_batch(sender, msgs, self.clock())
                    out = b"".join(frame(encode_message(r)) for r in responses if r is not None)
                    if out:
                        await stream.write(out)
                    continue
                await _close(stream)  # idle too long
                return
        except (FrameError, KadMessageError, KadRequestError) as exc:
            self.counters["bad_inbound_messages"] += 1
            log.info("dht: bad request from %s: %s; resetting the stream", peer, exc)
            await _reset(stream)
        except Exception as exc:
            if not type(exc).__module__.startswith("libp2p"):
                log.exception("dht: serving %s failed", peer)
            await _reset(stream)

    # ----------------------------------------------------------------- outbound
    async def _request(self, peer: ID, msg: KadMessage) -> KadMessage:
        """Send one request on a new stream and read its answer (raises on any failure or timeout)."""
        self.counters["requests_sent"] += 1
        with trio.fail_after(self.config.request_timeout):
            stream = await self.host.new_stream(peer, [TProtocol(PROTOCOL_ID)])
            try:
                await stream.write(frame(encode_message(msg)))
                buf = bytearray()
                while True:
                    chunk = await stream.read(_READ_SIZE)
                    if not chunk:
                        raise EOFError("stream closed before the answer")
                    buf += chunk
                    frames = read_frames(buf, MAX_MESSAGE_SIZE)
                    if frames:
                        answer = decode_message(frames[0])
                        break
            except BaseException:
                await _reset(stream)
                raise
            await _close(stream)
        if answer.type != msg.type:
            raise KadMessageError(f"answer of type {answer.type} to a request of type {msg.type}")
        return answer

    async def _probe(self, peer: ID) -> bool:
        """FIND_NODE(our ID) to ``peer``: it answers if it is a DHT server; then it enters the table."""
        self.counters["probes"] += 1
        try:
            answer = await self._request(peer, KadMessage(FIND_NODE, key=self.local))
        except Exception as exc:
            log.debug("dht: probe of %s failed: %s", peer, exc)
            self._note_failure(peer.to_bytes())
            return False
        self._failed_at.pop(peer.to_bytes(), None)
        self._admit(peer)
        for p in answer.closer:
            self._learn_addrs(p)
        return True

    def _admit(self, peer: ID) -> None:
        """A peer answered a DHT request: add it to the table if it has an acceptable address."""
        pid = peer.to_bytes()
        if pid in self.table:
            self.table.add(pid, self.clock())
            return
        addrs, _ = self._peer_info(pid)
        if not self.filter_addrs(addrs):
            conns = self.host.get_network().get_connections(peer)
            remote = []
            for c in conns:
                try:
                    remote += [a.to_bytes() for a in c.get_transport_addresses()]
                except Exception:
                    pass
            if not self.filter_addrs(remote):
                return
        self.table.add(pid, self.clock())

    def _note_failure(self, pid: bytes) -> None:
        """A request to ``pid`` failed: out of the table, and skipped by lookups for a while."""
        now = self.clock()
        self.table.peer_failed(pid, now)
        self._failed_at.pop(pid, None)
        self._failed_at[pid] = now
        if len(self._failed_at) > _MAX_FAILED_REMEMBERED:
            del self._failed_at[next(iter(self._failed_at))]

    def _backing_off(self, pid: bytes) -> bool:
        at = self._failed_at.get(pid)
        if at is None:
            return False
        if self.clock() - at < _FAILURE_BACKOFF:
            return True
        del self._failed_at[pid]
        return False

    def _protocols_of(self, peer: ID) -> list[str]:
        try:
            return [str(p) for p in self.host.get_peerstore().get_protocols(peer)]
        except Exception:
            return []

    def _on_connected(self, peer: ID) -> None:
        if self._nursery is None or peer in self._probing or peer.to_bytes() in self.table:
            return
        self._probing.add(peer)
        self._nursery.start_soon(self._probe_later, peer)

    async def _probe_later(self, peer: ID) -> None:
        try:
            async with self._probe_slots:
                # identify tells whether the peer serves the DHT: wait a little for it, and
                # probe only peers that list /ipfs/kad/1.0.0 (or whose identify we never saw)
                protocols: list[str] = []
                with trio.move_on_after(_IDENTIFY_WAIT):
                    while not protocols:
                        protocols = self._protocols_of(peer)
                        if not protocols:
                            await trio.sleep(0.05)
                if protocols and PROTOCOL_ID not in protocols:
                    return
                await self._probe(peer)
        finally:
            self._probing.discard(peer)

    # ----------------------------------------------------------------- lookups
    async def _lookup(
        self,
        key: bytes,
        request: KadMessage,
        on_answer: Callable[[bytes, KadMessage], bool] | None = None,
    ) -> Lookup:
        """Run one iterative lookup of ``key`` with ``request``; ``on_answer`` returns True to stop early."""
        cfg = self.config
        target = kad_point(key)
        lk = Lookup(target, self.table.closest(target, cfg.k), k=cfg.k, alpha=cfg.alpha, local=self.local)
        self.counters["lookups"] += 1
        send, recv = trio.open_memory_channel[tuple[bytes, KadMessage | None]](cfg.alpha * 2)

        async def query(pid: bytes) -> None:
            if self._backing_off(pid):
                await send.send((pid, None))
                return
            try:
                answer: KadMessage | None = await self._request(ID(pid), request)
            except Exception as exc:
                log.debug("dht: request to %s failed: %s", pid.hex(), exc)
                self.counters["request_failures"] += 1
                answer = None
            await send.send((pid, answer))

        async with trio.open_nursery() as nursery:
            while not lk.done:
                for pid in lk.next_queries():
                    nursery.start_soon(query, pid)
                if lk.in_flight == 0:
                    break
                pid, answer = await recv.receive()
                if answer is None:
                    lk.on_failure(pid)
                    if not self._backing_off(pid):
                        self._note_failure(pid)
                    continue
                self._admit(ID(pid))
                lk.on_response(pid, [p.id for p in answer.closer if self._learn_addrs(p)])
                if on_answer is not None and on_answer(pid, answer):
                    lk.stop()
            nursery.cancel_scope.cancel()
        self.table.mark_refreshed(target, self.clock())
        self._note_size(lk, target)
        return lk

    def _note_size(self, lk: Lookup, target: int) -> None:
        """Keep an estimate of the number of DHT servers from the k-th closest distance of a lookup."""
        closest = lk.closest()
        if not closest:
            return
        if len(closest) < self.config.k:
            est = float(len(closest))
        else:
            d = kad_point(closest[-1]) ^ target
            est = self.config.k * (2.0**KEY_BITS) / max(d, 1)
        self._size_estimates = (self._size_estimates + [est])[-8:]

    def network_size(self) -> float:
        """Estimated DHT servers in the network (median of recent lookups; table size before any)."""
        if not self._size_estimates:
            return float(max(len(self.table), 1))
        s = sorted(self._size_estimates)
        return s[len(s) // 2]

    async def closest_peers(self, key: bytes) -> list[bytes]:
        """The k closest DHT servers to ``key`` in the network (a FIND_NODE lookup), binary IDs."""
        lk = await self._lookup(key, KadMessage(FIND_NODE, key=key))
        return lk.closest()

    # ----------------------------------------------------------------- bootstrap and refresh
    async def bootstrap(self, addrs: Iterable[str], *, connect_timeout: float = 10.0) -> int:
        """Connect to the given ``/…/p2p/<id>`` peers, probe them, then look up our own ID and refresh
        the buckets; returns the routing table size. Bad or unreachable addresses are skipped (logged)."""

        async def one(addr: str) -> None:
            try:
                info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
                with trio.fail_after(connect_timeout):
                    await self.host.connect(info)
            except Exception as exc:
                log.warning("dht: bootstrap peer %s: %s", addr, exc)
                return
            await self._probe(info.peer_id)

        async with trio.open_nursery() as nursery:
            for addr in addrs:
                nursery.start_soon(one, addr)
        await self.refresh(force=True)
        return len(self.table)

    async def refresh(self, *, force: bool = False) -> int:
        """Probe peers not heard from for ``refresh_interval``, look up our own ID (every
        ``refresh_interval``), then a random key in each bucket due for refresh (all of them
        when ``force``); returns the lookups run."""
        if not len(self.table):
            return 0
        stale = self.table.stale_peers(self.clock())
        async with trio.open_nursery() as nursery:
            for pid in stale:
                nursery.start_soon(self._probe, ID(pid))
        runs = 0
        now = self.clock()
        if force or self._self_lookup_at is None or now - self._self_lookup_at >= self.config.refresh_interval:
            await self.closest_peers(self.local)
            self._self_lookup_at = now
            runs += 1
        due = self.table.buckets_due(now if not force else now + self.config.refresh_interval)
        for cpl in due:
            key = random_key_in_bucket(self.table.local_point, cpl)
            await self.closest_peers(key)
            runs += 1
        return runs

    async def _refresher(self) -> None:
        while True:
            await trio.sleep(self.config.refresh_check_interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("dht: refresh failed")

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(self.config.sweep_interval)
            while self.store.sweep(self.clock(), limit=10_000) == 10_000:
                await trio.sleep(0)  # let the host breathe between chunks

    # ----------------------------------------------------------------- providing
    def _add_provider_frame(self, mh: bytes, provider: bytes) -> bytes:
        body = b"\x08\x02" + len_field(2, mh) + provider
        return frame(body)

    async def provide(self, cid: bytes) -> int:
        """Announce that we provide ``cid`` to the k closest DHT servers; returns how many took the message."""
        mh = to_dht_key(cid)
        peers = await self.closest_peers(mh)
        provider = len_field(9, encode_peer(self._own_provider_peer()))
        frames = self._add_provider_frame(mh, provider)
        ok = 0

        async def one(pid: bytes) -> None:
            nonlocal ok
            stream = await self._write_frames(ID(pid), [frames])
            if stream is not None:
                await _close(stream)
                ok += 1

        async with trio.open_nursery() as nursery:
            for pid in peers:
                nursery.start_soon(one, pid)
        return ok

    async def _write_frames(self, peer: ID, frames: list[bytes], stream: Any = None) -> Any:
        """Write frames to ``peer`` on ``stream`` (a new one when None), ``provide_batch_frames`` per write.

        Returns the stream, still open for more, or None when it failed (the stream is reset).
        """
        n = self.config.provide_batch_frames
        try:
            with trio.fail_after(self.config.request_timeout + len(frames) * 0.01):
                if stream is None:
                    stream = await self.host.new_stream(peer, [TProtocol(PROTOCOL_ID)])
                for i in range(0, len(frames), n):
                    await stream.write(b"".join(frames[i : i + n]))
            self.counters["provide_records_sent"] += len(frames)
        except Exception as exc:
            log.debug("dht: ADD_PROVIDER to %s failed: %r", peer, exc)
            self.counters["request_failures"] += 1
            self._note_failure(peer.to_bytes())
            if stream is not None:
                await _reset(stream)
            return None
        return stream

    async def provide_many(self, cids: Iterable[bytes]) -> ProvideResult:
        """Announce many keys, fast: lookups are shared by keys in the same region of the keyspace
        and ADD_PROVIDERs go many per write on one stream per peer, all peers in parallel.

        The keyspace is cut into regions of ~k servers (from the network size
        estimate); one FIND_NODE lookup per region finds its servers, and each
        key goes to the k closest of them. Keys are taken ``_PROVIDE_CHUNK`` at
        a time, so memory does not grow with the number of keys.
        """
        start = time.perf_counter()
        if not len(self.table):
            raise DHTError("the routing table is empty: bootstrap first")
        await self.closest_peers(self.local)  # a fresh size estimate
        bits = max(0, min(16, int(math.floor(math.log2(max(self.network_size() / self.config.k, 1.0))))))
        regions: dict[int, list[tuple[int, bytes]]] = {}  # region -> its servers (point, ID)
        provider = len_field(9, encode_peer(self._own_provider_peer()))
        streams: dict[bytes, Any] = {}
        failed: set[bytes] = set()
        written: set[bytes] = set()
        keys = records = lookups = 0
        region_slots = trio.Semaphore(self.config.provide_lookups_parallel)
        chunk: list[bytes] = []

        async def region_peers(region: int, key: bytes) -> None:
            nonlocal lookups
            async with region_slots:
                if region in regions:
                    return
                lk = await self._lookup(key, KadMessage(FIND_NODE, key=key))
                lookups += 1
                regions[region] = [(kad_point(p), p) for p in lk.closest(self.config.k * 4)]

        async def flush(batch: list[bytes]) -> None:
            nonlocal keys
            points = [(kad_point(mh), mh) for mh in batch]
            asked: set[int] = set()
            async with trio.open_nursery() as nursery:
                for point, mh in points:
                    region = point >> (KEY_BITS - bits) if bits else 0
                    if region not in regions and region not in asked:
                        asked.add(region)
                        nursery.start_soon(region_peers, region, mh)
            by_peer: dict[bytes, list[bytes]] = {}
            for point, mh in points:
                region = point >> (KEY_BITS - bits) if bits else 0
                candidates = [c for c in regions.get(region, ()) if c[1] not in failed]
                if not candidates:
                    continue
                closest = heapq.nsmallest(self.config.k, candidates, key=lambda c: c[0] ^ point)
                fr = self._add_provider_frame(mh, provider)
                for _point, pid in closest:
                    by_peer.setdefault(pid, []).append(fr)
                keys += 1

            async def send(pid: bytes, frames: list[bytes]) -> None:
                nonlocal records
                stream = await self._write_frames(ID(pid), frames, streams.get(pid))
                if stream is None:
                    failed.add(pid)
                    streams.pop(pid, None)
                    return
                streams[pid] = stream
                written.add(pid)
                records += len(frames)

            async with trio.open_nursery() as nursery:
                for pid, frames in by_peer.items():
                    nursery.start_soon(send, pid, frames)

        try:
            for cid in cids:
                chunk.append(to_dht_key(cid))
                if len(chunk) >= _PROVIDE_CHUNK:
                    await flush(chunk)
                    chunk = []
            if chunk:
                await flush(chunk)
        finally:
            for stream in streams.values():
                await _close(stream)
        return ProvideResult(keys, records, len(written), len(failed), lookups, time.perf_counter() - start)

    # ----------------------------------------------------------------- finding
    @asynccontextmanager
    async def find_providers_stream(self, cid: bytes, count: int = 20) -> AsyncIterator[trio.MemoryReceiveChannel[PeerInfo]]:
        """Providers of ``cid`` as they are found (each peer once, at most ``count``), from our own
        store first, then from a GET_PROVIDERS lookup; the channel ends when the lookup does."""
        mh = to_dht_key(cid)
        send, recv = trio.open_memory_channel[PeerInfo](max(count, 1))

        async def run() -> None:
            seen: set[bytes] = set()
            async with send:
                for rec in self.store.providers(mh, self.clock(), count):
                    if self._emit(rec.peer, rec.addrs, seen, send):
                        if len(seen) >= count:
                            return
                if len(seen) >= count:
                    return

                def on_answer(_pid: bytes, answer: KadMessage) -> bool:
                    for p in answer.providers:
                        self._emit(p.id, p.addrs, seen, send)
                        if len(seen) >= count:
                            return True
                    return False

                await self._lookup(mh, KadMessage(GET_PROVIDERS, key=mh), on_answer)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            try:
                yield recv
            finally:
                nursery.cancel_scope.cancel()

    def _emit(self, pid: bytes, addrs: list[bytes], seen: set[bytes], send: trio.MemorySendChannel[PeerInfo]) -> bool:
        if pid in seen:
            return False
        try:
            peer = ID(pid)
            mas = [multiaddr.Multiaddr(a) for a in self.filter_addrs(addrs)]
        except Exception:
            return False
        if pid != self.local and mas:
            store = self.host.get_peerstore()
            try:
                known = store.addrs(peer)
            except Exception:
                known = []
            if not known:
                store.add_addrs(peer, mas, 0)
        try:
            send.send_nowait(PeerInfo(peer, mas))
        except trio.WouldBlock:
            return False
        seen.add(pid)
        return True

    async def find_providers(self, cid: bytes, count: int = 20) -> list[PeerInfo]:
        """Up to ``count`` providers of ``cid`` (each peer once)."""
        out = []
        async with self.find_providers_stream(cid, count) as found:
            async for info in found:
                out.append(info)
        return out

    async def find_peer(self, peer_id: ID) -> PeerInfo | None:
        """The addresses of ``peer_id``: from a connection if we have one, else a FIND_NODE lookup."""
        network = self.host.get_network()
        if network.get_connections(peer_id):
            addrs, _ = self._peer_info(peer_id.to_bytes())
            return PeerInfo(peer_id, [multiaddr.Multiaddr(a) for a in addrs])
        target = peer_id.to_bytes()
        found: list[bytes] = []

        def on_answer(_pid: bytes, answer: KadMessage) -> bool:
            for p in answer.closer:
                if p.id == target:
                    found.extend(self.filter_addrs(p.addrs))
                    return bool(found)
            return False

        await self._lookup(target, KadMessage(FIND_NODE, key=target), on_answer)
        if not found:
            return None
        return PeerInfo(peer_id, [multiaddr.Multiaddr(a) for a in found])


# --------------------------------------------------------------------- helpers
async def _reset(stream: Any) -> None:
    """Reset a stream, also from a cancelled scope (a lookup that ended), waiting at most 1 s."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except Exception:
            pass


async def _close(stream: Any) -> None:
    """Close a stream (our side), also from a cancelled scope, waiting at most 1 s."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.close()
        except Exception:
            pass
