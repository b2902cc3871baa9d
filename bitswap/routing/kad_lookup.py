"""The iterative Kademlia lookup as a state machine, sans-I/O.

Events in, decisions out::

    lk = Lookup(target_point, seeds=table.closest(target_point), k=20, alpha=10)
    while not lk.done:
        for peer in lk.next_queries():       # "query peer X" decisions
            ...send the request...
        ...on an answer:   lk.on_response(peer, closer_peer_ids)
        ...on a failure:   lk.on_failure(peer)
    lk.closest()                             # the k closest peers that answered

Each peer is in one state: heard (known, not asked), waiting (asked),
queried (answered) or failed. At most ``alpha`` requests are in flight; the
next one goes to the closest heard peer among the ``k`` closest peers not
failed. The lookup is done when those ``k`` closest are all queried, when
nothing is left to ask, or when the caller calls :meth:`stop` (e.g. enough
providers were found). (kad-dht spec, "Peer routing":
https://github.com/libp2p/specs/blob/master/kad-dht/README.md)

Memory is bounded: a response contributes at most ``k`` new peers and the
lookup tracks at most ``max_peers`` (the farthest heard ones are dropped).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from .kad_keyspace import kad_point

__all__ = ["Lookup", "HEARD", "WAITING", "QUERIED", "FAILED"]

HEARD = 0
WAITING = 1
QUERIED = 2
FAILED = 3


class Lookup:
    """One iterative lookup of ``target`` (a keyspace point). See the module docstring."""

    def __init__(
        self, target: int, seeds: Iterable[bytes], *, k: int = 20, alpha: int = 10, max_peers: int = 2000, local: bytes | None = None
    ) -> None:
        self.target = target
        self.k = k
        self.alpha = alpha
        self.max_peers = max(max_peers, k)
        self.local = local
        self._state: dict[bytes, int] = {}
        self._dist: dict[bytes, int] = {}
        self._in_flight = 0
        self._stopped = False
        self.responses = 0
        self.failures = 0
        self._add(seeds)

    # ----------------------------------------------------------------- internals
    def _add(self, peers: Iterable[bytes]) -> int:
        added = 0
        for peer in peers:
            if peer in self._state or peer == self.local:
                continue
            self._state[peer] = HEARD
            self._dist[peer] = kad_point(peer) ^ self.target
            added += 1
        if len(self._state) > self.max_peers:
            heard = [p for p, s in self._state.items() if s == HEARD]
            excess = len(self._state) - self.max_peers
            for p in heapq.nlargest(min(excess, len(heard)), heard, key=self._dist.__getitem__):
                del self._state[p]
                del self._dist[p]
        return added

    def _closest_live(self) -> list[bytes]:
        """The k closest peers that have not failed, nearest first."""
        live = (p for p, s in self._state.items() if s != FAILED)
        return heapq.nsmallest(self.k, live, key=self._dist.__getitem__)

    # ----------------------------------------------------------------- decisions
    @property
    def done(self) -> bool:
        """True when the lookup has converged, run dry, or was stopped (in-flight answers may still come)."""
        if self._stopped:
            return True
        closest = self._closest_live()
        if all(self._state[p] == QUERIED for p in closest):
            return True
        return self._in_flight == 0 and not any(self._state[p] == HEARD for p in closest)

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered or failed."""
        return self._in_flight

    def next_queries(self) -> list[bytes]:
        """Peers to ask now (each marked waiting); empty when at the alpha limit or nothing useful is left."""
        if self._stopped:
            return []
        room = self.alpha - self._in_flight
        if room <= 0:
            return []
        out = []
        for peer in self._closest_live():
            if self._state[peer] == HEARD:
                self._state[peer] = WAITING
                out.append(peer)
                if len(out) == room:
                    break
        self._in_flight += len(out)
        return out

    # ----------------------------------------------------------------- events
    def on_response(self, peer: bytes, closer: Iterable[bytes]) -> int:
        """``peer`` answered with ``closer`` peers (at most k are taken); returns how many were new."""
        if self._state.get(peer) != WAITING:
            return 0
        self._state[peer] = QUERIED
        self._in_flight -= 1
        self.responses += 1
        taken = []
        for p in closer:
            if len(taken) >= self.k:
                break
            taken.append(p)
        return self._add(taken)

    def on_failure(self, peer: bytes) -> None:
        """A request to ``peer`` failed (timeout, refused, bad answer)."""
        if self._state.get(peer) != WAITING:
            return
        self._state[peer] = FAILED
        self._in_flight -= 1
        self.failures += 1

    def stop(self) -> None:
        """End the lookup early: no further queries are decided."""
        self._stopped = True

    # ----------------------------------------------------------------- results
    def closest(self, count: int | None = None) -> list[bytes]:
        """Up to ``count`` (default k) peers that answered, nearest to the target first."""
        queried = (p for p, s in self._state.items() if s == QUERIED)
        return heapq.nsmallest(self.k if count is None else count, queried, key=self._dist.__getitem__)

    def state_of(self, peer: bytes) -> int | None:
        """HEARD, WAITING, QUERIED, FAILED, or None for a peer the lookup does not know."""
        return self._state.get(peer)
