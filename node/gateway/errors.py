"""The gateway's one error: a request that ends in an HTTP status with one clear message."""

from __future__ import annotations
from ..errors import NodeError

__all__ = ["GatewayError"]


class GatewayError(NodeError):
    """A request that ends in an HTTP error: ``status`` plus one clear message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
