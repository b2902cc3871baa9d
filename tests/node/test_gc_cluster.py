"""Garbage collection on a cluster peer (real daemons): GC keeps what the cluster still needs.

The issue's reproduction: pins queued for CIDs nobody has keep the tracker
busy; content uploaded through the REST API's ``/add`` is stored without a
local pin until its cluster pin is done; a ``repo gc`` at that moment must not
delete it, online (the daemon's RPC) or offline (on the repo, daemon stopped).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from blockstore.cid import cid_for, cid_to_str
from test_cluster_peers import _init, _json, _multipart, _req, _statuses, _wait


@pytest.mark.timeout(300)
def test_gc_keeps_uploads_and_queued_pins_until_their_cluster_pin_is_done(make_node: Any, tmp_path: Path) -> None:
    # one worker, pins that never finish: whatever comes next waits in the queue
    node = _init(make_node, "a", secrets.token_hex(32), PinTracker={"ConcurrentPins": 1, "PinTimeout": 600})
    node.start()
    me = node.endpoints["cluster_peer_id"]
    unreachable = [cid_to_str(cid_for(os.urandom(32))) for _ in range(3)]
    for cid in unreachable:
        _json(node, "POST", f"/pins/{cid}")
    _wait("one pin fetching", lambda: _statuses(_json(node, "GET", f"/pins/{unreachable[0]}"))[me] == "pinning", [node])

    precious = os.urandom(700_000)
    body, ctype = _multipart("file", "precious.bin", precious)
    status, out, _h = _req(node, "POST", "/add?cid-version=1&stream-channels=false", body, {"Content-Type": ctype})
    assert status == 200, out
    cid = json.loads(out)[-1]["cid"]

    node.cli("repo", "gc")  # online: through the daemon
    assert node.cli("cat", cid).stdout == precious
    allocations = {p["cid"] for p in [_json(node, "GET", f"/allocations/{c}") for c in [cid, *unreachable]]}
    assert allocations == {cid, *unreachable}  # nothing left the pinset either

    # offline too: the daemon stopped, GC on the repo keeps the cluster's pins and the upload
    node.stop()
    node.cli("repo", "gc")
    assert node.cli("cat", cid).stdout == precious
    node.start()
    _wait("the upload pinned", lambda: _statuses(_json(node, "GET", f"/pins/{cid}"))[me] == "pinned", [node])
    node.cli("repo", "gc")
    assert node.cli("cat", cid).stdout == precious
