"""Where the gateway reads blocks from: the :class:`BlockSource` protocol and its block-store form."""

from __future__ import annotations

from typing import Protocol

from blockstore.cid import cid_to_str
from blockstore.errors import BlockNotFound
from blockstore.store import BlockStore

from ..errors import NodeError

__all__ = ["BlockNotFound", "BlockTimeout", "BlockSource", "StoreBlockSource"]


class BlockTimeout(NodeError, BlockNotFound):
    """The block is not local and the network did not deliver it in time (answered as 504)."""

    status = 504

    def __init__(self, cid: bytes) -> None:
        super().__init__(cid)
        self.args = (f"block {cid_to_str(cid)} was not retrieved from the network in time",)


class BlockSource(Protocol):
    """An async supplier of blocks: ``get`` raises :class:`BlockNotFound`; ``has_local`` never fetches.

    ``concurrency`` is how many ``get`` calls are worth having in flight while streaming (1 for a
    local store that answers synchronously; more for a network source, to hide round trips).
    """

    concurrency: int

    async def get(self, cid: bytes) -> bytes:
        """The block's bytes, or raise :class:`BlockNotFound`."""
        ...

    async def has_local(self, cid: bytes) -> bool:
        """Whether the block can be answered without asking the network (for ``only-if-cached``)."""
        ...


class StoreBlockSource:
    """A :class:`BlockSource` over the local :class:`BlockStore` (offline gateway).

    LevelDB reads of block-sized values take microseconds, so they are done on the loop directly.
    """

    #: reads complete synchronously, so there is nothing to overlap
    concurrency = 1

    def __init__(self, store: BlockStore) -> None:
        self.store = store

    async def get(self, cid: bytes) -> bytes:
        """The block from the store, or raise :class:`BlockNotFound`."""
        data = self.store.get(cid)
        if data is None:
            raise BlockNotFound(cid)
        return data

    async def has_local(self, cid: bytes) -> bool:
        """Whether the store holds the block (identity CIDs always)."""
        return self.store.has(cid)
