"""The kubo RPC subset (``/api/v0``): routes, multipart parsing and upload streaming."""

from .app import RpcContext, make_rpc_app

__all__ = ["RpcContext", "make_rpc_app"]
