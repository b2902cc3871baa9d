"""Logging of the daemon: one line per event, levels per subsystem.

Format: ``2026-11-24T05:30:00.123Z INFO pinset message`` (UTC, the subsystem is
the logger name without the ``node.``/``cluster.``/``bitswap.`` package
prefix). ``Logging.Level`` sets the default level, ``Logging.Subsystems`` maps
subsystems (logger name prefixes such as ``pinset``, ``pintracker``,
``libp2p``) to their own level. A traceback is printed only for unexpected
errors (``log.exception``); expected failures log one line. Resource errors
(out of file descriptors...) are logged once per interval with a count of the
ones left out (:mod:`node.ratelog`), however many connections hit them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from .ratelog import ResourceErrorFilter

#: py-libp2p's TCP transport logger, silenced below CRITICAL unless a ``libp2p`` subsystem level is set
QUIET_TCP_LOGGER = "libp2p.transport.tcp"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_PREFIXES = ("node.p2p.", "node.cluster.", "node.", "cluster.crdt.", "cluster.", "bitswap.", "blockstore.")


def subsystem(name: str) -> str:
    """The short subsystem name of a logger (``node.cluster.pinset`` -> ``pinset``)."""
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


class LineFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <subsystem> <message>`` (+ the traceback of unexpected errors)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"{ts} {record.levelname} {subsystem(record.name)} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(config: dict[str, Any], stream: TextIO | None = None) -> None:
    """Configure the root logger from the ``Logging`` config section (idempotent)."""
    section = config["Logging"]
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pinion", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LineFormatter())
    handler.addFilter(ResourceErrorFilter())
    handler._pinion = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(section["Level"])
    subsystems = section["Subsystems"] or {}
    if any(name == "libp2p" or name.startswith("libp2p.") for name in subsystems):
        # importing py-libp2p sets its logger to WARNING and stops it propagating (its own
        # LIBP2P_DEBUG handling): import it first, then let its records reach our handler
        import libp2p  # noqa: F401

        logging.getLogger("libp2p").propagate = True
        logging.getLogger(QUIET_TCP_LOGGER).setLevel(logging.NOTSET)
    else:
        # an ERROR line for every dial that fails (a peer that is down): the caller reports
        # the failure in its own terms, at the level it deserves
        logging.getLogger(QUIET_TCP_LOGGER).setLevel(logging.CRITICAL)
    for name, level in subsystems.items():
        for prefix in ("", *_PREFIXES):
            logging.getLogger(prefix + name).setLevel(level)
