"""Fixes for py-libp2p 0.8.1 that Pinion needs (each defect measured by a test
in ``tests/node/p2p/test_compat.py``; connect and gossipsub figures by ``benchmarks/bench_p2p.py``).

Every fix lives here, and each has a test in ``tests/node/p2p/test_compat.py`` that
asserts the upstream defect is still present, so the test fails (and tells us
to drop the fix) when upstream changes. ``libp2p==0.8.1`` is pinned.

1. **pnet**: upstream encrypts private-network traffic with Salsa20 and an
   8-byte nonce; the spec (go-libp2p, js-libp2p, kubo, IPFS Cluster) uses
   XSalsa20 with a 24-byte nonce. ``XSalsaPskConn`` implements the spec and
   ``install()`` makes the swarm use it for every host with a ``psk``.
2. **connect latency**: every dial waits 250 ms ("happy eyeballs") unless the
   peer already has ``max_connections_per_peer`` connections (default 3), so
   our hosts use ``connection_config()`` with ``max_connections_per_peer=1``.
3. **no plaintext**: the default host accepts ``/plaintext/2.0.0`` and
   ``/secio/1.0.0``; ``security_options()`` offers Noise only.
4. **muxer**: ``muxer_options()`` offers Yamux only (mplex is 8x slower and
   breaks js ping).
5. **gossipsub**: the default heartbeat is 120 s and "spam protection" drops
   anything above 10 msgs/s per forwarder and topic; ``gossipsub_router()``
   uses a 1 s heartbeat and no spam protection, and ``install()`` raises the
   32-entry per-peer outbound queue and per-subscription channel to
   ``PUBSUB_QUEUE_SIZE``; ``publish()`` gives publishers the backpressure
   upstream lacks (it waits while a peer's queue is above
   ``PUBSUB_PUBLISH_HIGH_WATER``), so bursts are not dropped silently.
6. **auto-connector**: the swarm dials peerstore peers until it holds 150
   connections; ``disable_auto_connector(host)`` turns that off.
7. **agent version**: identify announces ``py-libp2p/0.8.1``; ``install()``
   makes it announce ``AGENT_VERSION`` (``pinion/<version>``).
8. **root-logger noise**: a few upstream modules log on the *root* logger
   (``Error getting transport addresses: 'peer ID not found'``), outside the
   ``libp2p`` logger tree an operator can tune; ``install()`` filters those
   records out of the root logger. Importing py-libp2p also stops its own
   ``libp2p`` logger from propagating (its ``LIBP2P_DEBUG`` switch), and
   leaves it without a handler: its warnings reached stderr through
   logging's last-resort handler, without time or level. ``install()`` lets
   them propagate to the daemon's handler (``node/logsetup.py``).
9. **pubsub thread leak**: ``Pubsub`` starts a sweeper thread for its
   seen-messages cache and never stops it; ``close_pubsub`` does.
10. **pubsub sequence numbers repeat after a restart**: upstream starts the
   counter at the unix time in *seconds* and adds one per message, so a peer
   that published more messages than seconds went by, then restarted, reuses
   sequence numbers. Other peers key their seen-messages cache (120 s, renewed
   on every hit) and gossipsub's equivocation check on (sender, seqno): the
   restarted peer's messages are dropped as duplicates ("Equivocation
   detected") for minutes. ``use_monotonic_seqnos`` starts at the nanosecond
   clock (as go-libp2p-pubsub does) and above a persisted floor, so a seqno is
   never reused, even when the clock steps back.
11. **no flood publishing**: upstream sends a peer's own messages to its mesh
   only. A peer that left the topic (a daemon stopping) is kept in back-off;
   when it comes back its GRAFTs are refused and the back-off extended, and
   peers in back-off get neither mesh traffic nor gossip: the two exchange
   nothing for a minute or more. ``FloodPublishGossipSub`` also sends our own
   messages to every peer subscribed to the topic, as go-libp2p-pubsub does by
   default (``WithFloodPublish``, on in IPFS Cluster); forwarded messages still
   follow the mesh.
12. **no identify on reconnection**: upstream identifies a peer once and skips
   it on later connections while its protocols are cached, so a peer that
   restarted on a new address (or with new protocols) is never re-identified
   and its new listen addresses never learnt. ``identify_peer`` runs the
   identify exchange on demand (the hosts run it on every new connection).
13. **no keepalive**: upstream's yamux pings every 30 s to measure the RTT but
   never closes a connection whose ping goes unanswered, so a connection to a
   peer cut off by a partition stays "open" until TCP gives up (~15 min); when
   the partition heals it resumes only when TCP's retransmission backoff
   allows (54 s after a 60 s partition, measured; up to 2 min). ``install()``
   replaces the loop with one that also closes the connection when a ping is
   not answered within ``KEEPALIVE_TIMEOUT_S`` (go-yamux's keepalive does the
   same), so both ends drop it and redial a fresh connection.
14. **pubsub stuck on a dead connection**: when a peer reconnects while the
   old connection is not yet known dead, upstream keeps the peer's pubsub
   stream on the old connection (the new one is skipped: "already has a pubsub
   stream"); when the old one closes, the peer is not removed (it still has a
   connection) and its sending loop has quit on the write error: nothing is
   sent to that peer again. ``repair_pubsub_peers`` (run every second by the
   hosts) hands such peers back to pubsub, which re-registers them on their
   live connection (a fresh stream and hello).
15. **a signature check per pubsub RPC**: every pubsub RPC carries the
   sender's signed peer record, and upstream verifies its Ed25519 signature
   (and rewrites the peerstore) on each one: 11 % of a cluster peer's libp2p
   thread while the pinset syncs (py-spy). The record only changes when the
   sender's addresses do; ``install()`` makes pubsub verify a peer's record
   when it differs from the last one verified for that peer, or when that
   check is ``SIGNED_RECORD_RECHECK_S`` old (the peerstore entry is renewed).
16. **a failed address blocks the peer's other addresses**: when a dial fails,
   upstream's negative cache refuses every dial to that *peer* for 60 s
   ("recently failed all addresses"), whatever address it is given. A peer
   whose first remembered address is stale cannot be reached at its live one,
   and the peer book's redial every 30 s renews the mark: a cluster peer that
   restarted on a new address never rejoined. Our dials name one address each
   and are paced by their callers, so ``forget_failed_dials`` clears the mark
   before each.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable

import libp2p
import trio
from Crypto.Cipher import Salsa20
from libp2p.abc import IHost, IRawConnection
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL
from libp2p.identity.identify.pb.identify_pb2 import Identify as IdentifyMsg
from libp2p.identity.update import update_peerstore_from_identify
from libp2p.network.config import ConnectionConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.utils import maybe_consume_signed_record as _upstream_consume_signed_record
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux import yamux as yamux_mod
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.utils.varint import read_length_prefixed_protobuf

from ..errors import NodeError


def _package_version() -> str:
    try:
        return importlib.metadata.version("pinion")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


PNET_NONCE_SIZE = 24  #: XSalsa20 nonce, sent in clear by each side before its first byte
PSK_SIZE = 32  #: the private-network key, in bytes
PUBSUB_QUEUE_SIZE = 1024  #: per-peer outbound RPCs and per-subscription messages held before dropping
PUBSUB_PUBLISH_HIGH_WATER = 256  #: publish() waits while a peer's outbound queue holds this many RPCs
PUBSUB_PUBLISH_MAX_WAIT_S = 5.0  #: ...but no longer: a stuck peer must not stall publishing for all
GOSSIPSUB_PROTOCOLS = ("/meshsub/1.2.0", "/meshsub/1.1.0", "/meshsub/1.0.0")  #: what go-libp2p-pubsub (IPFS Cluster) speaks
AGENT_VERSION = f"pinion/{_package_version()}"  #: identify's agent version
GOSSIPSUB_HEARTBEAT_S = 1  #: mesh maintenance period (upstream default: 120 s)
KEEPALIVE_INTERVAL_S = 10.0  #: a yamux ping on every connection this often...
KEEPALIVE_TIMEOUT_S = 15.0  #: ...and a connection whose ping is not answered within this is closed
CLOSE_TIMEOUT_S = 30.0  #: closing a dead connection (session, then the swarm's cleanup) takes at most this
SIGNED_RECORD_RECHECK_S = 600.0  #: a peer's unchanged signed record is verified again after this
SIGNED_RECORD_PEERS = 4096  #: peers whose last verified record is remembered (forgotten all at once beyond)
SEQNO_RESERVE = 1 << 32  #: seqnos a run may use before it moves the persisted floor ahead again
SEQNO_MAX = (1 << 64) - 1  #: seqnos are 8-byte big-endian unsigned integers on the wire

_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
_MASK = 0xFFFFFFFF


class PnetError(NodeError, ValueError):
    """A malformed private-network key or a broken pnet handshake."""


def parse_psk(secret: str | bytes) -> bytes:
    """The 32-byte private-network key from 64 hex characters (or 32 raw bytes).

    Raises PnetError naming the problem for anything else.
    """
    if isinstance(secret, bytes):
        if len(secret) != PSK_SIZE:
            raise PnetError(f"private-network key is {len(secret)} bytes, expected {PSK_SIZE}")
        return secret
    if not isinstance(secret, str):
        raise PnetError(f"private-network key must be a hex string, not {type(secret).__name__}")
    text = secret.strip()
    if len(text) != 2 * PSK_SIZE:
        raise PnetError(f"private-network key is {len(text)} hex characters, expected {2 * PSK_SIZE}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise PnetError("private-network key is not hexadecimal") from None


def _rotl(v: int, n: int) -> int:
    return ((v << n) | (v >> (32 - n))) & _MASK


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    """HSalsa20: derive a 32-byte subkey from a 32-byte key and a 16-byte input."""
    if len(key) != 32 or len(nonce16) != 16:
        raise PnetError("hsalsa20 needs a 32-byte key and a 16-byte input")
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", nonce16)
    x = [
        _SIGMA[0], k[0], k[1], k[2],
        k[3], _SIGMA[1], n[0], n[1],
        n[2], n[3], _SIGMA[2], k[4],
        k[5], k[6], k[7], _SIGMA[3],
    ]  # fmt: skip

    def quarter(a: int, b: int, c: int, d: int) -> None:
        x[b] ^= _rotl((x[a] + x[d]) & _MASK, 7)
        x[c] ^= _rotl((x[b] + x[a]) & _MASK, 9)
        x[d] ^= _rotl((x[c] + x[b]) & _MASK, 13)
        x[a] ^= _rotl((x[d] + x[c]) & _MASK, 18)

    for _ in range(10):
        quarter(0, 4, 8, 12)
        quarter(5, 9, 13, 1)
        quarter(10, 14, 2, 6)
        quarter(15, 3, 7, 11)
        quarter(0, 1, 2, 3)
        quarter(5, 6, 7, 4)
        quarter(10, 11, 8, 9)
        quarter(15, 12, 13, 14)
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])


def xsalsa20_cipher(key: bytes, nonce24: bytes) -> Salsa20.Salsa20Cipher:
    """An XSalsa20 keystream cipher (counter 0): Salsa20 keyed by HSalsa20(key, nonce[:16])."""
    if len(nonce24) != PNET_NONCE_SIZE:
        raise PnetError(f"xsalsa20 nonce must be {PNET_NONCE_SIZE} bytes, got {len(nonce24)}")
    return Salsa20.new(key=hsalsa20(key, nonce24[:16]), nonce=nonce24[16:])


class XSalsaPskConn(RawConnection):
    """A raw connection inside a libp2p private network (pnet spec: XSalsa20, 24-byte nonces).

    Each direction starts with the writer's random 24-byte nonce in clear,
    then the XSalsa20 keystream XORed over every byte.
    """

    def __init__(self, conn: RawConnection | IRawConnection, psk: bytes) -> None:
        self._conn = conn
        self._psk = parse_psk(psk)
        self.is_initiator = getattr(conn, "is_initiator", False)
        self._writer: Salsa20.Salsa20Cipher | None = None
        self._reader: Salsa20.Salsa20Cipher | None = None

    async def write(self, data: bytes) -> None:
        """Encrypt and write ``data``; the first call sends our nonce first."""
        if self._writer is None:
            nonce = os.urandom(PNET_NONCE_SIZE)
            self._writer = xsalsa20_cipher(self._psk, nonce)
            await self._conn.write(nonce + self._writer.encrypt(data))
            return
        await self._conn.write(self._writer.encrypt(data))

    async def _read_nonce(self) -> bytes:
        nonce = b""
        while len(nonce) < PNET_NONCE_SIZE:
            chunk = await self._conn.read(PNET_NONCE_SIZE - len(nonce))
            if not chunk:
                raise PnetError(f"connection closed after {len(nonce)} of {PNET_NONCE_SIZE} pnet nonce bytes")
            nonce += chunk
        return nonce

    async def read(self, n: int | None = None) -> bytes:
        """Read and decrypt up to ``n`` bytes; the first call reads the peer's nonce."""
        if self._reader is None:
            self._reader = xsalsa20_cipher(self._psk, await self._read_nonce())
        data = await self._conn.read(n)
        if not data:
            return b""
        return self._reader.decrypt(data)

    async def close(self) -> None:
        """Close the underlying connection."""
        await self._conn.close()

    def get_remote_address(self) -> tuple[str, int] | None:
        """The peer's (host, port), from the underlying connection."""
        return self._conn.get_remote_address()

    def get_transport_addresses(self) -> list:
        """The underlying connection's transport multiaddrs."""
        return self._conn.get_transport_addresses()

    def get_connection_type(self):  # type: ignore[no-untyped-def]
        """The underlying connection's type (direct, relayed)."""
        return self._conn.get_connection_type()


class RootLogFromLibp2p(logging.Filter):
    """Drops records that py-libp2p code logs straight on the root logger."""

    _prefix = os.path.dirname(os.path.abspath(libp2p.__file__)) + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for a root-logger record emitted from inside the libp2p package."""
        return not (record.name == "root" and record.pathname.startswith(self._prefix))


def new_xsalsa_protected_conn(conn: RawConnection | IRawConnection, psk: str) -> XSalsaPskConn:
    """Drop-in for ``libp2p.security.pnet.protector.new_protected_conn`` speaking the pnet spec."""
    return XSalsaPskConn(conn, parse_psk(psk))


def install() -> None:
    """Apply the module-level fixes to py-libp2p (idempotent, process-wide).

    - the swarm wraps private-network connections in ``XSalsaPskConn``;
    - pubsub's per-peer outbound queue and per-subscription channel hold
      ``PUBSUB_QUEUE_SIZE`` entries instead of 32;
    - identify announces ``AGENT_VERSION``;
    - yamux closes a connection whose keepalive ping goes unanswered;
    - records py-libp2p logs directly on the root logger are dropped, and its own
      logger tree propagates to the daemon's handler;
    - pubsub verifies a peer's signed record once per change (fix 15).
    """
    import libp2p.network.swarm as swarm_mod
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.pubsub.rpc_queue import RpcQueue

    import libp2p.identity.identify.identify as identify_mod

    swarm_mod.new_protected_conn = new_xsalsa_protected_conn
    identify_mod.AGENT_VERSION = AGENT_VERSION
    root = logging.getLogger()
    if not any(isinstance(f, RootLogFromLibp2p) for f in root.filters):
        root.addFilter(RootLogFromLibp2p())
    logging.getLogger("libp2p").propagate = True
    Yamux._measure_rtt_loop = _rtt_and_keepalive_loop  # type: ignore[method-assign]
    pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE = PUBSUB_QUEUE_SIZE
    if not isinstance(pubsub_mod.RpcQueue, functools.partial):
        pubsub_mod.RpcQueue = functools.partial(RpcQueue, max_size=PUBSUB_QUEUE_SIZE)
    import libp2p.pubsub.floodsub as floodsub_mod
    import libp2p.pubsub.gossipsub as gossipsub_mod

    for mod in (pubsub_mod, floodsub_mod, gossipsub_mod):
        mod.maybe_consume_signed_record = consume_signed_record_once  # type: ignore[attr-defined]


#: peer ID bytes -> (the signed record last verified for it, monotonic time of that check)
_verified_records: dict[bytes, tuple[bytes, float]] = {}


def consume_signed_record_once(msg: rpc_pb2.RPC, host: IHost, peer_id: ID) -> bool:
    """Upstream's ``maybe_consume_signed_record`` (verify the pubsub RPC's signed peer record and
    store it in the peerstore), skipped when ``peer_id`` sent these very bytes before and they
    were verified less than ``SIGNED_RECORD_RECHECK_S`` ago (fix 15)."""
    if not msg.HasField("senderRecord"):
        return True
    record = msg.senderRecord
    key = peer_id.to_bytes()
    seen = _verified_records.get(key)
    now = time.monotonic()
    if seen is not None and seen[0] == record and now - seen[1] < SIGNED_RECORD_RECHECK_S:
        return True
    ok = _upstream_consume_signed_record(msg, host, peer_id)
    if ok:
        if len(_verified_records) >= SIGNED_RECORD_PEERS:
            _verified_records.clear()
        _verified_records[key] = (record, now)
    return ok


def forget_failed_dials(host: IHost, peer_id: ID) -> None:
    """Clear upstream's "recently failed" mark of ``peer_id`` so the next dial is made (fix 16)."""
    host.get_network().unblock_peer(peer_id)  # type: ignore[attr-defined]


async def _rtt_and_keepalive_loop(self: Yamux) -> None:
    """Replaces ``Yamux._measure_rtt_loop``: a ping every ``KEEPALIVE_INTERVAL_S`` measures the
    RTT as upstream does (the pong handler updates it) and, unlike upstream, a ping not
    answered (or not even written) within ``KEEPALIVE_TIMEOUT_S`` closes the connection."""
    await trio.sleep(0.5)
    while not self.event_shutting_down.is_set():
        answered = False
        with trio.move_on_after(KEEPALIVE_TIMEOUT_S):
            try:
                self._ping_id += 1
                self._ping_event = trio.Event()
                header = struct.pack(yamux_mod.YAMUX_HEADER_FORMAT, 0, yamux_mod.TYPE_PING, yamux_mod.FLAG_SYN, 0, self._ping_id)
                await self._write_frame(header)
                self._ping_sent_time = trio.current_time()
                await self._ping_event.wait()
                answered = True
            except Exception:  # the connection is closing: nothing left to watch
                return
        if not answered:
            if self.event_shutting_down.is_set():
                return
            logging.getLogger("libp2p.keepalive").info(
                "closing the connection to %s: no answer to a ping in %s s", self.peer_id, KEEPALIVE_TIMEOUT_S
            )
            # shielded: the close ends in the swarm's cleanup (remove the connection, tell
            # pubsub), which must not be cut short when the session's own tasks are cancelled
            with trio.CancelScope(shield=True):
                # the socket first: a writer stuck on a full send buffer (the peer is gone)
                # holds the write lock that close() needs to send GO_AWAY
                with trio.move_on_after(KEEPALIVE_TIMEOUT_S):
                    try:
                        await self.secured_conn.close()
                    except Exception:
                        pass
                with trio.move_on_after(CLOSE_TIMEOUT_S):
                    await self.close()
            return
        with trio.move_on_after(KEEPALIVE_INTERVAL_S):
            await self.event_shutting_down.wait()


def connection_config() -> ConnectionConfig:
    """Connection settings without the 250 ms dial delay (one connection per peer).

    """
    return ConnectionConfig(max_connections_per_peer=1)


async def _no_auto_dial() -> None:
    """Stands in for ``AutoConnector.maybe_connect``: Pinion dials only whom it decides to."""


def disable_auto_connector(host: IHost) -> None:
    """Stop the swarm from dialling every peerstore peer to reach its connection target.

    Upstream's auto-connector aims at the middle of [low, high] watermarks
    (150 connections even with ``low_watermark=0``), so no ConnectionConfig turns
    it off. Pinion redials the peers of its peer book itself.
    """
    host.get_network().auto_connector.maybe_connect = _no_auto_dial  # type: ignore[attr-defined, method-assign]


async def publish(pubsub: Pubsub, topic: str, data: bytes) -> None:
    """``pubsub.publish`` with backpressure: wait (up to ``PUBSUB_PUBLISH_MAX_WAIT_S``)
    while any peer's outbound queue is at ``PUBSUB_PUBLISH_HIGH_WATER`` or more."""
    with trio.move_on_after(PUBSUB_PUBLISH_MAX_WAIT_S):
        while any(len(q) >= PUBSUB_PUBLISH_HIGH_WATER for q in list(pubsub.peer_queues.values())):
            await trio.sleep(0.002)
    await pubsub.publish(topic, data)


def use_monotonic_seqnos(
    pubsub: Pubsub, floor: int = 0, persist: Callable[[int], None] | None = None
) -> int:
    """Make ``pubsub`` number its messages so that no number repeats across restarts; returns the first one.

    The counter starts at ``max(time.time_ns(), floor)``: nanoseconds grow far
    faster than any peer publishes, so a restart starts above every seqno of
    the runs before (go-libp2p-pubsub also seeds its counter from the
    nanosecond clock). ``persist(limit)`` (when given) stores a floor above
    every seqno this run will use before it uses it: called once now and again
    every ``SEQNO_RESERVE`` messages, so a clock that steps back cannot bring
    old numbers back either.
    """
    start = max(time.time_ns(), int(floor))
    if start + SEQNO_RESERVE > SEQNO_MAX:
        raise ValueError(f"pubsub seqno floor {floor} leaves no room below 2**64")
    limit = start + SEQNO_RESERVE
    if persist is not None:
        persist(limit)
    pubsub.counter = start

    def next_seqno() -> bytes:
        nonlocal limit
        pubsub.counter += 1
        if pubsub.counter >= limit:
            limit = min(pubsub.counter + SEQNO_RESERVE, SEQNO_MAX)
            if persist is not None:
                persist(limit)
        return pubsub.counter.to_bytes(8, "big")

    pubsub._next_seqno = next_seqno  # type: ignore[method-assign]
    return start


IDENTIFY_MAX_BYTES = 64 * 1024  #: largest identify record accepted from a peer


async def identify_peer(host: IHost, peer: ID) -> IdentifyMsg:
    """Ask the connected ``peer`` for its identify record now (``/ipfs/id/1.0.0``),
    store what it says in the host's peerstore (protocols, listen addresses,
    public key checked against the peer ID) and return it."""
    stream = await host.new_stream(peer, [IDENTIFY_PROTOCOL])
    try:
        data = await read_length_prefixed_protobuf(stream, use_varint_format=True, max_length=IDENTIFY_MAX_BYTES)
    finally:
        await stream.close()
    msg = IdentifyMsg()
    msg.ParseFromString(data)
    await update_peerstore_from_identify(host.get_peerstore(), peer, msg)
    return msg


def repair_pubsub_peers(pubsub: Pubsub) -> list[ID]:
    """Re-register the pubsub peers whose stream lives on a closed connection; returns them.

    ``_handle_dead_peer`` forgets the dead stream and, when the peer is still connected,
    opens a new one on a live connection (with our subscriptions), as upstream does when
    a stream dies on a connection that stays up.
    """
    stale = [
        peer
        for peer, stream in list(pubsub.peers.items())
        if getattr(getattr(stream, "muxed_conn", None), "is_closed", False)
    ]
    for peer in stale:
        topics = [topic for topic, peers in pubsub.peer_topics.items() if peer in peers]
        pubsub._handle_dead_peer(peer)  # forgets its subscriptions too
        if pubsub._peer_is_connected(peer):
            # still subscribed: it announced its topics on the stream it opened on the live
            # connection, and will not announce them again
            for topic in topics:
                pubsub.handle_subscription(peer, rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic))
    return stale


def close_pubsub(pubsub: Pubsub) -> None:
    """Stop the sweeper thread of pubsub's seen-messages cache (upstream never stops it)."""
    pubsub.seen_messages.stop()


def security_options(keypair: KeyPair) -> dict[TProtocol, NoiseTransport]:
    """Noise only: no plaintext, no secio."""
    return {NOISE_PROTOCOL_ID: NoiseTransport(keypair, noise_privkey=new_x25519_key_pair().private_key)}


def muxer_options() -> dict[TProtocol, type[Yamux]]:
    """Yamux only."""
    return {TProtocol(YAMUX_PROTOCOL_ID): Yamux}


class FloodPublishGossipSub(GossipSub):
    """GossipSub that sends the messages we publish to every peer subscribed to the topic
    (flood publishing, go-libp2p-pubsub's default), not only to our mesh peers."""

    def _get_peers_to_send(
        self, topic_ids: Iterable[str], msg_forwarder: ID, origin: ID, msg_id: bytes | None = None
    ) -> Iterable[ID]:
        topics = list(topic_ids)
        peers = set(super()._get_peers_to_send(topics, msg_forwarder, origin, msg_id))
        pubsub = self.pubsub
        if pubsub is not None and origin == pubsub.my_id:
            for topic in topics:
                peers.update(p for p in pubsub.peer_topics.get(topic, ()) if p in self.peer_protocol)
            peers.discard(origin)
        return peers


def gossipsub_router() -> GossipSub:
    """A GossipSub router that does not drop traffic: 1 s heartbeat, no spam protection,
    our own messages flooded to every subscribed peer."""
    return FloodPublishGossipSub(
        protocols=[TProtocol(p) for p in GOSSIPSUB_PROTOCOLS],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=GOSSIPSUB_HEARTBEAT_S,
        heartbeat_initial_delay=0.1,
        spam_protection_enabled=False,
    )
