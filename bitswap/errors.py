"""The network layer's errors (bitswap and content routing): one base, :class:`BitswapError`.

``status`` is an HTTP status hint for the servers in ``node/`` (which map errors once each,
see :func:`node.errors.status_hint`): the network failing to deliver is a gateway problem
(502/504), a peer's malformed message is that peer's fault, never the local client's.

- :class:`BlockNotDelivered` (504): no peer delivered a wanted block before the timeout.
- :class:`BadMessage` (502): a peer sent bytes that do not decode (bitswap, DHT, routing
  answers); also a ``ValueError``.
- :class:`NetworkUnavailable` (502): a fetch, a router or the DHT failed; also a ``RuntimeError``.
"""

from __future__ import annotations

__all__ = ["BitswapError", "BlockNotDelivered", "BadMessage", "NetworkUnavailable"]


class BitswapError(Exception):
    """Base of the network layer's errors; ``status`` is the HTTP status a server answers with."""

    status: int = 502


class BlockNotDelivered(BitswapError, LookupError):
    """No peer delivered the block before the timeout (HTTP 504)."""

    status = 504


class BadMessage(BitswapError, ValueError):
    """A peer's message or answer that does not decode (HTTP 502)."""


class NetworkUnavailable(BitswapError, RuntimeError):
    """A fetch, router or DHT operation that failed (HTTP 502)."""
