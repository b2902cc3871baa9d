"""node/cluster/status.py's merge of the pinset, this peer's tracker and the other peers' status streams.

Real ClusterStatus, with the pinset, tracker, membership and peer RPC replaced by
small in-memory stand-ins that serve the same calls (stored DAG-CBOR pins, status
rows, encoded status streams), so every rule of the peer map is checked on one
listing: ``remote`` where a pin is not allocated, the streamed row where it is,
``pin_queued`` where the peer does not track it yet, ``cluster_error`` for a
stream that fails and for allocated peers gone from the peer set (once each).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

import node.cluster.status as status_mod
from blockstore.cid import cid_for, cid_to_str
from cluster.pin import Pin, ns_to_rfc3339
from cluster.status import STATUSES, StatusRow, encode_status, parse_filter
from node.cluster.status import ClusterStatus
from node.p2p.peer_rpc import PeerRpcError

ME, B, C, GONE = "peer-me", "peer-b", "peer-c", "peer-gone"
CIDS = sorted(cid_for(b"pin %d" % i) for i in range(5))
PINNED_AT = 1_700_000_000_123_456_789


class Pinset:
    def __init__(self, pins: list[Pin]) -> None:
        self.pins = sorted(pins, key=lambda p: p.cid)

    def page(self, start: bytes | None) -> list[tuple[bytes, bytes]]:
        rows = [(p.cid, p.to_cbor()) for p in self.pins if start is None or p.cid >= start]
        return rows[: status_mod.PINSET_PAGE + 1]

    async def iter_pins(self, start: bytes | None = None, *, name: str | None = None, meta: Any = None, cids: Sequence[bytes] | None = None) -> AsyncIterator[Pin]:
        for p in self.pins:
            if (cids is None or p.cid in cids) and (not name or p.name == name):
                yield p


class Tracker:
    def __init__(self, rows: dict[bytes, StatusRow]) -> None:
        self.rows = rows

    def page_status(self, page: Sequence[tuple[bytes, Mapping[str, Any]]]) -> list[StatusRow]:
        out: list[StatusRow] = []
        for cid, fields in page:
            allocations = fields.get("allocations")
            out.append(self.rows.get(cid) or (("remote", 0, "", 0, False) if allocations and ME not in allocations else ("pinned", 0, "", 0, False)))
        return out


class Members:
    peer_id = ME

    def peerset(self) -> list[str]:
        return [ME, B, C]

    def identity(self, peer: str) -> tuple[str, str, tuple[str, ...]]:
        return (f"name of {peer}", "" if peer == GONE else f"ipfs-{peer}", () if peer == GONE else (f"/ip4/10.0.0.1/tcp/4001/p2p/ipfs-{peer}",))


class Rpc:
    """Each peer's status_all stream: encoded rows in CID order; C's fails after its first item."""

    def __init__(self, streams: dict[str, list[tuple[bytes, StatusRow]]], fail_after: dict[str, int]) -> None:
        self.streams, self.fail_after = streams, fail_after

    async def stream(self, peer: str, method: str, args: Any = None, *, timeout: float = 0) -> AsyncIterator[Any]:
        assert method == "status_all"
        for i, (cid, row) in enumerate(self.streams[peer]):
            if i == self.fail_after.get(peer, -1):
                raise PeerRpcError(f"status_all on {peer}: the stream broke")
            yield encode_status(cid, peer, row)


def _listing(monkeypatch: pytest.MonkeyPatch, **query: Any) -> list[dict[str, Any]]:
    monkeypatch.setattr(status_mod, "PINSET_PAGE", 2)  # several pages, each merged with the streams
    pins = [
        Pin(CIDS[0], name="b only", allocations=(B,), replication_factor_min=1, replication_factor_max=1, timestamp=5),
        Pin(CIDS[1], name="everyone"),
        Pin(CIDS[2], name="c and a gone peer", allocations=(C, GONE, GONE), replication_factor_min=1, replication_factor_max=3),
        Pin(CIDS[3], name="mine failed", allocations=(ME, B), replication_factor_min=1, replication_factor_max=2),
        Pin(CIDS[4], name="b lags", allocations=(B,), replication_factor_min=1, replication_factor_max=1),
    ]
    tracker = Tracker({CIDS[3]: ("pin_error", 7, "boom", 2, True)})
    streams = {
        B: [(CIDS[0], ("pinned", PINNED_AT, "", 1, False)), (CIDS[1], ("pinning", 9, "", 1, True)), (CIDS[3], ("pinned", 11, "", 1, False))],
        C: [(CIDS[1], ("pinned", 12, "", 1, False)), (CIDS[2], ("pinned", 13, "", 1, False))],
    }
    status = ClusterStatus(Pinset(pins), tracker, Members(), Rpc(streams, {C: 1}))  # type: ignore[arg-type]

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        lines = [line async for chunk in status.status_all_ndjson(**query) for line in chunk.decode().splitlines()]
        dicts = [d async for d in status.status_all(**query)]
        parsed = [json.loads(line) for line in lines]
        for line, gpi in zip(lines, parsed):  # each peer once in the text too (JSON parsing hides duplicates)
            assert line.count(':{"peername":') == len(gpi["peer_map"]), line
        return parsed, dicts

    from_text, from_dicts = asyncio.run(run())
    assert _untimed(from_text) == _untimed(from_dicts)  # the rows made here are stamped when made
    return from_text


def _untimed(gpis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**g, "peer_map": {p: {k: v for k, v in e.items() if k != "timestamp"} for p, e in g["peer_map"].items()}} for g in gpis]


def _statuses(gpi: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(peer, e["status"], e["error"]) for peer, e in gpi["peer_map"].items()]


def test_the_merged_listing_follows_every_rule_of_the_peer_map(monkeypatch: pytest.MonkeyPatch) -> None:
    gpis = _listing(monkeypatch)
    assert [g["cid"] for g in gpis] == [cid_to_str(c) for c in CIDS]
    by_name = {g["name"]: g for g in gpis}
    broke = "status_all on peer-c: the stream broke"
    assert _statuses(by_name["b only"]) == [(ME, "remote", ""), (B, "pinned", ""), (C, "remote", "")]
    assert _statuses(by_name["everyone"]) == [(ME, "pinned", ""), (B, "pinning", ""), (C, "pinned", "")]
    gone = "peer is not in the peer set: no ping within the metric TTL"
    assert _statuses(by_name["c and a gone peer"]) == [(ME, "remote", ""), (B, "remote", ""), (C, "cluster_error", broke), (GONE, "cluster_error", gone)]
    assert _statuses(by_name["mine failed"]) == [(ME, "pin_error", "boom"), (B, "pinned", ""), (C, "remote", "")]
    assert _statuses(by_name["b lags"]) == [(ME, "remote", ""), (B, "pin_queued", ""), (C, "remote", "")]
    b_entry = by_name["b only"]["peer_map"][B]
    assert b_entry == {
        "peername": "name of peer-b", "status": "pinned", "timestamp": ns_to_rfc3339(PINNED_AT), "error": "",
        "attempt_count": 1, "priority_pin": False, "ipfs_peer_id": "ipfs-peer-b",
        "ipfs_peer_addresses": ["/ip4/10.0.0.1/tcp/4001/p2p/ipfs-peer-b"],
    }
    assert "ipfs_peer_id" not in by_name["c and a gone peer"]["peer_map"][GONE]  # no identity known: left out
    mine = by_name["mine failed"]["peer_map"][ME]
    assert (mine["attempt_count"], mine["priority_pin"], mine["timestamp"]) == (2, True, ns_to_rfc3339(7))
    assert by_name["b only"]["created"] == ns_to_rfc3339(5) and by_name["b only"]["allocations"] == [B]


def test_local_lists_this_peer_only_and_filters_keep_pins_with_a_matching_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    local = _listing(monkeypatch, local=True)
    assert len(local) == 5 and all(list(g["peer_map"]) == [ME] for g in local)
    errors = _listing(monkeypatch, filter_mask=parse_filter("error"))
    assert [g["name"] for g in errors] == ["c and a gone peer", "mine failed"]
    queued = _listing(monkeypatch, filter_mask=STATUSES["pin_queued"])
    assert [g["name"] for g in queued] == ["b lags"]
    some = _listing(monkeypatch, cids=[CIDS[4], CIDS[0]])
    assert [g["name"] for g in some] == ["b only", "b lags"]
    assert _statuses(some[1]) == [(ME, "remote", ""), (B, "pin_queued", ""), (C, "remote", "")]
