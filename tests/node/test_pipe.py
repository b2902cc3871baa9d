"""The bounded asyncio -> thread pipe and the part reader."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.uploads.multipart import PartData, PartEnd, PartStart
from node.uploads.pipe import ItemPipe, PartReader, ReaderGone, UploadAborted


def test_part_reader_reads_exact_sizes_and_stops_at_part_end() -> None:
    async def main() -> tuple[list[bytes], bytes]:
        pipe = ItemPipe(asyncio.get_running_loop(), limit=1 << 20)
        for item in [PartData(b"abc"), PartData(b"defgh"), PartData(b"ij"), PartEnd(), PartStart({}), PartData(b"x"), PartEnd()]:
            await pipe.put(item, 1)
        pipe.close()

        def work() -> tuple[list[bytes], bytes]:
            r = PartReader(pipe)
            got = [r.read(4), r.read(4), r.read(4), r.read(4)]
            assert r.ended
            assert isinstance(pipe.get(), PartStart)
            rest = PartReader(pipe).read()
            assert pipe.get() is None
            return got, rest

        return await asyncio.to_thread(work)

    got, rest = asyncio.run(main())
    assert got == [b"abcd", b"efgh", b"ij", b""]
    assert rest == b"x"


def test_producer_waits_while_pipe_is_full() -> None:
    """The producer never has more than ``limit`` bytes queued."""
    limit = 1000
    peak = 0

    async def main() -> int:
        nonlocal peak
        loop = asyncio.get_running_loop()
        pipe = ItemPipe(loop, limit=limit)
        consumed = 0

        def work() -> int:
            nonlocal consumed
            while (item := pipe.get()) is not None:
                consumed += len(item.data)
            return consumed

        fut = loop.run_in_executor(None, work)
        for _ in range(500):
            await pipe.put(PartData(b"x" * 100), 100)
            peak = max(peak, pipe._size)
        pipe.close()
        return await fut

    assert asyncio.run(main()) == 50_000
    assert peak <= limit + 100


def test_abort_raises_in_the_consumer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipe = ItemPipe(loop)
        started = threading.Event()

        def work() -> None:
            r = PartReader(pipe)
            started.set()
            r.read(10)

        fut = loop.run_in_executor(None, work)
        await pipe.put(PartData(b"abc"), 3)
        await asyncio.to_thread(started.wait)
        pipe.abort(UploadAborted("client gone"))
        with pytest.raises(UploadAborted, match="client gone"):
            await fut

    asyncio.run(main())


def test_reader_done_releases_a_blocked_producer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipe = ItemPipe(loop, limit=10)
        await pipe.put(PartData(b"x" * 10), 10)
        put = asyncio.ensure_future(pipe.put(PartData(b"y"), 1))
        await asyncio.sleep(0.01)
        assert not put.done()
        await asyncio.to_thread(pipe.reader_done)
        with pytest.raises(ReaderGone):
            await asyncio.wait_for(put, 5)

    asyncio.run(main())


def test_body_ending_inside_a_part_is_an_abort() -> None:
    async def main() -> None:
        pipe = ItemPipe(asyncio.get_running_loop())
        await pipe.put(PartData(b"abc"), 3)
        pipe.close()
        with pytest.raises(UploadAborted, match="inside a part"):
            await asyncio.to_thread(PartReader(pipe).read, 10)

    asyncio.run(main())


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(st.binary(min_size=1, max_size=50), max_size=12),
    sizes=st.lists(st.integers(min_value=1, max_value=80), min_size=1, max_size=8),
    push=st.booleans(),
)
def test_part_reader_any_piece_and_read_sizes(pieces: list[bytes], sizes: list[int], push: bool) -> None:
    """Whatever the item and read sizes, the reader returns the part's bytes, in order, once."""

    async def main() -> bytes:
        pipe = ItemPipe(asyncio.get_running_loop(), limit=1 << 20)
        for p in pieces:
            await pipe.put(PartData(p), len(p))
        await pipe.put(PartEnd(), 1)
        pipe.close()

        def work() -> bytes:
            r = PartReader(pipe)
            out = []
            i = 0
            while True:
                if push and i % 2:
                    data = r.next_data()
                    data = b"" if data is None else data
                else:
                    data = r.read(sizes[i % len(sizes)])
                    assert len(data) <= sizes[i % len(sizes)]
                i += 1
                if not data and r.ended:
                    break
                out.append(bytes(data))
            return b"".join(out)

        return await asyncio.to_thread(work)

    assert asyncio.run(main()) == b"".join(pieces)
