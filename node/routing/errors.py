"""Content routing's one error, in a module of its own so that the kubo RPC routes can name it
without importing the routing service (and with it py-libp2p) in an ``--offline`` daemon."""

from __future__ import annotations

from ..errors import NodeError

__all__ = ["RoutingUnavailable"]


class RoutingUnavailable(NodeError, RuntimeError):
    """The operation needs a router this node does not run (e.g. provide with Routing.Type none)."""
