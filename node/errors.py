"""The node layer's errors, and the one function every server maps errors with.

One tree per layer, each with an HTTP status hint on its base class:
:class:`blockstore.errors.BlockstoreError`, :class:`bitswap.errors.BitswapError`,
:class:`cluster.errors.ClusterError` and :class:`NodeError` here (the core API, uploads,
configuration, repo, workers, peer RPC, the kubo RPC and gateway errors). Each HTTP server
(kubo RPC, gateway, cluster REST, pinning service) turns an exception into a response in one
place, asking :func:`status_hint` for the status; a server may still apply its own protocol's
rule on top (kubo answers every command error with 500, for instance).
"""

from __future__ import annotations

from bitswap.errors import BitswapError
from blockstore.errors import BlockstoreError
from cluster.errors import ClusterError

__all__ = ["NodeError", "CoreError", "NotFound", "BadRequest", "Busy", "status_hint"]


class NodeError(Exception):
    """Base of the node layer's errors: an operation that cannot be done, in one clear line.

    ``status`` is the HTTP status a server answers with (a class attribute; some subclasses
    set it per instance)."""

    status: int = 500


class CoreError(NodeError):
    """An operation of the core API (node/core.py) that cannot be done: the errors the kubo RPC
    answers as command errors and the CLI prints as its one line."""


class NotFound(CoreError):
    """A CID, path or block that is not there (HTTP 404)."""

    status = 404


class BadRequest(CoreError):
    """Malformed input: a bad CID, path, option or file (HTTP 400)."""

    status = 400


class Busy(CoreError):
    """The node cannot take it now (its pin queue is full): HTTP 429, try again later."""

    status = 429


_OURS = (NodeError, ClusterError, BitswapError, BlockstoreError)


def status_hint(exc: BaseException) -> int | None:
    """The HTTP status ``exc`` calls for: its ``status`` hint when it is one of Pinion's errors,
    400 for any other ``ValueError`` (input that did not parse), None when nothing says."""
    if isinstance(exc, _OURS):
        status = getattr(exc, "status", None)
        if isinstance(status, int) and 400 <= status <= 599:
            return status
        return 500
    if isinstance(exc, ValueError):
        return 400
    return None
