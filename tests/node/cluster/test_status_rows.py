"""PinTracker.status_rows / page_status (the status streams' reads of the stored records) against
PinTracker.iter_status / status (the per-CID reads), on a real LevelDB repo with records in every state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blockstore.cid import cid_for
from blockstore.db import open_db
from blockstore.pins import Pins
from cluster.pin import Pin, pin_fields
from node.cluster.pintracker import PinTracker

ME, OTHER = "12D3KooWRowsPeer", "12D3KooWOther"


async def _never(_pin: Pin, _progress: Any) -> None:  # no worker runs in these tests
    raise AssertionError("nothing is fetched")


def test_rows_are_the_statuses_of_every_state(tmp_path: Path) -> None:
    db = open_db(tmp_path / "repo")
    pins = Pins(db)
    tracker = PinTracker(db, pins, ME, {"MaxRetries": 2}, fetch=_never)
    store = tracker.store
    cids = sorted(cid_for(b"rows %d" % i) for i in range(10))
    mine = [Pin(c, allocations=(ME,), replication_factor_min=1, replication_factor_max=1, timestamp=5) for c in cids]
    store.want_pin(mine[1])
    assert store.take("pin").cid == cids[1]  # pinning
    store.want_pin(mine[2])
    store.finish(store.take("pin").cid, "pin", "no providers")  # pin_error
    store.adopt_pinned(cids[3])
    pins.add(cids[3])  # pinned, and pinned locally
    store.adopt_pinned(cids[4])  # pinned, but its local pin is gone: unexpectedly_unpinned
    store.want_pin(mine[5])
    store.finish(store.take("pin").cid, "pin", None)
    pins.add(cids[5])
    store.want_pin(mine[0])  # pin_queued
    pins.add(cids[6])  # untracked, allocated here and pinned locally: pinned
    # cids[7]: untracked, allocated here, not pinned: unexpectedly_unpinned
    listed_pins = [*mine[:8], Pin(cids[8], allocations=(OTHER,), replication_factor_min=1, replication_factor_max=1), Pin(cids[9])]
    # cids[8]: allocated elsewhere (remote); cids[9]: allocated everywhere, untracked, not pinned

    assert tracker.status_rows() == [(i.cid, i.row()) for i in tracker.iter_status()]
    assert tracker.status_rows(cids[2], limit=2) == [(i.cid, i.row()) for i in list(tracker.iter_status(cids[2]))[:2]]
    page = [(p.cid, pin_fields(p.to_cbor())) for p in listed_pins]
    rows = tracker.page_status(page)
    assert rows == [tracker.status(p.cid, p).row() for p in listed_pins]
    assert [r[0] for r in rows] == [
        "pin_queued", "pinning", "pin_error", "pinned", "unexpectedly_unpinned",
        "pinned", "pinned", "unexpectedly_unpinned", "remote", "unexpectedly_unpinned",
    ]
    assert rows[2][2] == "no providers" and rows[2][3] == 1
    assert tracker.page_status(page[3:6]) == rows[3:6]  # a page in the middle scans its range only
    assert tracker.page_status([]) == []
