"""Garbage collection on a cluster peer (real daemons): GC keeps what the cluster still needs.

The issue's reproduction: pins queued for CIDs nobody has keep the tracker
busy; content uploaded through the REST API's ``/add`` is stored without a
local pin until its cluster pin is done; a ``repo gc`` at that moment must not
delete it, online (the daemon's RPC) or offline (on the repo, daemon stopped).
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from blockstore import importer
from blockstore.cid import cid_for, cid_to_str, multihash_of
from blockstore.uploads import Uploads
from cluster.pin import Pin
from cluster.tracker import TrackerStore
from node.core import CoreAPI
from node.cluster.pinset import open_replica
from node.repo import Repo
from cluster_http import init_peer, request_json, multipart, request, statuses, wait_until


@pytest.mark.timeout(300)
def test_gc_keeps_uploads_and_queued_pins_until_their_cluster_pin_is_done(make_node: Any, tmp_path: Path) -> None:
    # one worker, pins that never finish: whatever comes next waits in the queue
    node = init_peer(make_node, "a", secrets.token_hex(32), PinTracker={"ConcurrentPins": 1, "PinTimeout": 600})
    node.start()
    me = node.endpoints["cluster_peer_id"]
    unreachable = [cid_to_str(cid_for(os.urandom(32))) for _ in range(3)]
    for cid in unreachable:
        request_json(node, "POST", f"/pins/{cid}")
    wait_until("one pin fetching", lambda: statuses(request_json(node, "GET", f"/pins/{unreachable[0]}"))[me] == "pinning", [node])

    precious = os.urandom(700_000)
    body, ctype = multipart("file", "precious.bin", precious)
    status, out, _h = request(node, "POST", "/add?cid-version=1&stream-channels=false", body, {"Content-Type": ctype})
    assert status == 200, out
    cid = json.loads(out)[-1]["cid"]

    node.cli("repo", "gc")  # online: through the daemon
    assert node.cli("cat", cid).stdout == precious
    allocations = {p["cid"] for p in [request_json(node, "GET", f"/allocations/{c}") for c in [cid, *unreachable]]}
    assert allocations == {cid, *unreachable}  # nothing left the pinset either

    # offline too: the daemon stopped, GC on the repo keeps the cluster's pins and the upload
    node.stop()
    node.cli("repo", "gc")
    assert node.cli("cat", cid).stdout == precious


def test_offline_gc_reads_the_cluster_roots_from_the_repo(tmp_path: Path) -> None:
    """``repo gc`` without a daemon: pins of the pinset allocated here (to every peer too; a
    direct one keeps its root only), the tracker's pins that are not in the pinset (yet), and
    unsettled uploads are kept; pins allocated to other peers and released uploads are not."""
    Repo.init(tmp_path / "repo", profile="test")
    with Repo.open(tmp_path / "repo") as repo:
        core = CoreAPI(repo)
        me = repo.config["Cluster"]["PeerID"]
        params = importer.ImportParams.from_options(cid_version=1, chunker="size-1024")

        def dag(name: str) -> tuple[bytes, set[bytes]]:
            entry = core.add_stream(io.BytesIO(os.urandom(3000)), name, params, pin=False)
            return entry.cid, set(repo.store.iter_multihashes())

        seen: set[bytes] = set()
        dags = {}
        for name in ("mine", "everyone", "direct", "elsewhere", "tracked", "uploaded", "released"):
            cid, blocks = dag(name)
            dags[name] = (cid, blocks - seen)
            seen |= blocks
        replica = open_replica(repo)
        other = "12D3KooWOtherPeerOtherPeerOtherPeerOtherPeerOther"
        for name, allocations, depth in (("mine", (me, other), -1), ("everyone", (), -1), ("direct", (me,), 0), ("elsewhere", (other,), -1)):
            cid = dags[name][0]
            replica.put(cid, Pin(cid, allocations=allocations, max_depth=depth).to_cbor())
        TrackerStore(repo.db).want_pin(Pin(dags["tracked"][0], allocations=(me,)))
        for name in ("uploaded", "released"):  # as /add leaves them (blockstore/uploads.py)
            j = repo.store.new_journal()
            repo.store.commit(j, uploads=[dags[name][0]])
        Uploads(repo.db).release([dags["released"][0]])

        removed = set(core.repo_gc())
        expected = dags["elsewhere"][1] | dags["released"][1] | (dags["direct"][1] - {multihash_of(dags["direct"][0])})
        assert removed == expected
        for name in ("mine", "everyone", "tracked", "uploaded"):
            assert all(repo.store.has_multihash(mh) for mh in dags[name][1]), name
        assert repo.store.has(dags["direct"][0])
