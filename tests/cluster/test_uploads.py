"""When an upload's marker may go (cluster/uploads.py)."""

from __future__ import annotations

from blockstore.cid import cid_for
from cluster.pin import Pin
from cluster.uploads import GRACE, settled

CID = cid_for(b"upload")


def test_an_upload_is_kept_until_its_pin_is_settled() -> None:
    # no pin (yet): kept for the grace period, then released
    assert not settled(None, me="a", age=1, tracked_here=False)
    assert settled(None, me="a", age=GRACE + 1, tracked_here=False)
    # allocated here (or everywhere): released once this peer's tracker holds it
    for pin in (Pin(CID, allocations=("a", "b")), Pin(CID)):
        assert not settled(pin, me="a", age=GRACE + 1, tracked_here=False)
        assert settled(pin, me="a", age=0, tracked_here=True)
    # allocated elsewhere: released once every allocated peer reports it pinned
    pin = Pin(CID, allocations=("b", "c"))
    assert not settled(pin, me="a", age=GRACE + 1, tracked_here=False)
    assert not settled(pin, me="a", age=0, tracked_here=False, statuses={"b": "pinned", "c": "pinning"})
    assert not settled(pin, me="a", age=0, tracked_here=False, statuses={"b": "pinned"})
    assert settled(pin, me="a", age=0, tracked_here=False, statuses={"b": "pinned", "c": "pinned"})
