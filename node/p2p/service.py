"""``P2PService``: the asyncio face of Pinion's libp2p side (the only object the daemon calls).

It owns the bridge's trio thread and both hosts. Every method is an asyncio
coroutine (or plain function); none of them exposes a trio object. Code that
must run on the libp2p side (bitswap's stream handlers) gets the trio-side
``HostHandle`` through ``service.swarm`` / ``service.cluster`` and runs with
``await service.run_in_libp2p(fn, *args)``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio
from libp2p.peer.id import ID

from blockstore.kv import KVStore

from .bridge import TrioThread
from .hosts import AGENT_VERSION, CONNECT_TIMEOUT_S, DEFAULT_CLUSTER_ADDR, DEFAULT_SWARM_ADDR, HostHandle, P2PError
from .identity import load_keypair
from .peerstore import PeerBook
from .seqno import SeqnoFloor

log = logging.getLogger(__name__)

T = TypeVar("T")

SUBSCRIPTION_QUEUE_SIZE = 1024  #: messages held per asyncio subscription before the oldest is dropped


@dataclass
class P2PSettings:
    """What the hosts need from the config (see ``from_config``)."""

    swarm_privkey: str
    swarm_addrs: Sequence[str] = (DEFAULT_SWARM_ADDR,)
    cluster_privkey: str | None = None
    cluster_secret: str | None = None
    cluster_addrs: Sequence[str] = (DEFAULT_CLUSTER_ADDR,)
    cluster_bootstrap: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "P2PSettings":
        """Settings from a Pinion config dict (``Identity``, ``Addresses``, ``Cluster``)."""
        cluster = cfg["Cluster"]
        return cls(
            swarm_privkey=cfg["Identity"]["PrivKey"],
            swarm_addrs=tuple(cfg["Addresses"]["Swarm"]),
            cluster_privkey=cluster["PrivKey"] or None,
            cluster_secret=cluster["Secret"] or None,
            cluster_addrs=tuple(cfg["Addresses"]["Cluster"]),
            cluster_bootstrap=tuple(cluster["Bootstrap"]),
        )


class Subscription:
    """Messages of one cluster pubsub topic, delivered on asyncio.

    ``await sub.get()`` returns ``(sender peer ID, data)``. When the consumer
    falls ``SUBSCRIPTION_QUEUE_SIZE`` messages behind, the oldest are dropped
    and counted in ``dropped``.
    """

    def __init__(self, topic: str, maxsize: int) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize)
        self.dropped = 0
        self._scope: trio.CancelScope | None = None  # the trio pump, touched only in the trio thread

    def _deliver(self, item: tuple[str, bytes]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)

    async def get(self) -> tuple[str, bytes]:
        """The next (sender peer ID, data)."""
        return await self.queue.get()


class P2PService:
    """Both libp2p hosts behind the asyncio/trio bridge."""

    def __init__(self, settings: P2PSettings, db: KVStore | None = None) -> None:
        self.settings = settings
        self.bridge = TrioThread()
        self.swarm = HostHandle(
            "swarm",
            load_keypair(settings.swarm_privkey),
            settings.swarm_addrs,
            peer_book=PeerBook(db, "swarm") if db is not None else None,
        )
        self.cluster: HostHandle | None = None
        if settings.cluster_secret is not None:
            if not settings.cluster_privkey:
                raise P2PError("the cluster host needs Cluster.PrivKey")
            self.cluster = HostHandle(
                "cluster",
                load_keypair(settings.cluster_privkey),
                settings.cluster_addrs,
                psk=settings.cluster_secret,
                pubsub=True,
                peer_book=PeerBook(db, "cluster") if db is not None else None,
                seqno_floor=SeqnoFloor(db, "cluster") if db is not None else None,
                learn_peers=True,  # only cluster members (who hold the secret) can connect
            )
        self._subscriptions: list[Subscription] = []
        self._services: list[tuple[trio.CancelScope, trio.Event]] = []
        self._info: dict[str, dict[str, list[str]]] = {}

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Start the trio thread and both hosts; returns once they listen."""
        self.bridge.start(asyncio.get_running_loop())
        try:
            await self.bridge.run(self._start_hosts)
        except BaseException:
            await self.bridge.aclose()
            raise
        await self._refresh_info()
        for addr in self.settings.cluster_bootstrap:
            self.bridge.start_soon(self._bootstrap_one, addr)

    async def _start_hosts(self) -> None:
        await self.bridge.start_service(self.swarm.serve)
        if self.cluster is not None:
            await self.bridge.start_service(self.cluster.serve)

    async def _bootstrap_one(self, addr: str) -> None:
        assert self.cluster is not None
        try:
            await self.cluster.connect(addr)
        except P2PError as exc:
            log.warning("cluster bootstrap %s: %s", addr, exc)

    async def stop(self) -> None:
        """Stop both hosts and the trio thread (idempotent)."""
        if self.bridge.running:
            try:
                await self.bridge.run(self._stop_hosts)
            except Exception:
                log.exception("stopping the libp2p hosts failed")
        await self.bridge.aclose()

    async def _stop_hosts(self) -> None:
        for scope, _ in self._services:
            scope.cancel()
        with trio.move_on_after(5):
            for _, done in self._services:
                await done.wait()
        async with trio.open_nursery() as nursery:  # both at once: closing connections takes a while
            if self.cluster is not None:
                nursery.start_soon(self.cluster.stop)
            nursery.start_soon(self.swarm.stop)

    async def __aenter__(self) -> "P2PService":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run_in_libp2p(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a trio coroutine function on the libp2p side; for code built on ``HostHandle``."""
        return await self.bridge.run(async_fn, *args)

    async def start_libp2p_service(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Start a long-lived trio service next to the hosts (e.g. ``bitswap.Bitswap(...).run``).

        ``async_fn(*args, task_status=...)`` runs in the trio thread until ``stop()``,
        which cancels it before the hosts close. Returns what it passes to
        ``task_status.started()``; raises what it raises before that.
        """

        async def scoped(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            done = trio.Event()
            try:
                with trio.CancelScope() as scope:
                    self._services.append((scope, done))
                    await async_fn(*args, task_status=task_status)
            finally:
                done.set()

        started = await self.bridge.run(self.bridge.start_service, scoped)
        for handle in (self.swarm, self.cluster):
            if handle is not None:  # the service may have added protocols: tell connected peers
                self.bridge.start_soon(handle.push_identify, name=f"identify-push:{handle.name}")
        await self._refresh_info()
        return started

    async def _refresh_info(self) -> None:
        handles = {"swarm": self.swarm} | ({"cluster": self.cluster} if self.cluster is not None else {})

        async def collect() -> dict[str, dict[str, list[str]]]:
            return {k: {"Addresses": h.listen_addrs(), "Protocols": h.protocols()} for k, h in handles.items()}

        self._info = await self.bridge.run(collect)

    def peer_info(self, which: str = "swarm") -> dict[str, Any]:
        """Synchronous snapshot ``{"ID", "Addresses", "Protocols"}`` (as of start / the last service start)."""
        handle = self._handle(which)
        info = self._info.get(which, {"Addresses": [], "Protocols": []})
        return {"ID": handle.peer_id, "Addresses": list(info["Addresses"]), "Protocols": list(info["Protocols"])}

    # -- swarm: what `pinion id` / `swarm connect|peers` need -------------

    def _handle(self, which: str) -> HostHandle:
        if which == "swarm":
            return self.swarm
        if which == "cluster" and self.cluster is not None:
            return self.cluster
        raise P2PError(f"no {which} host")

    async def id(self, which: str = "swarm") -> dict[str, Any]:
        """kubo-shaped identity: ID, PublicKey (base64 protobuf), Addresses, AgentVersion, Protocols."""
        handle = self._handle(which)

        async def collect() -> tuple[list[str], list[str]]:
            return handle.listen_addrs(), handle.protocols()

        addrs, protocols = await self.bridge.run(collect)
        return {
            "ID": handle.peer_id,
            "PublicKey": base64.b64encode(handle.keypair.public_key.serialize()).decode(),
            "Addresses": addrs,
            "AgentVersion": AGENT_VERSION,
            "Protocols": protocols,
        }

    async def connect(self, addr: str, which: str = "swarm", timeout: float = CONNECT_TIMEOUT_S) -> str:
        """Dial ``/…/p2p/<id>`` on a host; returns the peer ID; raises P2PError (also after ``timeout`` s)."""
        return await self.bridge.run(self._handle(which).connect, addr, timeout)

    async def peers(self, which: str = "swarm") -> list[dict[str, str]]:
        """Connected peers: ``[{"Peer": id, "Addr": multiaddr}]``."""
        handle = self._handle(which)

        async def collect() -> list[tuple[str, str]]:
            return handle.peers()

        return [{"Peer": p, "Addr": a} for p, a in await self.bridge.run(collect)]

    async def known_peers(self, which: str = "swarm") -> list[str]:
        """Peers a host knows: those of its peer book (redialled when they drop) and those connected now."""
        handle = self._handle(which)

        async def collect() -> list[str]:
            return [p for p, _a in handle.peers()]

        known = set(await self.bridge.run(collect))
        if handle.peer_book is not None:
            known.update(await asyncio.get_running_loop().run_in_executor(None, handle.peer_book.known))
        return sorted(known)

    async def disconnect(self, peer: str, which: str = "swarm") -> None:
        """Close our connections to ``peer``."""
        await self.bridge.run(self._handle(which).disconnect, peer)

    async def ping(self, peer: str, which: str = "swarm") -> float:
        """One libp2p ping round trip to a connected peer, in seconds."""
        return await self.bridge.run(self._handle(which).ping, peer)

    # -- cluster pubsub ----------------------------------------------------

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish on the cluster host's gossipsub ``topic``."""
        await self.bridge.run(self._handle("cluster").publish, topic, data)

    async def subscribe(self, topic: str, maxsize: int = SUBSCRIPTION_QUEUE_SIZE) -> Subscription:
        """Join a cluster gossipsub topic; messages arrive on the returned ``Subscription``.

        One subscription per topic at a time (``unsubscribe`` it to subscribe again).
        """
        handle = self._handle("cluster")
        if any(s.topic == topic for s in self._subscriptions):
            raise P2PError(f"already subscribed to {topic!r}")
        sub = Subscription(topic, maxsize)

        async def pump(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                sub._scope = scope
                trio_sub = await handle.subscribe(topic)
                task_status.started()
                while True:
                    msg = await trio_sub.get()
                    self.bridge.call_soon_asyncio(sub._deliver, (_sender(msg.from_id), bytes(msg.data)))

        self._subscriptions.append(sub)
        try:
            await self.bridge.run(self.bridge.start_service, pump)
        except BaseException:
            self._subscriptions.remove(sub)
            raise
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Leave ``sub``'s topic and stop delivering to it (idempotent)."""
        if sub not in self._subscriptions:
            return
        self._subscriptions.remove(sub)
        handle = self._handle("cluster")

        async def leave() -> None:
            if sub._scope is not None:
                sub._scope.cancel()
            await handle.unsubscribe(sub.topic)

        await self.bridge.run(leave)


def _sender(from_id: bytes) -> str:
    """The base58 peer ID of a pubsub message's ``from`` field ("" when absent or malformed)."""
    if not from_id:
        return ""
    try:
        return ID(from_id).to_base58()
    except Exception:
        return ""
