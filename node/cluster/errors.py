"""The cluster peer's errors are the cluster layer's: see :mod:`cluster.errors`."""

from __future__ import annotations

from cluster.errors import ClusterError, NotFoundError

__all__ = ["ClusterError", "NotFoundError"]
