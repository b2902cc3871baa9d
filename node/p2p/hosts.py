"""The two libp2p hosts of a Pinion peer, as IPFS Cluster has them.

- the **swarm** host (public IPFS network, default ``/ip4/0.0.0.0/tcp/4001``):
  TCP + Noise + Yamux, identify (lists every protocol a handler is set for),
  ping; bitswap registers its handlers on it.
- the **cluster** host (default ``/ip4/0.0.0.0/tcp/9096``): the same stack
  inside a libp2p private network keyed by the cluster's 32-byte secret, plus
  gossipsub for CRDT heads and peer metrics.

Both keep a peer book (``PeerBook``): peers we dialled, and what every connected peer
announces over identify (a peer back on a new address replaces its stale one; the cluster
host also adds members that only ever dialled us). Known peers that drop are redialled.

``HostHandle`` lives in the bridge's trio thread: every ``async`` method is a
trio coroutine, and stream handlers are trio coroutines taking the stream.
Code on asyncio goes through ``node.p2p.service.P2PService``.

Why one module of over 500 lines: both hosts share one build (transport, security, muxer, pnet),
the peer book and the redial loop; py-libp2p's own workarounds are in ``compat.py``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from multiformats import multihash
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee, ISubscriptionAPI
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.identity.identify_push.identify_push import push_identify_to_peers
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.address_validation import expand_wildcard_address

from . import compat
from .identity import peer_id_of
from .peerstore import PeerBook
from .seqno import SeqnoFloor
from ..errors import NodeError

log = logging.getLogger(__name__)

DEFAULT_SWARM_ADDR = "/ip4/0.0.0.0/tcp/4001"
DEFAULT_CLUSTER_ADDR = "/ip4/0.0.0.0/tcp/9096"
CONNECT_TIMEOUT_S = 10.0  #: a dial (incl. pnet, Noise, Yamux negotiation) that takes longer fails
RECONNECT_TIMEOUT_S = 5.0  #: per known peer when redialling
RECONNECT_INTERVAL_S = 30.0  #: how often known peers that dropped are redialled
CLOSE_TIMEOUT_S = 5.0  #: closing the connections when the host stops takes at most this
IDENTIFY_TIMEOUT_S = 10.0  #: identifying a new connection's peer (to learn its addresses) takes at most this
PUBSUB_REPAIR_INTERVAL_S = 1.0  #: how often pubsub peers on closed connections are re-registered
CONNECTION_EVENTS = 256  #: new connections waiting to be identified (more are not identified)
AGENT_VERSION = compat.AGENT_VERSION  #: what identify tells peers we run

StreamHandler = Callable[[INetStream], Awaitable[None]]


class P2PError(NodeError, RuntimeError):
    """A libp2p operation failed (bad multiaddr, unreachable peer, host not running...)."""


def parse_peer_multiaddr(addr: str) -> tuple[ID, multiaddr.Multiaddr]:
    """Split ``/ip4/.../tcp/N/p2p/<id>`` into (peer ID, transport multiaddr).

    Raises P2PError naming the problem.
    """
    try:
        ma = multiaddr.Multiaddr(addr)
    except Exception as exc:
        raise P2PError(f"invalid multiaddr {addr!r}: {exc}") from None
    try:
        info = info_from_p2p_addr(ma)
    except Exception:
        raise P2PError(f"multiaddr {addr!r} has no /p2p/<peer ID> part") from None
    if not info.addrs:
        raise P2PError(f"multiaddr {addr!r} has no transport address before /p2p/")
    return info.peer_id, info.addrs[0]


def advertised_addrs(addrs: Sequence[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    """What we announce for our listen addresses: a wildcard (0.0.0.0 or ::) becomes
    loopback plus each interface address, as kubo shows them; others pass through."""
    out: list[multiaddr.Multiaddr] = []
    for addr in addrs:
        expanded = [addr]
        for proto, loopback in (("ip4", "127.0.0.1"), ("ip6", "::1")):
            try:
                value = addr.value_for_protocol(proto)
            except Exception:
                continue
            text, prefix = str(addr), f"/{proto}/{value}"
            if value in ("0.0.0.0", "::") and text.startswith(prefix):
                expanded = [multiaddr.Multiaddr(f"/{proto}/{loopback}{text[len(prefix):]}")]
                expanded += [a for a in expand_wildcard_address(addr) if str(a) != text]
        for a in expanded:
            if str(a) not in {str(o) for o in out}:
                out.append(a)
    return out


def _parse_peer_id(peer: str | ID) -> ID:
    if isinstance(peer, ID):
        return peer
    try:
        pid = ID.from_base58(peer)
        multihash.unwrap(pid.to_bytes())
    except Exception:
        raise P2PError(f"invalid peer ID {peer!r}") from None
    return pid


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


class _NewConnections(INotifee):
    """Hands every new connection's (peer, remote address, dialled by us) to the host handle."""

    def __init__(self, send: trio.MemorySendChannel[tuple[ID, str, bool]]) -> None:
        self._send = send

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        """Queue the connection for identify; never blocks the swarm (a full queue drops it)."""
        muxed = conn.muxed_conn
        addrs = conn.get_transport_addresses()
        event = (muxed.peer_id, str(addrs[0]) if addrs else "", bool(getattr(muxed, "is_initiator_value", False)))
        try:
            self._send.send_nowait(event)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        """Nothing to do."""

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        """Nothing to do."""

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        """Nothing to do."""

    async def listen(self, network: INetwork, addr: multiaddr.Multiaddr) -> None:
        """Nothing to do."""

    async def listen_close(self, network: INetwork, addr: multiaddr.Multiaddr) -> None:
        """Nothing to do."""


def announced_dial_addrs(listen_addrs: Sequence[bytes], remote: str, dialled: bool) -> list[str]:
    """The addresses worth remembering for a peer: what it announced over identify
    (TCP only, without ``/p2p/``; the ones on the IP it connected from first, loopback
    last), preceded by the address we reached it at when we dialled it.

    A peer's announcement is all we have to find it again after it moved; a lying
    peer only makes us dial addresses it chose (the book keeps a few per peer)."""
    remote_ip = ""
    try:
        remote_ma = multiaddr.Multiaddr(remote) if remote else None
        names = [p.name for p in remote_ma.protocols()] if remote_ma is not None else []
        if remote_ma is not None and names and names[0] in ("ip4", "ip6"):
            remote_ip = remote_ma.value_for_protocol(names[0])
    except Exception:
        remote_ma = None
    found: list[tuple[int, str]] = []
    for raw in listen_addrs:
        try:
            ma = multiaddr.Multiaddr(raw)
            names = [p.name for p in ma.protocols()]
            if len(names) < 2 or names[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") or names[1] != "tcp":
                continue
            host, port = ma.value_for_protocol(names[0]), ma.value_for_protocol("tcp")
        except Exception:  # malformed: a peer's announcement is not trusted to parse
            continue
        if port in ("0", None) or host in ("0.0.0.0", "::") or any(n != "p2p" for n in names[2:]):
            continue  # a wildcard, or a transport on top of TCP (ws, tls...) we do not dial
        text = f"/{names[0]}/{host}/tcp/{port}"
        loopback = host in ("::1", "localhost") or str(host).startswith("127.")
        found.append((0 if host == remote_ip else 2 if loopback else 1, text))
    out = [text for _rank, text in sorted(found, key=lambda item: item[0])]
    if dialled and remote and remote_ma is not None and "/tcp/" in remote:
        out.insert(0, remote.split("/p2p/")[0])
    return list(dict.fromkeys(out))


@asynccontextmanager
async def _closing_connections(host: IHost) -> AsyncIterator[None]:
    """Close every connection of ``host`` on the way out: upstream's ``host.run`` stops its
    tasks but leaves the sockets open, so peers would keep a dead connection to us (and
    ignore a restart of ours on the same peer ID as a peer they already have).

    The peers are closed concurrently: upstream's close of one connection sleeps 0.2 s (0.1 s
    in the yamux session, 0.1 s in the swarm connection), which one peer after another made a
    stop of a cluster peer with n connections last n * 0.2 s."""
    try:
        yield
    finally:
        network = host.get_network()

        async def close(peer: ID) -> None:
            try:
                await network.close_peer(peer)
            except Exception as exc:  # closing is best effort: the process may be exiting
                log.debug("closing the connection to %s: %s", peer, exc)

        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                for peer in list(network.get_connections_map()):
                    nursery.start_soon(close, peer)


class HostHandle:
    """One libp2p host running in the bridge's trio thread.

    Build it, then start it with ``await bridge.start_service(handle.serve)``
    (or ``nursery.start(handle.serve)``); ``stop()`` ends it.
    """

    def __init__(
        self,
        name: str,
        keypair: KeyPair,
        listen_addrs: Sequence[str],
        *,
        psk: str | bytes | None = None,
        pubsub: bool = False,
        peer_book: PeerBook | None = None,
        reconnect_interval: float = RECONNECT_INTERVAL_S,
        seqno_floor: SeqnoFloor | None = None,
        learn_peers: bool = False,
    ) -> None:
        compat.install()
        if not listen_addrs:
            raise P2PError(f"{name} host needs at least one listen address")
        self.name = name
        self.keypair = keypair
        self.peer_id = peer_id_of(keypair)
        try:
            self._listen = [multiaddr.Multiaddr(a) for a in listen_addrs]
        except Exception as exc:
            raise P2PError(f"{name} host: invalid listen address in {list(listen_addrs)}: {exc}") from None
        self._psk_hex = compat.parse_psk(psk).hex() if psk is not None else None
        self._want_pubsub = pubsub
        self.peer_book = peer_book
        #: where pubsub keeps the floor of its sequence numbers (never reused across restarts)
        self.seqno_floor = seqno_floor
        #: add every peer that connects to the peer book (the cluster host: only members
        #: of the private network can connect); otherwise only known peers are updated
        self.learn_peers = learn_peers
        self.reconnect_interval = reconnect_interval
        self.host: IHost | None = None
        self.pubsub: Pubsub | None = None
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._serving = False
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._handlers: dict[str, StreamHandler] = {}
        self._new_connections: trio.MemoryReceiveChannel[tuple[ID, str, bool]] | None = None
        self._identifying: set[ID] = set()

    @property
    def private(self) -> bool:
        """True for a private-network (pnet) host."""
        return self._psk_hex is not None

    # -- lifecycle ---------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the host until ``stop()``; reports started once it listens. Runs once per handle."""
        if self._serving or self._stop.is_set():
            raise P2PError(f"{self.name} host handle was already started (build a new one)")
        self._serving = True
        host = new_host(
            key_pair=self.keypair,
            sec_opt=compat.security_options(self.keypair),
            muxer_opt=compat.muxer_options(),
            listen_addrs=self._listen,
            psk=self._psk_hex,
            connection_config=compat.connection_config(),
            addrs_factory=advertised_addrs,
            enable_mDNS=False,
            enable_upnp=False,
        )
        compat.disable_auto_connector(host)
        if self.peer_book is not None:
            send, self._new_connections = trio.open_memory_channel[tuple[ID, str, bool]](CONNECTION_EVENTS)
            host.get_network().register_notifee(_NewConnections(send))
        self.host = host
        for proto, handler in self._handlers.items():
            host.set_stream_handler(TProtocol(proto), handler)
        try:
            async with host.run(self._listen), _closing_connections(host):
                listening = host.get_transport_addrs()
                if len(listening) < len(self._listen):
                    raise P2PError(
                        f"{self.name} host could not listen on every address of "
                        f"{[str(a) for a in self._listen]} (listening on {[str(a) for a in listening]}; "
                        "is the port in use?)"
                    )
                if self._want_pubsub:
                    router = compat.gossipsub_router()
                    pubsub = Pubsub(host, router, strict_signing=True)
                    floor = self.seqno_floor
                    compat.use_monotonic_seqnos(
                        pubsub, floor.get() if floor else 0, floor.set if floor else None
                    )
                    try:
                        async with background_trio_service(pubsub), background_trio_service(router):
                            await pubsub.wait_until_ready()
                            self.pubsub = pubsub
                            await self._running(task_status)
                    finally:
                        compat.close_pubsub(pubsub)
                else:
                    await self._running(task_status)
        except BaseExceptionGroup as group:
            leaves = _leaves(group)
            if len(leaves) == 1 and isinstance(leaves[0], P2PError):
                raise leaves[0] from None
            raise
        finally:
            self.pubsub = None
            self.host = None
            self._stopped.set()

    async def _running(self, task_status: Any) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            if self.peer_book is not None:
                nursery.start_soon(self._keep_known_peers)
            if self._new_connections is not None:
                nursery.start_soon(self._learn_addresses, self._new_connections)
            if self.pubsub is not None:
                nursery.start_soon(self._repair_pubsub, self.pubsub)
            task_status.started(self)
            await self._stop.wait()
            self._nursery = None
            nursery.cancel_scope.cancel()

    async def stop(self) -> None:
        """Close every connection and stop listening; returns once the host is down."""
        self._stop.set()
        if self._serving and not self._stopped.is_set():
            with trio.move_on_after(10):
                await self._stopped.wait()

    def _host(self) -> IHost:
        if self.host is None:
            raise P2PError(f"{self.name} host is not running")
        return self.host

    # -- identity and addresses -------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Our listen multiaddrs, each ending in ``/p2p/<our peer ID>``."""
        return [str(a) for a in self._host().get_addrs()]

    def protocols(self) -> list[str]:
        """Every protocol this host answers (what identify advertises)."""
        return sorted(str(p) for p in self._host().get_mux().get_protocols() if p is not None)

    # -- peers -------------------------------------------------------------

    async def connect(self, addr: str, timeout: float = CONNECT_TIMEOUT_S, *, remember: bool = True) -> str:
        """Dial ``/…/p2p/<id>``; returns the peer ID. Raises P2PError on failure or timeout.

        ``remember``: add the peer to the peer book (redials of known peers do not, so a
        peer disconnected on purpose while a redial is in flight stays forgotten)."""
        peer_id, transport_addr = parse_peer_multiaddr(addr)
        host = self._host()
        if str(peer_id) == self.peer_id:
            raise P2PError("cannot connect to ourselves")
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        if not host.get_network().get_connections(peer_id):
            # dial the address we are given: upstream dials every address it ever saw
            # for the peer, stale ones first, and one that hangs uses up the timeout
            host.get_peerstore().clear_addrs(peer_id)
        compat.forget_failed_dials(host, peer_id)
        try:
            with trio.fail_after(timeout):
                await host.connect(info)
        except trio.TooSlowError:
            raise P2PError(f"connecting to {addr} timed out after {timeout} s") from None
        except P2PError:
            raise
        except Exception as exc:
            raise P2PError(f"connecting to {addr} failed: {exc}") from None
        if not host.get_network().get_connections(peer_id):
            raise P2PError(f"connecting to {addr} failed: no connection was established")
        if self.peer_book is not None and remember:
            self.peer_book.remember(str(peer_id), str(transport_addr))
        return str(peer_id)

    async def _learn_addresses(self, events: trio.MemoryReceiveChannel[tuple[ID, str, bool]]) -> None:
        """Identify the peer of every new connection and keep the addresses it announces
        in the peer book (a peer back on a new address replaces its stale one)."""
        async with trio.open_nursery() as nursery:
            async for peer, remote, dialled in events:
                if peer in self._identifying:
                    continue
                self._identifying.add(peer)
                nursery.start_soon(self._learn_from, peer, remote, dialled)

    async def _learn_from(self, peer: ID, remote: str, dialled: bool) -> None:
        host, book = self.host, self.peer_book
        try:
            if host is None or book is None:
                return
            if not self.learn_peers and not book.addrs(str(peer)):
                return  # a peer we do not keep (an IPFS peer that dialled the swarm host)
            with trio.move_on_after(IDENTIFY_TIMEOUT_S):
                msg = await compat.identify_peer(host, peer)
                if not host.get_network().get_connections(peer):
                    return  # gone (or disconnected on purpose) meanwhile: learn nothing
                addrs = announced_dial_addrs(list(msg.listen_addrs), remote, dialled)
                if book.learn(str(peer), addrs, add=self.learn_peers):
                    log.info("%s host: peer %s is at %s", self.name, peer, ", ".join(addrs))
        except Exception as exc:  # a peer that does not answer identify keeps what the book had
            log.debug("%s host: identifying %s failed: %s", self.name, peer, exc)
        finally:
            self._identifying.discard(peer)

    async def _repair_pubsub(self, pubsub: Pubsub) -> None:
        """Every second: move pubsub peers off closed connections (see ``compat.repair_pubsub_peers``)."""
        while True:
            await trio.sleep(PUBSUB_REPAIR_INTERVAL_S)
            for peer in compat.repair_pubsub_peers(pubsub):
                log.info("%s host: pubsub stream to %s was on a closed connection: re-registered", self.name, peer)

    async def _keep_known_peers(self) -> None:
        while True:
            await self.reconnect_known()
            await trio.sleep(self.reconnect_interval)

    async def reconnect_known(self) -> int:
        """Dial, concurrently, every peer-book peer we are not connected to; returns how many connected."""
        if self.peer_book is None:
            return 0
        connected = 0
        book = self.peer_book
        current = {str(p) for p in self._host().get_connected_peers()}

        async def one(peer: str, addrs: list[str]) -> None:
            nonlocal connected
            for a in addrs:
                try:
                    await self.connect(f"{a}/p2p/{peer}", RECONNECT_TIMEOUT_S, remember=False)
                except P2PError as exc:
                    log.debug("%s host: reconnect to %s via %s failed: %s", self.name, peer, a, exc)
                    continue
                if book is not None and not book.addrs(peer):
                    # disconnected on purpose while this redial was in flight: stay down
                    await self._host().disconnect(_parse_peer_id(peer))
                    return
                connected += 1
                return

        async with trio.open_nursery() as nursery:
            for peer, addrs in self.peer_book.known().items():
                if peer not in current:
                    nursery.start_soon(one, peer, addrs)
        return connected

    async def disconnect(self, peer: str | ID) -> None:
        """Close every connection to ``peer`` and forget it (it is not redialled).

        It may come back by dialling us (then it is learnt again, as any new peer)."""
        pid = _parse_peer_id(peer)
        if self.peer_book is not None:
            self.peer_book.forget(str(pid))
        await self._host().disconnect(pid)
        if self.peer_book is not None:  # an identify that finished meanwhile may have re-learnt it
            self.peer_book.forget(str(pid))

    def peers(self) -> list[tuple[str, str]]:
        """Connected peers as (peer ID, remote multiaddr), one row per peer."""
        rows = []
        for pid, conns in self._host().get_network().get_connections_map().items():
            addr = ""
            for conn in conns:
                addrs = conn.get_transport_addresses()
                if addrs:
                    addr = str(addrs[0])
                    break
            rows.append((str(pid), addr))
        return sorted(rows)

    def peer_protocols(self, peer: str | ID) -> list[str]:
        """The protocols ``peer`` announced over identify (empty until identify ran)."""
        try:
            return sorted(str(p) for p in self._host().get_peerstore().get_protocols(_parse_peer_id(peer)))
        except P2PError:
            raise
        except Exception:
            return []

    async def ping(self, peer: str | ID, timeout: float = CONNECT_TIMEOUT_S) -> float:
        """One ``/ipfs/ping/1.0.0`` round trip to a connected peer, in seconds."""
        data = os.urandom(32)
        with trio.fail_after(timeout):
            stream = await self.new_stream(peer, [str(PING_PROTOCOL)])
            try:
                start = time.perf_counter()
                await stream.write(data)
                got = b""
                while len(got) < 32:
                    chunk = await stream.read(32 - len(got))
                    if not chunk:
                        break
                    got += chunk
                rtt = time.perf_counter() - start
            finally:
                await stream.close()
        if got != data:
            raise P2PError(f"ping to {peer}: reply does not echo the payload")
        return rtt

    # -- streams -----------------------------------------------------------

    async def new_stream(self, peer: str | ID, protocols: Sequence[str]) -> INetStream:
        """Open a stream to a connected (or dialable) peer speaking one of ``protocols``."""
        if not protocols:
            raise P2PError("new_stream needs at least one protocol")
        try:
            return await self._host().new_stream(_parse_peer_id(peer), [TProtocol(p) for p in protocols])
        except P2PError:
            raise
        except Exception as exc:
            raise P2PError(f"opening {list(protocols)} stream to {peer} failed: {exc}") from None

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Answer ``protocol`` with ``handler(stream)`` (a trio coroutine); identify lists it.

        May be called before or after the host starts, from any thread;
        afterwards, connected peers are told with identify/push.
        """
        if not protocol.startswith("/"):
            raise P2PError(f"protocol ID must start with '/': {protocol!r}")
        self._handlers[protocol] = handler
        if self.host is not None:
            self.host.set_stream_handler(TProtocol(protocol), handler)
            self._spawn_identify_push()

    def _spawn_identify_push(self) -> None:
        nursery, token = self._nursery, self._token
        if nursery is None or token is None:
            return

        def spawn() -> None:
            try:
                nursery.start_soon(self.push_identify)
            except RuntimeError:  # the host is stopping
                pass

        try:
            trio.lowlevel.current_task()
        except RuntimeError:  # called from another thread: hand it to the host's loop
            try:
                token.run_sync_soon(spawn)
            except trio.RunFinishedError:
                pass
            return
        spawn()

    async def push_identify(self) -> None:
        """Tell connected peers our current protocols (identify/push), e.g. after adding handlers."""
        host = self.host
        if host is None or not host.get_connected_peers():
            return
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                await push_identify_to_peers(host)
        except Exception as exc:  # a peer that cannot take the push is not our failure
            log.debug("%s host: identify push failed: %s", self.name, exc)

    # -- pubsub (cluster host) ---------------------------------------------

    def _pubsub(self) -> Pubsub:
        if not self._want_pubsub:
            raise P2PError(f"{self.name} host has no pubsub")
        if self.pubsub is None:
            raise P2PError(f"{self.name} host is not running")
        return self.pubsub

    async def subscribe(self, topic: str) -> ISubscriptionAPI:
        """Join ``topic``; ``await sub.get()`` yields messages (``.data``, ``.from_id``)."""
        return await self._pubsub().subscribe(topic)

    async def unsubscribe(self, topic: str) -> None:
        """Leave ``topic``."""
        await self._pubsub().unsubscribe(topic)

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish ``data`` (signed with our key) on ``topic``; waits while peers' queues are full."""
        if not isinstance(data, (bytes, bytearray)):
            raise P2PError(f"pubsub payload must be bytes, not {type(data).__name__}")
        await compat.publish(self._pubsub(), topic, bytes(data))

    def topic_peers(self, topic: str) -> list[str]:
        """Peers known to be subscribed to ``topic``."""
        return sorted(str(p) for p in self._pubsub().peer_topics.get(topic, ()))
