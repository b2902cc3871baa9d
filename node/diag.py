"""A dump of every task of the daemon, for an operator chasing a hang (``kill -USR1 <pid>``).

Like Go's goroutine dump (SIGQUIT in kubo and IPFS Cluster), without stopping
the daemon: every asyncio task (HTTP handlers, the cluster's loops) and every
trio task (the libp2p hosts, bitswap, the bridge's calls), each with the
frames it is waiting in, innermost last. The daemon writes it to its log
stream (stderr). A task parked on a dead connection, or a loop that stopped,
shows there when no metric does.
"""

from __future__ import annotations

import asyncio
import os
import types
from collections.abc import Iterable

import trio

#: frames printed per task (the innermost ones)
MAX_FRAMES = 12


def _frame_line(frame: types.FrameType, lineno: int | None = None) -> str:
    path = frame.f_code.co_filename
    for marker in ("site-packages" + os.sep, os.sep + "lib" + os.sep + "python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{lineno if lineno is not None else frame.f_lineno} in {frame.f_code.co_name}"


def _await_chain(coro: object) -> list[types.FrameType]:
    """The frames of ``coro`` and of what it awaits, outermost first (``Task.get_stack``
    gives only the outermost one)."""
    frames: list[types.FrameType] = []
    while coro is not None and len(frames) < 100:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return frames


def asyncio_task_lines(tasks: Iterable[asyncio.Task[object]] | None = None) -> list[str]:
    """One header line per asyncio task (name, coroutine) and its frames, indented."""
    lines: list[str] = []
    for task in sorted(tasks if tasks is not None else asyncio.all_tasks(), key=lambda t: t.get_name()):
        coro = task.get_coro()
        lines.append(f"asyncio task {task.get_name()}: {getattr(coro, '__qualname__', coro)!s}")
        lines.extend("    " + _frame_line(f) for f in _await_chain(coro)[-MAX_FRAMES:])
    return lines


def trio_task_lines() -> list[str]:
    """The trio task tree of the running trio thread (call from that thread), children indented."""
    lines: list[str] = []

    def walk(task: trio.lowlevel.Task, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}trio task {task.name}")
        frames = list(task.iter_await_frames())[-MAX_FRAMES:]
        lines.extend(f"{pad}    {_frame_line(frame, lineno)}" for frame, lineno in frames)
        for nursery in task.child_nurseries:
            for child in sorted(nursery.child_tasks, key=lambda t: t.name):
                walk(child, depth + 1)

    walk(trio.lowlevel.current_root_task(), 0)
    return lines
