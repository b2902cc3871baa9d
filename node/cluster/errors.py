"""The cluster peer's errors, mapped to HTTP by the REST and pinning-service APIs."""

from __future__ import annotations


class NotFoundError(LookupError):
    """The pin (or peer) is not there: HTTP 404."""


class ClusterError(RuntimeError):
    """The cluster cannot do it now: HTTP 500 with the message."""
