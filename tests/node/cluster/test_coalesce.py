"""The request coalescer (node/cluster/coalesce.py): batching, ordering, per-item errors, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from node.cluster.coalesce import Coalescer


class Recorder:
    """A batch function that records its batches; odd numbers fail alone, ``gate`` holds a batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.durable: set[int] = set()
        self.fail_all: Exception | None = None

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_all is not None:
            raise self.fail_all
        out: list[int | BaseException] = []
        for i in items:
            if i % 2:
                out.append(ValueError(f"odd {i}"))
            else:
                self.durable.add(i)
                out.append(i * 10)
        return out


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_one_batch_in_order() -> None:
    rec = Recorder()

    async def main() -> list[int | BaseException]:
        c = Coalescer(rec, window=0.01, max_batch=100)
        return await asyncio.gather(*(c.submit(i) for i in range(0, 40, 2)))

    assert run(main()) == [i * 10 for i in range(0, 40, 2)]
    assert rec.batches == [list(range(0, 40, 2))]


def test_a_bad_item_fails_alone_and_each_error_reaches_its_request() -> None:
    rec = Recorder()

    async def main() -> list[int | BaseException]:
        c = Coalescer(rec, window=0.01)
        return await asyncio.gather(*(c.submit(i) for i in range(6)), return_exceptions=True)

    results = run(main())
    assert [r for r in results if not isinstance(r, BaseException)] == [0, 20, 40]
    errors = {i: r for i, r in enumerate(results) if isinstance(r, BaseException)}
    assert sorted(errors) == [1, 3, 5]
    assert all(isinstance(e, ValueError) and str(e) == f"odd {i}" for i, e in errors.items())
    assert len(rec.batches) == 1


def test_batches_are_bounded_and_keep_submission_order() -> None:
    rec = Recorder()

    async def main() -> list[int | BaseException]:
        c = Coalescer(rec, window=0.01, max_batch=7)
        return await asyncio.gather(*(c.submit(i) for i in range(0, 60, 2)))

    assert run(main()) == [i * 10 for i in range(0, 60, 2)]
    assert all(1 <= len(b) <= 7 for b in rec.batches)
    assert [i for b in rec.batches for i in b] == list(range(0, 60, 2))


def test_a_request_is_answered_only_after_its_batch_returned() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()

    async def main() -> None:
        c = Coalescer(rec, window=0.0)
        task = asyncio.create_task(c.submit(4))
        while not rec.batches:
            await asyncio.sleep(0.001)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done() and 4 not in rec.durable
        rec.gate.set()
        assert await task == 40
        assert 4 in rec.durable

    run(main())


def test_items_arriving_during_a_batch_form_the_next_one() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()

    async def main() -> None:
        c = Coalescer(rec, window=0.0, max_batch=100)
        first = asyncio.create_task(c.submit(0))
        while not rec.batches:
            await asyncio.sleep(0.001)
        later = [asyncio.create_task(c.submit(i)) for i in (2, 4, 6)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(rec.batches) == 1  # one batch at a time
        rec.gate.set()
        assert await first == 0
        assert await asyncio.gather(*later) == [20, 40, 60]

    run(main())
    assert rec.batches == [[0], [2, 4, 6]]


def test_a_failing_batch_function_fails_each_of_its_requests_only() -> None:
    rec = Recorder()
    rec.fail_all = OSError("disk full")

    async def main() -> None:
        c = Coalescer(rec, window=0.005)
        results = await asyncio.gather(*(c.submit(i) for i in (0, 2)), return_exceptions=True)
        assert all(isinstance(r, OSError) for r in results)
        rec.fail_all = None
        assert await c.submit(8) == 80  # the next batch is not affected

    run(main())


def test_a_request_cancelled_while_waiting_is_left_out() -> None:
    rec = Recorder()

    async def main() -> None:
        c = Coalescer(rec, window=0.05)
        tasks = [asyncio.create_task(c.submit(i)) for i in (0, 2, 4)]
        await asyncio.sleep(0.001)
        tasks[1].cancel()
        assert await tasks[0] == 0 and await tasks[2] == 40
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]

    run(main())
    assert rec.batches == [[0, 4]]
    assert 2 not in rec.durable


def test_a_request_cancelled_while_its_batch_runs_does_not_stop_the_others() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()

    async def main() -> None:
        c = Coalescer(rec, window=0.005)
        tasks = [asyncio.create_task(c.submit(i)) for i in (0, 2)]
        while not rec.batches:
            await asyncio.sleep(0.001)
        tasks[0].cancel()
        await asyncio.sleep(0)
        rec.gate.set()
        assert await tasks[1] == 20
        assert tasks[0].cancelled()

    run(main())
    assert rec.durable == {0, 2}


def test_close_cancels_waiting_requests() -> None:
    rec = Recorder()

    async def main() -> None:
        c = Coalescer(rec, window=10.0)
        task = asyncio.create_task(c.submit(0))
        await asyncio.sleep(0.001)
        await c.close()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert rec.batches == []


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder(), window=-1)
    with pytest.raises(ValueError):
        Coalescer(Recorder(), max_batch=0)
