"""The gateway's async driver of the UnixFS walk cores (node/gateway/walk.py).

The sources here are BlockSources over a dict (the protocol the gateway reads through), one of them
with a fetch delay and ``concurrency`` > 1 like the network source, to check the lookahead: the
bytes are right, no more than the window is in flight per level, nothing is fetched that the walk
does not need, and an abandoned stream cancels its prefetches.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from blockstore.cid import cid_for
from blockstore.importer import DirectoryBuilder, ImportParams, import_bytes
from blockstore.unixfs_walk import dir_entries, file_range
from node.gateway.errors import GatewayError
from node.gateway.source import BlockNotFound, BlockTimeout
from node.gateway.walk import resolve_path, run, stream


class DictSource:
    """A BlockSource over a dict that records the fetches and how many were in flight at once."""

    def __init__(
        self,
        blocks: dict[bytes, bytes],
        concurrency: int = 1,
        delay: float = 0.0,
        timeout: set[bytes] | None = None,
        slow: set[bytes] | None = None,
    ) -> None:
        self.blocks = blocks
        self.concurrency = concurrency
        self.delay = delay
        self.slow = slow or set()
        self.timeout = timeout or set()
        self.fetched: list[bytes] = []
        self.in_flight = 0
        self.peak = 0
        self.cancelled = 0

    async def get(self, cid: bytes) -> bytes:
        self.fetched.append(cid)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay or cid in self.slow:
                await asyncio.sleep(10.0 if cid in self.slow else self.delay)
            if cid in self.timeout:
                raise BlockTimeout(cid)
            if cid not in self.blocks:
                raise BlockNotFound(cid)
            return self.blocks[cid]
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def has_local(self, cid: bytes) -> bool:
        return cid in self.blocks


class Sink:
    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        self.blocks.update(blocks)
        return len(blocks)


def _file(size: int, chunk: int = 100, links: int = 4) -> tuple[bytes, bytes, Sink]:
    content = os.urandom(size)
    sink = Sink()
    root = import_bytes(content, sink, ImportParams(cid_version=1, raw_leaves=True, chunk_size=chunk, max_links=links)).cid
    return content, root, sink


async def _read(source: DictSource, root: bytes, start: int, end: int) -> bytes:
    out = bytearray()
    async for piece in stream(file_range(root, source.blocks[root], start, end), source):
        if isinstance(piece, bytes):
            out += piece
    return bytes(out)


@pytest.mark.parametrize("concurrency", [1, 3, 16])
def test_ranges_are_right_and_only_needed_blocks_are_fetched(concurrency: int) -> None:
    content, root, sink = _file(20_000)  # 200 leaves, 4 levels
    for start, end in ((0, 20_000), (1234, 1240), (9_950, 15_001), (19_999, 30_000)):
        source = DictSource(sink.blocks, concurrency, delay=0.001)
        assert asyncio.run(_read(source, root, start, end)) == content[start:end]
        # every fetch was one the walk needed (the same blocks as without lookahead, once each)
        sync = DictSource(sink.blocks)
        asyncio.run(_read(sync, root, start, end))
        assert sorted(source.fetched) == sorted(sync.fetched)
        assert source.peak <= concurrency * 4  # at most one window per level of the tree
        if concurrency > 1 and min(end, len(content)) - start > 1000:
            assert source.peak > 1  # the lookahead overlaps fetches


def test_an_abandoned_stream_cancels_its_prefetches() -> None:
    content, root, sink = _file(20_000)
    first_leaf = cid_for(content[:100], codec=0x55)
    leaves = {c for c, b in sink.blocks.items() if c[1] == 0x55 and c != first_leaf}
    source = DictSource(sink.blocks, concurrency=8, slow=leaves)  # every leaf but the first never arrives

    async def first_piece() -> bytes:
        pieces = stream(file_range(root, sink.blocks[root], 0, 20_000), source)
        async for piece in pieces:
            if isinstance(piece, bytes):
                await pieces.aclose()
                return piece
        raise AssertionError("no bytes")

    async def main() -> bytes:
        piece = await first_piece()
        for _ in range(100):  # let the cancellations land
            await asyncio.sleep(0)
        return piece

    assert asyncio.run(main()) == content[:100]
    assert source.cancelled > 0 and source.in_flight == 0


def test_block_errors_become_404_and_504() -> None:
    content, root, sink = _file(1_000)
    leaf = cid_for(content[500:600], codec=0x55)
    missing = dict(sink.blocks)
    del missing[leaf]
    with pytest.raises(GatewayError) as info:
        asyncio.run(_read(DictSource(missing, 4), root, 0, 1000))
    assert info.value.status == 404 and "file chunk" in info.value.message
    with pytest.raises(GatewayError) as info:
        asyncio.run(_read(DictSource(sink.blocks, 1, timeout={leaf}), root, 0, 1000))
    assert info.value.status == 504


def test_walk_errors_become_their_statuses() -> None:
    sink = Sink()
    d = DirectoryBuilder(ImportParams())
    f = import_bytes(b"hello", sink)
    d.add_entry("f", f.cid, f.size)
    root = d.finish(sink).cid
    source = DictSource(sink.blocks)
    for segments, status in ((["nope"], 404), (["f", "x"], 404)):
        with pytest.raises(GatewayError) as info:
            asyncio.run(resolve_path(source, root, segments))
        assert info.value.status == status
    with pytest.raises(GatewayError) as info:
        asyncio.run(run(file_range(root, sink.blocks[root], 0, 5), source))
    assert info.value.status == 500 and "not a file" in info.value.message
    resolved = asyncio.run(resolve_path(source, root, ["f"]))
    assert (resolved.cid, resolved.block, resolved.roots) == (f.cid, sink.blocks[f.cid], [root, f.cid])
    assert [c for c, _ in resolved.trail] == [root, f.cid]

    async def names() -> list[bytes]:
        return [e[0] async for e in stream(dir_entries(root, sink.blocks[root]), source) if isinstance(e, tuple)]

    assert asyncio.run(names()) == [b"f"]
