"""The cluster layer's errors: one base, :class:`ClusterError`, with an HTTP status hint.

Every error of ``cluster/`` (pins, pin options, allocation, the tracker's queue, status
records, the CRDT) and of the cluster peer in ``node/cluster/`` derives from
:class:`ClusterError`. ``status`` is the HTTP status the REST and pinning-service APIs answer
with (they map errors in one place, :func:`node.errors.status_hint`).

- :class:`InvalidRequest` (400): a pin, option, metric, delta or record that is malformed or
  cannot be placed; also a ``ValueError``.
- :class:`NotFoundError` (404): the pin or peer is not there; also a ``LookupError``.
- :class:`ClusterError` itself (500): the cluster cannot do it now.
"""

from __future__ import annotations

__all__ = ["ClusterError", "InvalidRequest", "NotFoundError"]


class ClusterError(Exception):
    """Base of the cluster layer's errors; raised as is when the cluster cannot do it now (500)."""

    status: int = 500


class InvalidRequest(ClusterError, ValueError):
    """Malformed or unplaceable input (HTTP 400)."""

    status = 400


class NotFoundError(ClusterError, LookupError):
    """The pin (or peer) is not there (HTTP 404)."""

    status = 404
