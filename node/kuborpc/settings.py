"""The kubo RPC's configuration, read once when the daemon builds the API (issue 15 item 6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..p2p.identity import public_key_b64

__all__ = ["RpcSettings"]


@dataclass(frozen=True, slots=True)
class RpcSettings:
    """What the RPC handlers need from the config: the node's identity, upload limits, auth.

    Built by :meth:`from_config` from a config that :mod:`node.config` has validated and
    filled with its defaults, so no default is restated here."""

    #: this node's swarm peer ID (``Identity.PeerID``)
    peer_id: str
    #: its public key, base64 protobuf as ``id`` answers it ("" without a private key)
    public_key: str
    #: the key could not be read: ``id`` answers this error (a broken identity never stops the API)
    public_key_error: str
    #: ``Datastore.MaxUploadSize`` (0: no limit)
    max_upload_size: int
    #: ``HTTP.BodyTimeout``: seconds an upload may send no body bytes
    body_timeout: float
    #: ``API.BasicAuthCredentials`` (None: no authentication)
    credentials: Mapping[str, str] | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RpcSettings:
        """Settings from a loaded config."""
        ident = config["Identity"]
        public_key, error = "", ""
        if ident.get("PrivKey"):
            try:
                public_key = public_key_b64(ident["PrivKey"])
            except ValueError as exc:
                error = str(exc)
        return cls(
            peer_id=str(ident["PeerID"]),
            public_key=public_key,
            public_key_error=error,
            max_upload_size=int(config["Datastore"]["MaxUploadSize"]),
            body_timeout=float(config["HTTP"]["BodyTimeout"]),
            credentials=dict(config["API"]["BasicAuthCredentials"] or {}) or None,
        )
