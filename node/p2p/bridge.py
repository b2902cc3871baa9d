"""The one bridge between asyncio (main thread, aiohttp) and trio (py-libp2p, one thread).

py-libp2p runs on trio; the daemon runs on asyncio. ``TrioThread`` starts a
trio event loop in a dedicated thread and lets asyncio code:

- ``await bridge.run(async_fn, *args)``: run a trio coroutine function and get
  its result or its exception; cancelling the awaiting asyncio task cancels
  the trio task;
- ``bridge.start_soon(async_fn, *args)``: start a background trio task (its
  failure is logged, never takes the loop down);
- ``bridge.stop()`` / ``await bridge.aclose()``: cancel every trio task and
  join the thread.

Trio code calls back into asyncio with ``await bridge.run_asyncio(coro_fn, *args)``
or posts without waiting with ``bridge.call_soon_asyncio(fn, *args)``. Plain
threads (CLI, workers) use ``bridge.run_blocking(async_fn, *args)``.
Nothing outside ``node/p2p/`` needs to know there are two loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from ..errors import NodeError

log = logging.getLogger(__name__)

T = TypeVar("T")


class BridgeError(NodeError, RuntimeError):
    """The bridge is not running (never started, or stopped) or was misused."""


class BridgeStopped(BridgeError):
    """The trio thread stopped before the call finished."""


class _CallState:
    """Cancellation handshake for one asyncio -> trio call."""

    __slots__ = ("scope", "cancel_requested")

    def __init__(self) -> None:
        self.scope: trio.CancelScope | None = None
        self.cancel_requested = False

    def cancel(self) -> None:
        """Runs in the trio thread: cancel the call, now or as soon as it starts."""
        self.cancel_requested = True
        if self.scope is not None:
            self.scope.cancel()


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """``loop.call_soon_threadsafe`` that tolerates a loop closed meanwhile (nobody left to tell)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        log.debug("asyncio loop closed; dropped %r", fn)


class TrioThread:
    """A trio event loop in a dedicated daemon thread, callable from asyncio."""

    def __init__(self, name: str = "pinion-libp2p") -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._main_scope: trio.CancelScope | None = None
        self._asyncio_loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._startup_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, asyncio_loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the trio thread and wait until its loop runs.

        ``asyncio_loop`` is the loop trio code calls back into; by default the
        running loop of the caller, if any.
        """
        if self._thread is not None:
            raise BridgeError("bridge already started")
        if asyncio_loop is None:
            try:
                asyncio_loop = asyncio.get_running_loop()
            except RuntimeError:
                asyncio_loop = None
        self._asyncio_loop = asyncio_loop
        self._thread = threading.Thread(target=self._thread_main, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise BridgeError(f"trio thread failed to start: {self._startup_error!r}")

    def _thread_main(self) -> None:
        try:
            trio.run(self._trio_main)
        except BaseException as exc:  # the loop itself died: record, never raise in a thread
            self._startup_error = exc
            log.exception("trio thread ended with an error")
        finally:
            self._token = None
            self._ready.set()

    async def _trio_main(self) -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                self._main_scope = scope
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await trio.sleep_forever()

    @property
    def running(self) -> bool:
        """True while the trio loop accepts calls."""
        return self._token is not None and not self._stopping

    def in_trio_thread(self) -> bool:
        """True when called from the bridge's trio thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every trio task and join the thread (idempotent)."""
        thread = self._thread
        if thread is None:
            return
        if self.in_trio_thread():
            raise BridgeError("stop() called from the trio thread itself")
        self._stopping = True
        token, scope = self._token, self._main_scope
        if token is not None and scope is not None:
            try:
                token.run_sync_soon(scope.cancel)
            except trio.RunFinishedError:
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise BridgeError(f"trio thread did not stop within {timeout} s")
        self._thread = None

    async def aclose(self, timeout: float = 10.0) -> None:
        """``stop()`` without blocking the asyncio loop while the thread joins."""
        await asyncio.to_thread(self.stop, timeout)

    def _require_token(self) -> trio.lowlevel.TrioToken:
        token = self._token
        if token is None or self._stopping:
            raise BridgeStopped("the libp2p trio thread is not running")
        return token

    # -- asyncio -> trio ---------------------------------------------------

    async def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``async_fn(*args)`` in trio from asyncio; return its result or raise its exception.

        Cancelling the awaiting asyncio task cancels the trio task.
        """
        token = self._require_token()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        state = _CallState()

        def settle(ok: bool, value: Any) -> None:
            if future.done():
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        async def task() -> None:
            with trio.CancelScope() as scope:
                state.scope = scope
                if state.cancel_requested:
                    scope.cancel()
                try:
                    result = await async_fn(*args)
                except trio.Cancelled:
                    if not state.cancel_requested:
                        _post(loop, settle, False, BridgeStopped("libp2p thread stopped during the call"))
                    raise
                except BaseException as exc:  # every failure crosses to the caller
                    _post(loop, settle, False, exc)
                    return
                _post(loop, settle, True, result)

        def spawn() -> None:
            nursery = self._nursery
            if nursery is None or self._stopping:
                _post(loop, settle, False, BridgeStopped("the libp2p trio thread is stopping"))
                return
            try:
                nursery.start_soon(task)
            except RuntimeError:  # the nursery already closed: the loop is ending
                _post(loop, settle, False, BridgeStopped("the libp2p trio thread is stopping"))

        try:
            token.run_sync_soon(spawn)
        except trio.RunFinishedError:
            raise BridgeStopped("the libp2p trio thread is not running") from None
        try:
            return await future
        except asyncio.CancelledError:
            if not future.done() or future.cancelled():
                try:
                    token.run_sync_soon(state.cancel)
                except trio.RunFinishedError:
                    pass
            raise

    def start_soon(self, async_fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> None:
        """Start ``async_fn(*args)`` as a background trio task (from any thread).

        An exception in it is logged; it does not stop the bridge.
        """
        token = self._require_token()
        label = name or getattr(async_fn, "__qualname__", repr(async_fn))

        async def guarded() -> None:
            try:
                await async_fn(*args)
            except trio.Cancelled:
                raise
            except Exception:
                log.exception("background libp2p task %s failed", label)

        def spawn() -> None:
            if self._nursery is not None and not self._stopping:
                try:
                    self._nursery.start_soon(guarded, name=label)
                except RuntimeError:  # the nursery already closed: the loop is ending
                    log.debug("background libp2p task %s not started: the bridge is stopping", label)

        if self.in_trio_thread():
            spawn()
            return
        try:
            token.run_sync_soon(spawn)
        except trio.RunFinishedError:
            raise BridgeStopped("the libp2p trio thread is not running") from None

    async def start_service(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """From trio: start a long-lived task in the bridge's nursery with ``nursery.start``.

        ``async_fn`` takes ``task_status=`` and calls ``task_status.started(value)``
        once ready; returns that value (or raises what it raised before that).
        The task lives until it returns or the bridge stops; a failure after it
        started is logged and does not stop the bridge.
        """
        if self._nursery is None or not self.in_trio_thread():
            raise BridgeError("start_service must be awaited from the bridge's trio thread")
        label = getattr(async_fn, "__qualname__", repr(async_fn))

        async def guarded(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            reported = False

            class Status:
                def started(self, value: Any = None) -> None:
                    nonlocal reported
                    reported = True
                    task_status.started(value)

            try:
                await async_fn(*args, task_status=Status())
            except Exception:
                if not reported:
                    raise  # nursery.start hands it to the caller
                log.exception("libp2p service %s failed", label)

        return await self._nursery.start(guarded)

    def run_blocking(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From a plain thread (not asyncio, not trio): run ``async_fn(*args)`` in trio and wait."""
        token = self._require_token()
        if self.in_trio_thread():
            raise BridgeError("run_blocking called from the trio thread (would deadlock)")
        try:
            return trio.from_thread.run(async_fn, *args, trio_token=token)
        except (trio.RunFinishedError, trio.Cancelled):
            raise BridgeStopped("the libp2p trio thread stopped during the call") from None

    # -- trio -> asyncio ---------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._asyncio_loop
        if loop is None or loop.is_closed():
            raise BridgeError("no asyncio loop attached to the bridge (start() it from asyncio)")
        return loop

    async def run_asyncio(self, coro_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From trio: run ``coro_fn(*args)`` on the asyncio loop and wait for its result.

        Cancelling the trio caller cancels the asyncio task.
        """
        loop = self._require_loop()
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        async def wrapper() -> T:
            return await coro_fn(*args)

        cf: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(wrapper(), loop)

        def wake(_: object) -> None:
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        cf.add_done_callback(wake)
        try:
            await done.wait()
        except trio.Cancelled:
            cf.cancel()
            raise
        return cf.result()

    def call_soon_asyncio(self, fn: Callable[..., Any], *args: Any) -> None:
        """From any thread: schedule ``fn(*args)`` on the asyncio loop without waiting.

        For events (``queue.put_nowait``); the asyncio side owns the drop policy.
        """
        _post(self._require_loop(), fn, *args)
