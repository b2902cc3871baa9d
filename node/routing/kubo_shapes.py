"""kubo's ``routing/*`` output objects (``routing.QueryEvent`` of go-libp2p, as kubo's RPC writes them).

NDJSON, one event per line: ``{"Extra": "", "ID": "", "Responses": [{"Addrs": [...], "ID": "..."}], "Type": N}``
with kubo's event types (go-libp2p ``core/routing/query.go``).
"""

from __future__ import annotations

from typing import Any

from bitswap.routing.records import PeerRecord

SENDING_QUERY = 0
PEER_RESPONSE = 1
FINAL_PEER = 2
QUERY_ERROR = 3
PROVIDER = 4
VALUE = 5
ADDING_PEER = 6
DIALING_PEER = 7


def query_event(kind: int, records: list[PeerRecord] | None = None, *, peer: str = "", extra: str = "") -> dict[str, Any]:
    """One event; ``Responses`` is null when there are none (as kubo)."""
    responses = [{"Addrs": list(r.addrs), "ID": r.id_str} for r in records] if records else None
    return {"Extra": extra, "ID": peer, "Responses": responses, "Type": kind}
