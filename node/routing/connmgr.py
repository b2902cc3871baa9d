"""The swarm host's connection manager: keep between a low and a high number of connections.

kubo's idea (go-libp2p ``connmgr.BasicConnMgr``): when the swarm host holds more than the high
water mark of connections, close the least useful ones until the low water mark is reached;
connections younger than the grace period and protected peers are never closed. DHT lookups
and provider dials open many short-lived connections: without this the host only grows.

- :func:`pick_trims` is the decision (sans-I/O): connections in, peers to close out.
- :class:`ConnectionManager` is the shell in the libp2p (trio) thread: it notes when each peer
  connected, checks every ``check_interval`` seconds, and closes what the decision picks
  (without forgetting the peer: a protected peer book is never touched anyway).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import INotifee

__all__ = ["Conn", "pick_trims", "ConnectionManager"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Conn:
    """One connected peer as the decision sees it."""

    peer: str
    opened: float  #: when the peer connected (seconds, any monotonic clock)
    protected: bool = False  #: never closed (peer book, cluster peers, providers of a running fetch)
    value: int = 0  #: higher is kept longer (e.g. a DHT server of our routing table)


def pick_trims(conns: Iterable[Conn], low: int, high: int, grace: float, now: float) -> list[str]:
    """The peers to disconnect: none while at most ``high`` are connected; otherwise down to
    ``low``, least valuable first (among equals the newest, as older ones proved useful), never a
    protected peer nor one connected less than ``grace`` seconds ago."""
    conns = list(conns)
    if len(conns) <= high:
        return []
    excess = len(conns) - low
    candidates = [c for c in conns if not c.protected and now - c.opened >= grace]
    candidates.sort(key=lambda c: (c.value, -c.opened, c.peer))
    return [c.peer for c in candidates[:excess]]


class _Opened(INotifee):
    def __init__(self, manager: "ConnectionManager") -> None:
        self._m = manager

    async def connected(self, network: Any, conn: Any) -> None:
        self._m.note_connected(str(conn.muxed_conn.peer_id))

    async def disconnected(self, network: Any, conn: Any) -> None:
        peer = conn.muxed_conn.peer_id
        if not network.get_connections(peer):
            self._m.note_disconnected(str(peer))

    async def opened_stream(self, network: Any, stream: Any) -> None:
        pass

    async def closed_stream(self, network: Any, stream: Any) -> None:
        pass

    async def listen(self, network: Any, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        pass


class ConnectionManager:
    """Applies :func:`pick_trims` to a py-libp2p host (run it in the host's trio thread)."""

    def __init__(
        self,
        host: Any,
        *,
        low: int,
        high: int,
        grace: float,
        protected: Callable[[str], bool] = lambda _peer: False,
        value: Callable[[str], int] = lambda _peer: 0,
        check_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= low <= high:
            raise ValueError("the connection manager needs 0 <= low <= high")
        self.host = host
        self.low, self.high, self.grace = low, high, grace
        self.protected = protected
        self.value = value
        self.check_interval = check_interval
        self.clock = clock
        self._opened: dict[str, float] = {}
        self.trimmed_total = 0

    def note_connected(self, peer: str) -> None:
        """A peer connected (first connection counts)."""
        self._opened.setdefault(peer, self.clock())

    def note_disconnected(self, peer: str) -> None:
        """A peer's last connection closed."""
        self._opened.pop(peer, None)

    def connections(self) -> list[Conn]:
        """The connected peers as :class:`Conn` rows."""
        now = self.clock()
        rows = []
        for pid in self.host.get_network().get_connections_map():
            peer = str(pid)
            opened = self._opened.setdefault(peer, now)
            rows.append(Conn(peer, opened, self.protected(peer), self.value(peer)))
        return rows

    async def trim(self) -> int:
        """Close what :func:`pick_trims` picks now; return how many peers were closed."""
        victims = pick_trims(self.connections(), self.low, self.high, self.grace, self.clock())
        if not victims:
            return 0
        by_name = {str(p): p for p in self.host.get_network().get_connections_map()}
        closed = 0
        for peer in victims:
            pid = by_name.get(peer)
            if pid is None:
                continue
            try:
                await self.host.get_network().close_peer(pid)
                closed += 1
            except Exception as exc:  # already gone: nothing to trim
                log.debug("connection manager: closing %s: %s", peer, exc)
            self.note_disconnected(peer)
        self.trimmed_total += closed
        log.info("connection manager: closed %d of %d connections (high water %d)", closed, closed + self.low, self.high)
        return closed

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Watch connections and trim every ``check_interval`` seconds, until cancelled."""
        self.host.get_network().register_notifee(_Opened(self))
        for pid in self.host.get_network().get_connections_map():
            self.note_connected(str(pid))
        task_status.started()
        while True:
            await trio.sleep(self.check_interval)
            try:
                await self.trim()
            except Exception:
                log.exception("connection manager: trimming failed")
