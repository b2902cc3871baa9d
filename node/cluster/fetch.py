"""How the pin tracker fetches a pin's DAG: locally when complete here, else over bitswap after dialling its providers.

:class:`DagFetcher` is the tracker's :class:`~node.cluster.interfaces.ContentFetcher`.
A DAG already complete in the local block store (uploaded to this peer,
identity CIDs) is checked in a worker thread and never touches the network;
a peer with no free space (``Datastore.StorageMax``) refuses new content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from blockstore.dagwalk import BlockNotFound, walk_dag
from blockstore.store import BlockStore
from cluster.pin import Pin

from ..content import NetworkContent
from .connect import Connector


class DagFetcher:
    """Fetches pins' DAGs for the tracker (see module docstring)."""

    def __init__(
        self,
        content: NetworkContent,
        store: BlockStore,
        connector: Connector,
        *,
        freespace: Callable[[], int],
        reads: Executor | None = None,
    ) -> None:
        self._content = content
        self._store = store
        self._connector = connector
        self._freespace = freespace
        #: the daemon's reads pool for local DAG walks (None: the default executor)
        self._reads = reads

    async def fetch(self, pin: Pin, progress: Callable[[int], None]) -> None:
        """Fetch ``pin``'s DAG over bitswap: connect to its origins and to the other allocated peers first."""
        max_depth = None if pin.max_depth < 0 else pin.max_depth
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._reads, self.complete_here, pin.cid, max_depth):
            progress(1)
            return
        if await loop.run_in_executor(None, self._freespace) <= 0:
            raise RuntimeError("Datastore.StorageMax reached: no room for new content on this peer")
        await self._connector.connect_providers(pin)
        connector = asyncio.create_task(self._connector.keep_connecting(pin), name="pin-connect")
        try:
            await self._content.fetch_dag(pin.cid, max_depth=max_depth, progress=lambda blocks, _bytes: progress(blocks))
        finally:
            connector.cancel()

    def complete_here(self, root: bytes, max_depth: int | None) -> bool:
        """Whether every block of the DAG under ``root`` is in the local block store (blocking)."""
        try:
            for _cid, _data in walk_dag(root, self._store.get, max_depth=max_depth):
                pass
        except BlockNotFound:
            return False
        return True
