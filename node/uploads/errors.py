"""The one error of an upload that cannot be done, with the HTTP status it calls for.

Each server maps it once at its edge: the kubo RPC (:mod:`node.kuborpc.app`) as kubo's
error JSON (``client``: code 1, a request go-ipfs-cmds refuses before running the
command; else code 0), the cluster REST API (:mod:`node.restapi.add`) as its
``{"code","message"}`` body.
"""

from __future__ import annotations
from ..errors import NodeError


class UploadError(NodeError):
    """An upload refused or failed: ``status`` is the HTTP status, ``client`` whether the
    request itself is malformed (400, 408, 413) rather than the command failing (500)."""

    def __init__(self, message: str, *, status: int = 500, client: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.client = client
