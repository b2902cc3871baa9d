"""The process's open-file limit, and how many HTTP connections fit in it.

Every connection, LevelDB table file and libp2p stream socket is a file descriptor. The
usual soft limit, 1,024, is what 1,100 idle connections exhaust; the hard limit is usually
far higher. :func:`raise_open_files_limit` raises the soft limit to the hard one at daemon
start (kubo raises it too, to ``IPFS_FD_MAX``:
https://github.com/ipfs/kubo/blob/master/cmd/ipfs/util/ulimit.go). :func:`connection_caps` then sizes the HTTP servers' caps so that, all
servers full, descriptors are left for LevelDB (its ``max_open_files``) and libp2p.
"""

from __future__ import annotations

import resource
from typing import NamedTuple

from .http_limits import ACCEPT_BATCH, MAX_LINGERING

#: descriptors kept for LevelDB (``max_open_files`` in blockstore/db.py)
LEVELDB_FILES = 500
#: descriptors kept for everything else: libp2p connections, listeners, pipes, logs
OTHER_FILES = 256
#: a server accepts at least this many connections however low the limit is
MIN_PER_SERVER = 16


class ConnectionCaps(NamedTuple):
    """Connections one HTTP server keeps at most, in all and from one client address."""

    per_server: int
    per_client: int


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (before, after) soft limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard
        if hard == resource.RLIM_INFINITY:
            target = 1 << 20  # the kernel's usual nr_open; "unlimited" is refused as a soft limit
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def open_files_limit() -> int:
    """The current soft RLIMIT_NOFILE."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_caps(limit: int, servers: int, *, max_per_server: int, max_per_client: int) -> ConnectionCaps:
    """Caps for each of ``servers`` HTTP servers under an open-file ``limit``.

    Half the limit at most is kept for LevelDB and the rest of the process, and each server
    keeps room for the connections it is accepting or refusing at any instant
    (node/http_limits.py: ``ACCEPT_BATCH`` + ``MAX_LINGERING``); what is left is shared evenly
    by the servers (at least :data:`MIN_PER_SERVER` each), and one client may hold a quarter
    of a server's connections. The configured maxima bound both.
    """
    servers = max(1, servers)
    reserved = min(LEVELDB_FILES + OTHER_FILES, limit // 2) + servers * (ACCEPT_BATCH + MAX_LINGERING)
    per_server = min(max_per_server, max(MIN_PER_SERVER, (limit - reserved) // servers))
    per_client = min(max_per_client, max(1, per_server // 4))
    return ConnectionCaps(per_server, per_client)
