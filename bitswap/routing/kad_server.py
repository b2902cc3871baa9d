"""Answers to DHT requests (server mode), sans-I/O: a request in, a response (or nothing) out.

What each request gets (kad-dht spec, https://github.com/libp2p/specs/blob/master/kad-dht/README.md,
and go-libp2p-kad-dht's handlers, which kubo peers run):

- FIND_NODE(key): the k peers of our table closest to ``sha256(key)``, not the
  sender, each with its addresses (peers without any are left out); the
  target itself first when it is us or a peer whose addresses we know.
- GET_PROVIDERS(multihash): up to ``max_providers_returned`` unexpired
  provider records from the store, plus the closer peers as for FIND_NODE.
- ADD_PROVIDER(multihash, providerPeers): a provider entry is stored only
  when its ID is the sender's (nobody can announce for someone else) and it
  carries at least one address; others are skipped. No response (go and js
  send none either; senders do not wait for one).
- GET_VALUE(key): the closer peers and no record: Pinion keeps no value
  records (IPNS, public keys), so a lookup goes on to other peers.
- PUT_VALUE: refused (:class:`KadRequestError`, the shell resets the stream),
  because storing IPNS/public-key records needs their validators, which
  Pinion does not have yet: accepting a record it cannot validate would let
  anyone plant values.
- PING: answered with PING (deprecated in the spec, still sent by old peers).

A malformed request raises KadRequestError; the spec says the stream is then reset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .kad_keyspace import kad_point
from .kad_message import (
    ADD_PROVIDER,
    CONNECTED,
    FIND_NODE,
    GET_PROVIDERS,
    GET_VALUE,
    MESSAGE_TYPES,
    NOT_CONNECTED,
    PING,
    PUT_VALUE,
    KadMessage,
    KadMessageError,
    Peer,
    check_peer_id,
)
from .kad_table import RoutingTable
from .providers_store import STORED, RENEWED, ProviderStore, multihash_len
from ..errors import BadMessage

__all__ = ["KadRequestError", "ServerStats", "KadServer", "MAX_PROVIDER_KEY_SIZE", "check_provider_key"]

MAX_PROVIDER_KEY_SIZE = 80  #: longest multihash accepted in ADD_PROVIDER / GET_PROVIDERS (go's limit)

#: (addresses, connected) of a peer, from the host's peer store
PeerInfoFn = Callable[[bytes], tuple[list[bytes], bool]]


class KadRequestError(BadMessage):
    """A request that is malformed or not supported: the shell resets the stream."""


def check_provider_key(key: bytes) -> bytes:
    """Raise KadRequestError unless ``key`` is a whole multihash of at most MAX_PROVIDER_KEY_SIZE bytes."""
    if not key:
        raise KadRequestError("missing key")
    if len(key) > MAX_PROVIDER_KEY_SIZE:
        raise KadRequestError(f"provider key of {len(key)} bytes exceeds {MAX_PROVIDER_KEY_SIZE}")
    try:
        if multihash_len(key) != len(key):
            raise ValueError("trailing bytes")
    except ValueError as exc:
        raise KadRequestError(f"provider key is not a multihash: {exc}") from None
    return key


@dataclass
class ServerStats:
    """Counters of requests served."""

    requests: dict[str, int] = field(default_factory=lambda: {name: 0 for name in MESSAGE_TYPES.values()})
    records_stored: int = 0
    records_renewed: int = 0
    records_refused: int = 0  #: over a store limit
    providers_rejected: int = 0  #: entries for another peer, or without addresses
    bad_requests: int = 0


class KadServer:
    """Server-side request handling over a routing table and a provider store."""

    def __init__(
        self,
        local: bytes,
        table: RoutingTable,
        store: ProviderStore,
        peer_info: PeerInfoFn,
        *,
        addr_filter: Callable[[list[bytes]], list[bytes]] = lambda addrs: addrs,
        max_providers_returned: int = 20,
    ) -> None:
        self.local = local
        self.table = table
        self.store = store
        self.peer_info = peer_info
        self.addr_filter = addr_filter
        self.max_providers_returned = max_providers_returned
        self.stats = ServerStats()

    # ----------------------------------------------------------------- helpers
    def _peer(self, pid: bytes) -> Peer | None:
        addrs, connected = self.peer_info(pid)
        addrs = self.addr_filter(addrs)
        if not addrs:
            return None
        return Peer(pid, addrs, CONNECTED if connected else NOT_CONNECTED)

    def closer_peers(self, key: bytes, sender: bytes) -> list[Peer]:
        """The table's k closest peers to ``key`` that are not ``sender``, with addresses."""
        out = []
        for pid in self.table.closest(kad_point(key), exclude=sender):
            peer = self._peer(pid)
            if peer is not None:
                out.append(peer)
        return out

    # ----------------------------------------------------------------- requests
    def handle(self, sender: bytes, msg: KadMessage, now: float) -> KadMessage | None:
        """The response to ``msg`` from ``sender`` (None when the request has none)."""
        return self.handle_batch(sender, [msg], now)[0]

    def handle_batch(self, sender: bytes, msgs: Sequence[KadMessage], now: float) -> list[KadMessage | None]:
        """Responses to several requests read together from one stream, in order.

        The ADD_PROVIDERs among them are stored in one write batch. At the
        first bad request, what came before it is still applied, then
        KadRequestError is raised.
        """
        out: list[KadMessage | None] = []
        adds: list[tuple[bytes, bytes, list[bytes]]] = []
        try:
            for msg in msgs:
                self.stats.requests[MESSAGE_TYPES[msg.type]] += 1
                if msg.type == ADD_PROVIDER:
                    item = self._add_provider(sender, msg)
                    if item is not None:
                        adds.append(item)
                    out.append(None)
                else:
                    out.append(self._answer(sender, msg, now))
        except KadRequestError:
            self.stats.bad_requests += 1
            raise
        finally:
            if adds:
                self._store(adds, now)
        return out

    def _store(self, adds: list[tuple[bytes, bytes, list[bytes]]], now: float) -> None:
        for outcome in self.store.add_many(adds, now):
            if outcome == STORED:
                self.stats.records_stored += 1
            elif outcome == RENEWED:
                self.stats.records_renewed += 1
            else:
                self.stats.records_refused += 1

    def _add_provider(self, sender: bytes, msg: KadMessage) -> tuple[bytes, bytes, list[bytes]] | None:
        key = check_provider_key(msg.key)
        for entry in msg.providers:
            if entry.id != sender:
                self.stats.providers_rejected += 1
                continue
            addrs = self.addr_filter(entry.addrs)
            if not addrs:
                self.stats.providers_rejected += 1
                continue
            return key, sender, addrs
        return None

    def _answer(self, sender: bytes, msg: KadMessage, now: float) -> KadMessage:
        t = msg.type
        if t == FIND_NODE:
            if not msg.key:
                raise KadRequestError("FIND_NODE without a key")
            closer = self.closer_peers(msg.key, sender)
            target = None
            if msg.key == self.local:
                target = self._peer(self.local)
            elif msg.key != sender:
                try:
                    check_peer_id(msg.key)
                    target = self._peer(msg.key)
                except KadMessageError:
                    target = None
            if target is not None:
                closer = [target] + [p for p in closer if p.id != target.id][: self.table.k - 1]
            return KadMessage(FIND_NODE, key=msg.key, closer=closer, cluster_level=msg.cluster_level)
        if t == GET_PROVIDERS:
            key = check_provider_key(msg.key)
            providers = []
            for rec in self.store.providers(key, now, self.max_providers_returned):
                _addrs, connected = self.peer_info(rec.peer)
                providers.append(Peer(rec.peer, rec.addrs, CONNECTED if connected else NOT_CONNECTED))
            return KadMessage(GET_PROVIDERS, key=key, providers=providers, closer=self.closer_peers(key, sender),
                              cluster_level=msg.cluster_level)  # fmt: skip
        if t == GET_VALUE:
            if not msg.key:
                raise KadRequestError("GET_VALUE without a key")
            return KadMessage(GET_VALUE, key=msg.key, closer=self.closer_peers(msg.key, sender), cluster_level=msg.cluster_level)
        if t == PING:
            return KadMessage(PING)
        if t == PUT_VALUE:
            raise KadRequestError("PUT_VALUE is not supported: this node stores no value records")
        raise KadRequestError(f"unsupported message type {t}")  # pragma: no cover (the codec rejects unknown types)
