"""The peer RPC surface of a cluster peer: every method other peers may call, in one place (as IPFS Cluster's ``rpc_api.go``).

The transport (framing, trust check, paging, its counters ``calls_served``,
``calls_refused``, ``calls_made``, ``call_errors``) is
:class:`node.p2p.peer_rpc.PeerRPC`; this module only answers:

=================  ==========================  ==========================================
method             argument                    answer
=================  ==========================  ==========================================
``id``             --                          this peer's ``ID`` object
``status``         CID (bytes or string)       this peer's PinInfo of the CID
``status_all``     --                          this peer's tracked PinInfos, in CID order
``recover``        CID                         PinInfo after re-queueing it here
``recover_all``    --                          PinInfos of every re-queued operation
``links``          --                          this peer's cluster and IPFS connections
``counts``         --                          tracked CIDs by status
``pinset_branch``  ``{head, above}``           deltas of a pinset branch (``PinsetService``)
=================  ==========================  ==========================================
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from blockstore.cid import CidError, cid_from_str
from cluster.status import encode_status

from ..p2p.peer_rpc import PeerRPC, one, paged
from .graph import ConnectGraph
from .interfaces import PinsetState, TrackerView
from .membership import Membership
from .pinset import PinsetService

#: PinInfos read from LevelDB per worker-thread call while streaming ``status_all``
PAGE = 1000


class PeerRPCHandlers:
    """Answers the peer RPC methods of this cluster peer (see module docstring)."""

    def __init__(
        self, pinset: PinsetState, tracker: TrackerView, members: Membership, graph: ConnectGraph, branches: PinsetService
    ) -> None:
        self._pinset = pinset
        self._tracker = tracker
        self._members = members
        self._graph = graph
        self._branches = branches

    def register(self, rpc: PeerRPC) -> None:
        """Register every method on ``rpc`` (before it starts)."""
        for name, handler in (
            ("id", self.id),
            ("status", self.status),
            ("status_all", self.status_all),
            ("recover", self.recover),
            ("recover_all", self.recover_all),
            ("links", self.links),
            ("counts", self.counts),
            ("pinset_branch", self._branches.serve_branch),
        ):
            rpc.register(name, handler)

    async def id(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        async for page in one(await self._members.id()):
            yield page

    async def status(self, _peer: str, args: Any) -> AsyncIterator[list[Any]]:
        cid = cid_arg(args)
        pin = await self._pinset.get(cid)
        info = await asyncio.get_running_loop().run_in_executor(None, self._tracker.status, cid, pin)
        yield [info.encode()]

    async def status_all(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        """This peer's tracked CIDs in CID order (pins not allocated here are left out: the caller knows they are remote).

        Written from the tracker's stored records as status rows, no PinInfo per CID."""
        me = self._members.peer_id
        start: bytes | None = None
        while True:
            rows = await asyncio.get_running_loop().run_in_executor(None, self._tracker.status_rows, start, PAGE + 1)
            if rows[:PAGE]:
                yield [encode_status(cid, me, row) for cid, row in rows[:PAGE]]
            if len(rows) <= PAGE:
                return
            start = rows[PAGE][0]

    async def recover(self, _peer: str, args: Any) -> AsyncIterator[list[Any]]:
        cid = cid_arg(args)
        info = await self._tracker.recover(cid, await self._pinset.get(cid))
        yield [info.encode()]

    async def recover_all(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        async def items() -> AsyncIterator[Any]:
            for info in await self._tracker.recover_all():
                yield info.encode()

        async for page in paged(items()):
            yield page

    async def links(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        yield [await self._graph.links()]

    async def counts(self, _peer: str, _args: Any) -> AsyncIterator[list[Any]]:
        yield [self._tracker.counts()]


def cid_arg(args: Any) -> bytes:
    """The CID argument of a call (bytes, or a string CID); ValueError otherwise."""
    if isinstance(args, bytes):
        return args
    if isinstance(args, str):
        try:
            return cid_from_str(args)
        except CidError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError("a CID argument is required")
