"""The block store layer's errors: one base, :class:`BlockstoreError`, with an HTTP status hint.

Every error this package raises derives from :class:`BlockstoreError`. Its ``status`` is a
hint for the servers above (``node/``), which map errors to responses in one place each
(see :func:`node.errors.status_hint`); this layer itself knows nothing of HTTP.

- :class:`InvalidData` (400): input that is not what it claims to be (a CID, CAR, dag-pb,
  dag-cbor, dag-json, UnixFS node, chunker string, ...). It is also a ``ValueError``.
- :class:`BlockNotFound` (404): a block the operation needs is not stored; ``cid`` names it.
  It is also a ``LookupError``.
"""

from __future__ import annotations

__all__ = ["BlockstoreError", "InvalidData", "BlockNotFound"]


class BlockstoreError(Exception):
    """Base of the block store layer's errors; ``status`` is the HTTP status a server answers with."""

    status: int = 500


class InvalidData(BlockstoreError, ValueError):
    """Bytes or text that do not decode as what they claim to be (HTTP 400)."""

    status = 400


class BlockNotFound(BlockstoreError, LookupError):
    """A block the operation needs is not available; ``cid`` names it (HTTP 404)."""

    status = 404

    def __init__(self, cid: bytes) -> None:
        from .cid import cid_to_str  # cid.py's own errors derive from this module's classes

        self.cid = cid
        try:
            text = cid_to_str(cid)
        except (ValueError, TypeError):
            text = cid.hex()
        super().__init__(text)
