"""The typed seams of the cluster peer: what each component needs from the others, as ``typing.Protocol``\\ s.

Like IPFS Cluster's component interfaces (``Consensus``, ``PinTracker``...), these
name the calls that cross a boundary, so a component depends on a shape, not
on a class, and its constructor says what it needs:

- :class:`PinsetState`: the replicated pinset (``node/cluster/pinset.py``'s
  :class:`~node.cluster.pinset.PinsetService`);
- :class:`TrackerView`: this peer's pin tracker as the status, RPC and upload
  code read it (:class:`~node.cluster.pintracker.PinTracker`);
- :class:`ContentFetcher`: how the tracker fetches a pin's DAG
  (:class:`~node.cluster.fetch.DagFetcher`);
- :class:`PeerCaller`: calls to other cluster peers (:class:`node.p2p.peer_rpc.PeerRPC`);
- :class:`ClusterAPI`: what the REST API (``node/restapi``) and the pinning
  service API (``node/pinsvc``) call (:class:`~node.cluster.peer.ClusterPeer`);
- :class:`StatsSource`: what ``node/metrics.py`` reads at scrape time (the daemon).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from cluster.pin import Pin
from cluster.status import PinInfo, StatusRow


class PinsetState(Protocol):
    """The cluster pinset: pins by CID, written through the CRDT."""

    async def get(self, cid: bytes) -> Pin | None:
        """The pin of ``cid``, or None."""
        ...

    async def get_many(self, cids: list[bytes]) -> list[Pin | None]:
        """The pins of ``cids`` (None where absent)."""
        ...

    def iter_pins(
        self,
        start: bytes | None = None,
        *,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
        cids: Sequence[bytes] | None = None,
    ) -> AsyncIterator[Pin]:
        """Pins in CID order from ``start``, filtered by exact name and metadata, or the pins of ``cids``."""
        ...

    def page(self, start: bytes | None) -> list[tuple[bytes, bytes]]:
        """Up to ``PAGE + 1`` stored (CID, DAG-CBOR pin) rows from ``start`` in CID order (blocking);
        the last one starts the next page."""
        ...

    async def add(self, pin: Pin) -> None:
        """Put ``pin`` in the pinset."""
        ...

    async def add_many(self, pins: list[Pin]) -> None:
        """Put several pins in one write."""
        ...

    async def update_many(self, cids: list[bytes], build: Callable[[list[Pin | None]], list[Pin]]) -> None:
        """Write the pins ``build(held pins of cids)`` returns, read and written in one step."""
        ...

    async def remove(self, cid: bytes) -> bool:
        """Remove the pin of ``cid``; False when absent."""
        ...


class TrackerView(Protocol):
    """This peer's pin tracker: what is pinned, queued or failed here."""

    def status(self, cid: bytes, pin: Pin | None) -> PinInfo:
        """This peer's status of ``cid`` (blocking: LevelDB)."""
        ...

    def iter_status(self, start: bytes | None = None) -> Any:
        """This peer's tracked CIDs' PinInfo from ``start`` on, in CID order (blocking)."""
        ...

    def status_rows(self, start: bytes | None = None, limit: int = ...) -> list[tuple[bytes, StatusRow]]:
        """:meth:`iter_status` as (CID, StatusRow), ``limit`` at most (blocking)."""
        ...

    def page_status(self, page: Sequence[tuple[bytes, Mapping[str, Any]]]) -> list[StatusRow]:
        """This peer's StatusRow of each (CID, stored pin fields) of a sorted pinset page (blocking)."""
        ...

    async def recover(self, cid: bytes, pin: Pin | None = None) -> PinInfo:
        """Queue a failed operation on ``cid`` again."""
        ...

    async def recover_all(self, include_final: bool = True) -> list[PinInfo]:
        """Queue every failed operation again."""
        ...

    def counts(self) -> dict[str, int]:
        """Tracked CIDs by status."""
        ...

    def queue_length(self) -> int:
        """Pins and unpins waiting to run."""
        ...

    def pins_queued(self) -> int:
        """Pins waiting to run (the admission rule counts these)."""
        ...

    def tracks_pin(self, cid: bytes) -> bool:
        """Whether the tracker's operation on ``cid`` is a pin (queued, running, done or failed; blocking)."""
        ...


class ContentFetcher(Protocol):
    """Fetches a pin's DAG into the local block store; ``progress(blocks)`` as blocks arrive."""

    async def fetch(self, pin: Pin, progress: Callable[[int], None]) -> None:
        """Return when every block of the DAG is stored; raise with a message otherwise."""
        ...


class PeerCaller(Protocol):
    """Calls to other cluster peers over the peer RPC."""

    async def call(self, peer: str, method: str, args: Any = None, *, timeout: float = ...) -> Any:
        """One result of ``method`` on ``peer``; PeerRpcError when it fails."""
        ...

    def stream(self, peer: str, method: str, args: Any = None, *, timeout: float = ...) -> AsyncIterator[Any]:
        """The streamed results of ``method`` on ``peer``; PeerRpcError when it fails."""
        ...


class ClusterAPI(Protocol):
    """What the REST API and the pinning service API need from the cluster peer."""

    peer_id: str

    def swarm_addresses(self) -> list[str]: ...

    async def id(self) -> dict[str, Any]: ...

    async def peers(self) -> list[dict[str, Any]]: ...

    async def peer_rm(self, peer: str) -> None: ...

    async def pin(self, pin: Pin, *, size: int | None = None, defaults: bool = True, upload: bool = False) -> Pin: ...

    async def pin_many(self, pins: list[Pin], *, defaults: Sequence[bool] | None = None) -> list[Pin]: ...

    async def unpin(self, cid: bytes) -> Pin: ...

    async def get_pin(self, cid: bytes) -> Pin: ...

    def iter_pins(
        self, *, types: Collection[str] = (), name: str | None = None, meta: Mapping[str, str] | None = None
    ) -> AsyncIterator[Pin]: ...

    async def resolve(self, path: str) -> bytes: ...

    async def status(self, cid: bytes, *, local: bool = False) -> dict[str, Any]: ...

    def status_all(
        self,
        *,
        local: bool = False,
        filter_mask: int = 0,
        cids: Sequence[bytes] | None = None,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]: ...

    def status_all_ndjson(
        self,
        *,
        local: bool = False,
        filter_mask: int = 0,
        cids: Sequence[bytes] | None = None,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]: ...

    async def recover(self, cid: bytes, *, local: bool = False) -> dict[str, Any]: ...

    def recover_all(self, *, local: bool = False) -> AsyncIterator[dict[str, Any]]: ...

    async def status_counts(self) -> dict[str, Any]: ...

    async def health_graph(self) -> dict[str, Any]: ...

    def metric_names(self) -> list[str]: ...

    def latest_metrics(self, name: str) -> list[dict[str, Any]]: ...

    def alerts(self) -> list[dict[str, Any]]: ...


class StatsSource(Protocol):
    """What ``/metrics`` reads at scrape time; each returns None when its component does not run."""

    def bitswap_stats(self) -> dict[str, int] | None:
        """Bitswap counters and gauges (``NetworkContent.stats``)."""
        ...

    def pinset_stats(self) -> dict[str, Any] | None:
        """The pinset's stats (``PinsetService.stats``)."""
        ...

    def cluster_stats(self) -> dict[str, Any] | None:
        """The cluster peer's stats (``ClusterPeer.stats``)."""
        ...

    def load_stats(self) -> dict[str, Any] | None:
        """Worker pools, HTTP connections and event-loop lag."""
        ...
