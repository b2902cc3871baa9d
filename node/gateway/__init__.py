"""The HTTP gateway: path gateway (deserialized UnixFS) and trustless gateway (raw blocks, CAR)."""

from .app import make_gateway_app
from .errors import GatewayError
from .source import BlockNotFound, BlockSource, StoreBlockSource

__all__ = ["make_gateway_app", "BlockSource", "BlockNotFound", "StoreBlockSource", "GatewayError"]
