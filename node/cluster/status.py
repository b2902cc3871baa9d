"""Pin status across the cluster: ``status``, ``status_all`` (streamed), ``recover``, ``recover_all`` and status counts.

This peer's view comes from its tracker; the other peers' views come over the
peer RPC. Listings stream: the state and every peer's ``status_all`` stream
are sorted by CID, so :meth:`ClusterStatus.status_all` merges them with
bounded memory however many pins there are (:class:`PeerStream` holds one
peer's stream). A peer allocated a pin but gone from the peer set shows
``cluster_error``; a peer that is not allocated shows ``remote`` without being
asked. Each PinInfo gets the peer's name and IPFS identity from its ping.

Listings handle no object per pin: each page of the pinset is read as stored
DAG-CBOR (:func:`cluster.pin.pin_fields`), this peer's and the other peers'
statuses as :data:`~cluster.status.StatusRow` tuples, and every GlobalPinInfo
is written as its JSON line directly (:class:`~cluster.status.GpiText`,
:class:`~cluster.status.PeerEntries`), byte for byte what ``json.dumps`` of
:func:`~cluster.status.global_pin_info` writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

from blockstore.cid import cid_to_str
from cluster.pin import Pin, PinError, pin_as_fields, pin_fields
from cluster.status import STATUSES, GpiText, PeerEntries, PinInfo, StatusRow, decode_status, global_pin_info

from ..p2p.peer_rpc import PeerRpcError
from .errors import NotFoundError
from .interfaces import PeerCaller, PinsetState, TrackerView
from .membership import PEER_TIMEOUT, Membership, now_ns
from .pinset import PAGE as PINSET_PAGE

log = logging.getLogger(__name__)

#: pins merged per worker-thread call of the tracker while streaming
PAGE = 1000
#: the error of an allocated peer that left the peer set
_GONE = "peer is not in the peer set: no ping within the metric TTL"
_CLUSTER_ERROR = STATUSES["cluster_error"]


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
            self.plain(pin.cid, peer, "cluster_error", _GONE)
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
        """``GlobalPinInfo`` of every pin (or of ``cids``), streamed in CID order: the lines of
        :meth:`status_all_ndjson` parsed, so both come from one merge."""
        async for page in self._lines(local, filter_mask, cids, name, meta):
            for line in page:
                yield json.loads(line)

    async def status_all_ndjson(
        self,
        *,
        local: bool = False,
        filter_mask: int = 0,
        cids: Sequence[bytes] | None = None,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        """``GlobalPinInfo`` of every pin (or of ``cids``) as NDJSON, in CID order, a page of lines
        at a time: written from the stored pins and status rows, no object per pin.

        Every other peer streams its own statuses (sorted by CID) once; they are
        merged with the state as it is read, so memory stays flat. ``filter_mask``
        keeps pins where at least one peer's status matches (TrackerStatus bits).
        """
        async for page in self._lines(local, filter_mask, cids, name, meta):
            if page:
                yield "".join(page).encode()  # ASCII: every string is written \\u-escaped

    async def _lines(
        self,
        local: bool,
        filter_mask: int,
        cids: Sequence[bytes] | None,
        name: str | None,
        meta: Mapping[str, str] | None,
    ) -> AsyncIterator[list[str]]:
        """Pages of GlobalPinInfo lines (``json.dumps(global_pin_info(...))`` + newline).

        The peer map of a pin lists this peer first, then the other peers of the
        peer set in their order (each one's row taken from its ``status_all``
        stream, or ``remote`` when the pin is not allocated there), then allocated
        peers that left the peer set (``cluster_error``).
        """
        me = self._members.peer_id
        peers = [me] if local else self._members.peerset()
        members = set(peers)
        remote = [PeerStream(self._rpc, p) for p in peers if p != me]
        text = GpiText()
        try:
            async for listed, my_rows in self._pages(cids, name, meta):
                now = now_ns()
                mine = self._entries(me, now)
                views = [self._entries(stream.peer, now) for stream in remote]
                columns = [await stream.rows(listed, now) for stream in remote]
                gone_views: dict[str, PeerEntries] = {}
                gone_row: StatusRow = ("cluster_error", now, _GONE, 0, False)
                out: list[str] = []
                for (cid, fields), my_row, *rows in zip(listed, my_rows, *columns):
                    parts = [mine.json(my_row)]
                    parts += [view.json(row) for view, row in zip(views, rows)]
                    allocations = fields.get("allocations")
                    gone: list[str] = []
                    if allocations and not local and not members.issuperset(allocations):
                        gone = list(dict.fromkeys(p for p in allocations if p not in members))  # once each
                        for peer in gone:
                            view = gone_views.get(peer)
                            if view is None:
                                view = gone_views[peer] = self._entries(peer, now)
                            parts.append(view.json(gone_row))
                    if filter_mask and not _matches(filter_mask, my_row, rows, gone):
                        continue
                    out.append(text.line(cid, fields, parts))
                yield out
        finally:
            for stream in remote:
                await stream.aclose()

    def _entries(self, peer: str, now: int) -> PeerEntries:
        name, ipfs_id, addrs = self._members.identity(peer)
        return PeerEntries(peer, name, ipfs_id, addrs, now)

    async def _pages(
        self, cids: Sequence[bytes] | None, name: str | None, meta: Mapping[str, str] | None
    ) -> AsyncIterator[tuple[list[tuple[bytes, Mapping[str, Any]]], list[StatusRow]]]:
        """Pages of the pins listed, in CID order: [(CID, stored fields)] and this peer's status row of each.

        The whole pinset is read as stored rows, a page per worker-thread call
        (the pinset page, its fields and this peer's rows of it from one scan of
        the tracker); a listing by ``cids``, name or metadata reads its pins
        through :meth:`PinsetState.iter_pins`."""
        loop = asyncio.get_running_loop()
        if cids is not None or name or meta:
            async for batch in _batched(self._pinset.iter_pins(name=name, meta=meta, cids=cids), PAGE):
                listed = [(p.cid, pin_as_fields(p)) for p in batch]
                yield listed, await loop.run_in_executor(None, self._tracker.page_status, listed)
            return
        start: bytes | None = None
        while True:

            def read(s: bytes | None = start) -> tuple[list[tuple[bytes, Mapping[str, Any]]], list[StatusRow], bytes | None]:
                stored = self._pinset.page(s)
                listed: list[tuple[bytes, Mapping[str, Any]]] = []
                for cid, value in stored[:PINSET_PAGE]:
                    try:
                        listed.append((cid, pin_fields(value)))
                    except PinError as exc:
                        log.warning("undecodable pin in the state skipped: %s", exc)
                nxt = stored[PINSET_PAGE][0] if len(stored) > PINSET_PAGE else None
                return listed, self._tracker.page_status(listed), nxt

            listed, my_rows, start = await loop.run_in_executor(None, read)
            if listed:
                yield listed, my_rows
            if start is None:
                return

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
    """One peer's ``status_all`` stream, advanced in CID order by :meth:`ClusterStatus.status_all`.

    Its items are read as :data:`StatusRow`\\ s (no PinInfo per CID). The rows
    are this peer's whatever peer an item names: a peer answers for itself only."""

    def __init__(self, rpc: PeerCaller, peer: str) -> None:
        self._rpc = rpc
        self.peer = peer
        self._it: AsyncIterator[Any] | None = None
        #: the last item read: (CID, row)
        self._head: tuple[bytes, StatusRow] | None = None
        self._error: str | None = None
        self._done = False

    async def rows(self, page: Sequence[tuple[bytes, Mapping[str, Any]]], now: int) -> list[StatusRow]:
        """This peer's status row of each (CID, stored pin fields) of a page of the pinset (pages
        must come in increasing CID order): ``remote`` where the pin is not allocated here,
        else its row from the stream, ``pin_queued`` where the peer does not track it (yet:
        its state lags behind ours), ``cluster_error`` once the stream failed. ``now``
        stamps the rows made here."""
        remote: StatusRow = ("remote", now, "", 0, False)
        queued: StatusRow = ("pin_queued", now, "", 0, False)
        peer, head = self.peer, self._head
        out: list[StatusRow] = []
        for cid, fields in page:
            allocations = fields.get("allocations")
            if allocations and peer not in allocations:
                out.append(remote)
                continue
            while (head is None or head[0] < cid) and self._error is None and not self._done:
                head = self._head = await self._next()
            if self._error is not None:
                out.append(("cluster_error", now, self._error, 0, False))
            elif head is not None and head[0] == cid:
                out.append(head[1])
            else:
                out.append(queued)
        return out

    async def _next(self) -> tuple[bytes, StatusRow] | None:
        """The next item of the stream (opened on first use) as (CID, row); when the stream
        ended or failed, ``_done`` or ``_error`` is set and the last item is kept."""
        try:
            if self._it is None:
                self._it = self._rpc.stream(self.peer, "status_all", timeout=PEER_TIMEOUT).__aiter__()
            cid, _peer, row = decode_status(await self._it.__anext__())
            return cid, row
        except StopAsyncIteration:
            self._done = True
        except (PeerRpcError, ValueError) as exc:
            self._error = str(exc)
        return self._head

    async def aclose(self) -> None:
        """Abandon the stream (closes the libp2p stream)."""
        if self._it is not None and hasattr(self._it, "aclose"):
            try:
                await self._it.aclose()  # type: ignore[attr-defined]
            except Exception:
                pass


def _matches(mask: int, my_row: StatusRow, rows: Sequence[StatusRow], gone: Sequence[str]) -> bool:
    """Whether a status of the peer map of a pin is in ``mask`` (gone peers: ``cluster_error``)."""
    bits = STATUSES.get(my_row[0], 0) | (_CLUSTER_ERROR if gone else 0)
    for row in rows:
        bits |= STATUSES.get(row[0], 0)
    return bool(bits & mask)


async def _batched(items: AsyncIterator[Pin], size: int) -> AsyncIterator[list[Pin]]:
    batch: list[Pin] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
