"""A rich progress bar on stderr for long CLI commands (``pinion add``, ``ctl add``, ``state export``, ...)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def progress(enabled: bool, total: int | None, label: str, unit: str = "bytes") -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal; yields an advance(n) callback or None.

    ``unit``: ``"bytes"`` (sizes and transfer speed) or a word for counted items (``"pins"``, ``"blocks"``).
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[Any] = ["[progress.description]{task.description}"]
    if unit == "bytes":
        columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    elif total is None:
        columns += [SpinnerColumn(), "{task.completed:,} " + unit, TimeElapsedColumn()]
    else:
        columns += [BarColumn(), MofNCompleteColumn(), unit, TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
