"""Resource errors (out of file descriptors, buffers or memory) logged once per interval.

When a process runs out of file descriptors, every accept, every connection and every file
open fails the same way, and each failure would log a traceback: a flood of idle connections
once grew the log by 249 MB in 20 s, which then fills the disk too. :class:`ResourceErrorFilter`
sits on the daemon's log handler (node/logsetup.py) and lets one such record per logger and
error through per :data:`INTERVAL` seconds, as one line without the traceback; the next one
let through says how many were left out meanwhile. Every other record passes untouched.

A record is a resource error when its exception is an ``OSError`` with errno ``EMFILE``,
``ENFILE``, ``ENOBUFS`` or ``ENOMEM`` (asyncio's accept loop, aiohttp, trio and libp2p
listeners log these), or when its message carries ``Too many open files`` (LevelDB's
``IOError``).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

#: seconds between two log lines of the same resource error from the same logger
INTERVAL = 10.0
#: errno values that mean "out of a resource", not "this connection failed"
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_EMFILE_TEXT = os.strerror(errno.EMFILE)  # "Too many open files"


def resource_errno(exc: BaseException | None) -> int | None:
    """The errno of ``exc`` (or of an exception it was raised from) when it is a resource error."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            return exc.errno
        if _EMFILE_TEXT in str(exc):
            return errno.EMFILE
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class ResourceErrorFilter(logging.Filter):
    """Lets one resource error per (logger, errno) through per ``interval`` seconds (see module docstring)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, int], tuple[float, int]] = {}  # -> (when logged, left out since)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        code = resource_errno(exc)
        message = record.getMessage()
        if code is None and _EMFILE_TEXT in message:
            code = errno.EMFILE
        if code is None:
            return True
        key = (record.name, code)
        now = time.monotonic()
        with self._lock:
            last, left_out = self._last.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._last[key] = (last, left_out + 1)
                return False
            self._last[key] = (now, 0)
        first_line = message.splitlines()[0] if message else ""
        text = first_line if _EMFILE_TEXT in first_line else f"{first_line}: [Errno {code}] {os.strerror(code)}"
        if left_out:
            text += f" ({left_out} more like it in the last {now - last:.0f} s not logged)"  # type: ignore[operator]
        record.msg, record.args = text, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
