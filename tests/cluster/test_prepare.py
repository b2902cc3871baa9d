"""cluster/prepare.py: a pin as it enters the pinset, and the queue rules of allocation (pure, no repo)."""

from __future__ import annotations

import time

import pytest

from blockstore.cid import cid_for
from cluster.allocator import AllocationError
from cluster.monitor import Metric
from cluster.pin import Pin
from cluster.prepare import AllocationView, Placement, admits, allocations, check, prepare
from cluster.tracker import QueueFull
from cluster.trust import TrustedPeers

ME, A, B, STRANGER = "me", "peer-a", "peer-b", "stranger"
TRUST = TrustedPeers(ME, [A, B])
RULES = Placement(me=ME, max_queue=20, is_trusted=TRUST.is_trusted, defaults=(1, 2))


def _view(queues: dict[str, int], free: dict[str, int]) -> AllocationView:
    expire = time.time_ns() + 60 * 10**9
    metrics = {"freespace": [Metric("freespace", p, str(f), expire, weight=f) for p, f in free.items()]}
    return AllocationView(set(free), ["freespace"], metrics, {}, set(), dict(queues))


def test_check_defaults_and_refusals() -> None:
    cid = cid_for(b"p")
    assert check(Pin(cid), None, RULES, now=0, defaults=True).replication_factor_max == 2
    assert check(Pin(cid), None, RULES, now=0, defaults=False).replication_factor_max == -1
    with pytest.raises(ValueError, match="expire_at is in the past"):
        check(Pin(cid, expire_at=5), None, RULES, now=10, defaults=True)
    with pytest.raises(ValueError, match="pinned recursively"):
        check(Pin(cid, max_depth=0), Pin(cid), RULES, now=0, defaults=True)
    with pytest.raises(ValueError, match="is not trusted"):
        check(Pin(cid, user_allocations=(STRANGER,)), None, RULES, now=0, defaults=True)
    assert check(Pin(cid, user_allocations=(STRANGER,)), None, RULES._replace(allow_untrusted=True), now=0, defaults=True)


def test_full_queues_give_429_only_when_the_pin_could_be_placed_otherwise() -> None:
    cid = cid_for(b"q")
    view = _view({ME: 0, A: 18, B: 0}, {ME: 10, A: 10**6, B: 100})
    one = Pin(cid, replication_factor_min=1, replication_factor_max=1)
    assert allocations(one, None, view, RULES) == [B]  # A has the most room but a full queue
    three = Pin(cid, replication_factor_min=3, replication_factor_max=3)
    with pytest.raises(QueueFull, match="peer-a"):
        allocations(three, None, view, RULES)
    four = Pin(cid, replication_factor_min=4, replication_factor_max=4)
    with pytest.raises(AllocationError) as info:
        allocations(four, None, view, RULES)
    assert not isinstance(info.value, QueueFull)  # too few peers anyway: 400
    # an upload may fill this peer's reserved places; other pins may not
    mine = _view({ME: 18}, {ME: 10})
    assert allocations(one, None, mine, RULES, upload=True) == [ME]
    with pytest.raises(QueueFull):
        allocations(one, None, mine, RULES)


def test_prepare_stamps_and_admission_counts_new_local_allocations() -> None:
    cid = cid_for(b"r")
    view = _view({}, {ME: 10**6})
    pin = prepare(Pin(cid), None, view, RULES, now=42)
    assert pin.allocations == (ME,) and pin.timestamp == 42
    assert admits(pin, None, ME) and not admits(pin, pin, ME) and not admits(pin, None, A)
