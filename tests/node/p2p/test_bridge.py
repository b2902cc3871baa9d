"""The asyncio <-> trio bridge: results, exceptions, cancellation both ways, clean stop."""

import asyncio
import threading

import pytest
import trio

from node.p2p.bridge import BridgeError, BridgeStopped, TrioThread


def _trio_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("test-bridge")]


@pytest.fixture
def bridge():
    b = TrioThread(name="test-bridge")
    yield b
    b.stop()
    assert not _trio_threads()


def test_run_returns_result_from_trio_thread(bridge: TrioThread) -> None:
    async def main() -> None:
        bridge.start()

        async def where(x: int) -> tuple[int, str]:
            await trio.sleep(0)
            return x * 2, threading.current_thread().name

        assert await bridge.run(where, 21) == (42, "test-bridge")

    asyncio.run(main())


def test_run_propagates_exceptions(bridge: TrioThread) -> None:
    class Boom(Exception):
        pass

    async def fails() -> None:
        await trio.sleep(0)
        raise Boom("from trio")

    async def main() -> None:
        bridge.start()
        with pytest.raises(Boom, match="from trio"):
            await bridge.run(fails)
        # the bridge keeps working after a failed call
        assert await bridge.run(trio.sleep, 0) is None

    asyncio.run(main())


def test_asyncio_cancellation_cancels_trio_task(bridge: TrioThread) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.set()
            raise

    async def main() -> None:
        bridge.start()
        task = asyncio.create_task(bridge.run(forever))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(cancelled.wait, 5)

    asyncio.run(main())


def test_timeout_from_asyncio_cancels_trio(bridge: TrioThread) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await trio.sleep(30)
        except trio.Cancelled:
            cancelled.set()
            raise

    async def main() -> None:
        bridge.start()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bridge.run(slow), 0.05)
        assert await asyncio.to_thread(cancelled.wait, 5)

    asyncio.run(main())


def test_trio_calls_back_into_asyncio(bridge: TrioThread) -> None:
    async def main() -> None:
        bridge.start()
        loop_thread = threading.current_thread().name
        got: list[str] = []

        async def on_asyncio(v: str) -> str:
            await asyncio.sleep(0)
            got.append(threading.current_thread().name)
            return v.upper()

        async def in_trio() -> str:
            return await bridge.run_asyncio(on_asyncio, "hi")

        assert await bridge.run(in_trio) == "HI"
        assert got == [loop_thread]

        class Nope(Exception):
            pass

        async def bad() -> None:
            raise Nope("asyncio side")

        async def in_trio_bad() -> None:
            await bridge.run_asyncio(bad)

        with pytest.raises(Nope):
            await bridge.run(in_trio_bad)

        q: asyncio.Queue[int] = asyncio.Queue()

        async def post() -> None:
            bridge.call_soon_asyncio(q.put_nowait, 7)

        await bridge.run(post)
        assert await asyncio.wait_for(q.get(), 5) == 7

    asyncio.run(main())


def test_start_soon_background_task_and_failure_isolated(bridge: TrioThread) -> None:
    done = threading.Event()

    async def crash() -> None:
        raise ValueError("background failure")

    async def ok() -> None:
        await trio.sleep(0)
        done.set()

    async def main() -> None:
        bridge.start()
        bridge.start_soon(crash)
        bridge.start_soon(ok)
        assert await asyncio.to_thread(done.wait, 5)
        assert await bridge.run(trio.sleep, 0) is None  # still alive

    asyncio.run(main())


def test_stop_cancels_pending_calls_and_refuses_new_ones() -> None:
    bridge = TrioThread(name="test-bridge")

    async def main() -> None:
        bridge.start()
        pending = asyncio.create_task(bridge.run(trio.sleep_forever))
        await asyncio.sleep(0.05)
        await bridge.aclose()
        with pytest.raises(BridgeStopped):
            await pending
        with pytest.raises(BridgeStopped):
            await bridge.run(trio.sleep, 0)

    asyncio.run(main())
    assert not _trio_threads()
    bridge.stop()  # idempotent


def test_run_blocking_from_plain_thread(bridge: TrioThread) -> None:
    bridge.start()

    async def add(a: int, b: int) -> int:
        await trio.sleep(0)
        return a + b

    assert bridge.run_blocking(add, 2, 3) == 5


def test_misuse_is_reported() -> None:
    b = TrioThread(name="test-bridge")
    with pytest.raises(BridgeStopped):
        b.run_blocking(trio.sleep, 0)
    b.start()
    try:
        with pytest.raises(BridgeError, match="already started"):
            b.start()
        with pytest.raises(BridgeError, match="no asyncio loop"):
            b.run_blocking(_call_run_asyncio, b)
    finally:
        b.stop()


async def _call_run_asyncio(b: TrioThread) -> None:
    async def nothing() -> None:
        return None

    await b.run_asyncio(nothing)


def test_many_concurrent_calls_each_get_their_own_result(bridge: TrioThread) -> None:
    async def echo(i: int) -> int:
        await trio.sleep(0.001 * (i % 7))
        return i

    async def main() -> None:
        bridge.start()
        results = await asyncio.gather(*(bridge.run(echo, i) for i in range(500)))
        assert results == list(range(500))

    asyncio.run(main())


def test_trio_cancellation_cancels_the_asyncio_side(bridge: TrioThread) -> None:
    async def main() -> None:
        bridge.start()
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def slow_asyncio() -> None:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def in_trio() -> bool:
            with trio.move_on_after(0.1) as scope:
                await bridge.run_asyncio(slow_asyncio)
            return scope.cancelled_caught

        assert await bridge.run(in_trio) is True
        await asyncio.wait_for(cancelled.wait(), 5)
        assert started.is_set()

    asyncio.run(main())


def test_run_blocking_caller_gets_bridge_stopped_when_the_bridge_stops() -> None:
    bridge = TrioThread(name="test-bridge")
    bridge.start()
    started = threading.Event()
    outcome: list[BaseException] = []

    async def forever() -> None:
        started.set()
        await trio.sleep_forever()

    def worker() -> None:
        try:
            bridge.run_blocking(forever)
        except BaseException as exc:  # recorded for the assertion below
            outcome.append(exc)

    t = threading.Thread(target=worker, name="test-bridge-worker")
    t.start()
    assert started.wait(5)
    bridge.stop()
    t.join(5)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], BridgeStopped)


def test_service_failing_after_start_is_logged_and_the_bridge_lives_on(bridge: TrioThread, caplog) -> None:
    async def service(*, task_status) -> None:
        task_status.started("up")
        await trio.sleep(0)
        raise ValueError("service broke")

    async def start_it() -> str:
        return await bridge.start_service(service)

    async def main() -> None:
        bridge.start()
        assert await bridge.run(start_it) == "up"
        await asyncio.sleep(0.05)
        assert await bridge.run(trio.sleep, 0) is None

    with caplog.at_level("ERROR", logger="node.p2p.bridge"):
        asyncio.run(main())
    assert "service broke" in caplog.text
