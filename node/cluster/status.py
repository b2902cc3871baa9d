"""Pin status across the cluster: ``status``, ``status_all`` (streamed), ``recover``, ``recover_all`` and status counts.

This peer's view comes from its tracker; the other peers' views come over the
peer RPC. Listings stream: the state and every peer's ``status_all`` stream
are sorted by CID, so :meth:`ClusterStatus.status_all` merges them with
bounded memory however many pins there are (:class:`PeerStream` holds one
peer's stream). A peer allocated a pin but gone from the peer set shows
``cluster_error``; a peer that is not allocated shows ``remote`` without being
asked. Each PinInfo gets the peer's name and IPFS identity from its ping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

from blockstore.cid import cid_to_str
from cluster.pin import Pin
from cluster.status import PinInfo, global_pin_info, status_bit

from ..p2p.peer_rpc import PeerRpcError
from .errors import NotFoundError
from .interfaces import PeerCaller, PinsetState, TrackerView
from .membership import PEER_TIMEOUT, Membership, now_ns

log = logging.getLogger(__name__)

#: pins merged per worker-thread call of the tracker while streaming
PAGE = 1000


class ClusterStatus:
    """The status of pins on every peer of the peer set (see module docstring)."""

    def __init__(self, pinset: PinsetState, tracker: TrackerView, members: Membership, rpc: PeerCaller) -> None:
        self._pinset = pinset
        self._tracker = tracker
        self._members = members
        self._rpc = rpc

    # ------------------------------------------------------------ decoration
    def decorate(self, info: PinInfo) -> PinInfo:
        """Fill the peer name and IPFS identity of ``info`` from the peer's ping."""
        name, ipfs_id, addrs = self._members.identity(info.peer)
        return info.with_identity(name or info.peername, ipfs_id, addrs)

    def plain(self, cid: bytes, peer: str, status: str, error: str = "") -> PinInfo:
        """A decorated PinInfo made here (not reported by the peer)."""
        return self.decorate(PinInfo(cid=cid, peer=peer, status=status, timestamp=now_ns(), error=error))

    # ------------------------------------------------------------ one CID
    async def _local_status(self, cid: bytes, pin: Pin | None) -> PinInfo:
        info = await asyncio.get_running_loop().run_in_executor(None, self._tracker.status, cid, pin)
        return self.decorate(info)

    async def status(self, cid: bytes, *, local: bool = False) -> dict[str, Any]:
        """The ``GlobalPinInfo`` of ``cid``: this peer only (``local``) or every peer of the peer set."""
        pin = await self._pinset.get(cid)
        if local:
            return global_pin_info(cid, pin, [await self._local_status(cid, pin)])
        peers = self._members.peerset()
        infos = list(await asyncio.gather(*(self.peer_status(peer, cid, pin) for peer in peers)))
        if pin is not None:
            infos.extend(self._missing_peers(pin, peers))
        return global_pin_info(cid, pin, infos)

    def _missing_peers(self, pin: Pin, peerset: Collection[str]) -> list[PinInfo]:
        """``cluster_error`` entries for allocated peers that left the peer set (no fresh ping)."""
        return [
            self.plain(pin.cid, peer, "cluster_error", "peer is not in the peer set: no ping within the metric TTL")
            for peer in pin.allocations
            if peer not in peerset
        ]

    async def peer_status(self, peer: str, cid: bytes, pin: Pin | None) -> PinInfo:
        """``peer``'s status of ``cid`` (asked over RPC when it is allocated there)."""
        if peer == self._members.peer_id:
            return await self._local_status(cid, pin)
        if pin is None:
            return self.plain(cid, peer, "unpinned")
        if not pin.is_allocated_to(peer):
            return self.plain(cid, peer, "remote")
        try:
            data = await self._rpc.call(peer, "status", cid, timeout=PEER_TIMEOUT)
            return self.decorate(PinInfo.decode(data))
        except (PeerRpcError, ValueError) as exc:
            return self.plain(cid, peer, "cluster_error", str(exc))

    # ------------------------------------------------------------ every pin
    async def status_all(
        self,
        *,
        local: bool = False,
        filter_mask: int = 0,
        cids: Sequence[bytes] | None = None,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """``GlobalPinInfo`` of every pin (or of ``cids``), streamed in CID order.

        Every other peer streams its own statuses (sorted by CID) once; they are
        merged with the state as it is read, so memory stays flat. ``filter_mask``
        keeps pins where at least one peer's status matches (TrackerStatus bits).
        """
        me = self._members.peer_id
        peers = [me] if local else self._members.peerset()
        remote = {p: PeerStream(self, self._rpc, p) for p in peers if p != me}
        try:
            async for batch in _batched(self._pinset.iter_pins(name=name, meta=meta, cids=cids), PAGE):
                local_infos = await asyncio.get_running_loop().run_in_executor(
                    None, lambda b=batch: [self._tracker.status(p.cid, p) for p in b]
                )
                for pin, mine in zip(batch, local_infos):
                    infos = [self.decorate(mine)]
                    for peer, stream in remote.items():
                        if not pin.is_allocated_to(peer):
                            infos.append(self.plain(pin.cid, peer, "remote"))
                            continue
                        infos.append(await stream.status_of(pin.cid))
                    if not local:
                        infos.extend(self._missing_peers(pin, peers))
                    if filter_mask and not any(status_bit(i.status) & filter_mask for i in infos):
                        continue
                    yield global_pin_info(pin.cid, pin, infos)
        finally:
            for stream in remote.values():
                await stream.aclose()

    # ------------------------------------------------------------ recover
    async def recover(self, cid: bytes, *, local: bool = False) -> dict[str, Any]:
        """Re-queue a failed pin or unpin of ``cid`` on this peer (``local``) or on every allocated peer."""
        pin = await self._pinset.get(cid)
        if pin is None and not local:
            raise NotFoundError(f"{cid_to_str(cid)} is not pinned in the cluster")
        me = self._members.peer_id
        peers = [me] if local else self._members.peerset()

        async def one_peer(peer: str) -> PinInfo:
            if peer == me:
                return self.decorate(await self._tracker.recover(cid, pin))
            if pin is not None and not pin.is_allocated_to(peer):
                return self.plain(cid, peer, "remote")
            try:
                return self.decorate(PinInfo.decode(await self._rpc.call(peer, "recover", cid, timeout=PEER_TIMEOUT)))
            except (PeerRpcError, ValueError) as exc:
                return self.plain(cid, peer, "cluster_error", str(exc))

        infos = await asyncio.gather(*(one_peer(p) for p in peers))
        return global_pin_info(cid, pin, infos)

    async def recover_all(self, *, local: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Re-queue every failed pin and unpin (this peer, or every peer); yields what was re-queued."""
        me = self._members.peer_id
        peers = [me] if local else self._members.peerset()
        for peer in peers:
            if peer == me:
                infos = [self.decorate(i) for i in await self._tracker.recover_all()]
            else:
                try:
                    infos = [
                        self.decorate(PinInfo.decode(d))
                        async for d in self._rpc.stream(peer, "recover_all", timeout=PEER_TIMEOUT)
                    ]
                except (PeerRpcError, ValueError) as exc:
                    log.warning("recover on %s failed: %s", peer, exc)
                    continue
            for info in infos:
                pin = await self._pinset.get(info.cid)
                yield global_pin_info(info.cid, pin, [info])

    # ------------------------------------------------------------ counts
    async def status_counts(self) -> dict[str, Any]:
        """Pins by status on every peer of the peer set and their sum (each peer's counts are O(1)).

        ``{"peers": {peer: {status: n}}, "total": {status: n}, "errors": {peer: message}}``:
        what ``pinion top`` shows as "pins by status across the cluster".
        """
        me = self._members.peer_id

        async def ask(peer: str) -> tuple[str, dict[str, int] | None, str]:
            if peer == me:
                return peer, self._tracker.counts(), ""
            try:
                return peer, await self._rpc.call(peer, "counts", timeout=PEER_TIMEOUT), ""
            except PeerRpcError as exc:
                return peer, None, str(exc)

        out: dict[str, Any] = {"peers": {}, "total": {}, "errors": {}}
        for peer, counts, error in await asyncio.gather(*(ask(p) for p in self._members.peerset())):
            if counts is None:
                out["errors"][peer] = error
                continue
            out["peers"][peer] = counts
            for status, n in counts.items():
                out["total"][status] = out["total"].get(status, 0) + int(n)
        return out


class PeerStream:
    """One peer's ``status_all`` stream, advanced in CID order by :meth:`ClusterStatus.status_all`."""

    def __init__(self, status: ClusterStatus, rpc: PeerCaller, peer: str) -> None:
        self._status = status
        self._rpc = rpc
        self.peer = peer
        self._it: AsyncIterator[Any] | None = None
        self._head: PinInfo | None = None
        self._error: str | None = None
        self._done = False

    async def _next(self) -> PinInfo | None:
        if self._it is None:
            self._it = self._rpc.stream(self.peer, "status_all", timeout=PEER_TIMEOUT).__aiter__()
        try:
            return PinInfo.decode(await self._it.__anext__())
        except StopAsyncIteration:
            self._done = True
            return None

    async def status_of(self, cid: bytes) -> PinInfo:
        """This peer's status of ``cid`` (CIDs must be asked in increasing order)."""
        if self._error is None and not self._done:
            try:
                while self._head is None or self._head.cid < cid:
                    self._head = await self._next()
                    if self._head is None:
                        break
            except (PeerRpcError, ValueError) as exc:
                self._error = str(exc)
        if self._error is not None:
            return self._status.plain(cid, self.peer, "cluster_error", self._error)
        if self._head is not None and self._head.cid == cid:
            return self._status.decorate(self._head)
        # allocated here but the peer does not track it (yet): its state lags behind ours
        return self._status.plain(cid, self.peer, "pin_queued")

    async def aclose(self) -> None:
        """Abandon the stream (closes the libp2p stream)."""
        if self._it is not None and hasattr(self._it, "aclose"):
            try:
                await self._it.aclose()  # type: ignore[attr-defined]
            except Exception:
                pass


async def _batched(items: AsyncIterator[Pin], size: int) -> AsyncIterator[list[Pin]]:
    batch: list[Pin] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
