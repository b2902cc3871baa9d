"""cluster/tracker.py on a real LevelDB: queueing rules, priority, retries, recovery, counters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockstore.cid import cid_for
from blockstore.db import open_db
from cluster.pin import Pin
from cluster.tracker import PIN, UNPIN, TrackerConfig, TrackerStore

S = 10**9
NOW = 1_800_000_000 * S
CFG = TrackerConfig(priority_max_age_ns=3600 * S, priority_max_retries=2, max_retries=3, retry_backoff=10)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TrackerStore]:
    db = open_db(tmp_path / "db")
    yield TrackerStore(db, CFG)
    db.close()


def _pin(i: int, ts: int = NOW, **kw: object) -> Pin:
    return Pin(cid_for(b"pin %d" % i), timestamp=ts, **kw)  # type: ignore[arg-type]


def test_pin_queue_run_and_done(store: TrackerStore) -> None:
    p = _pin(1)
    assert store.want_pin(p, NOW) == "queued"
    assert store.counts() == {"pin_queued": 1} and store.queue_length() == 1
    assert store.want_pin(p, NOW) == "updated"  # dedupe
    rec = store.take(PIN, NOW)
    assert rec is not None and rec.status == "pinning" and rec.attempts == 1 and rec.pin_obj() == p
    assert store.take(PIN, NOW) is None
    assert store.want_pin(p, NOW) == "updated"  # running: only the pin is updated
    done = store.finish(p.cid, PIN, None, NOW + S)
    assert done is not None and done.status == "pinned" and done.pin is None
    assert store.counts() == {"pinned": 1} and store.queue_length() == 0
    assert store.want_pin(p, NOW) == "kept"


def test_fresh_pins_go_before_old_ones(store: TrackerStore) -> None:
    old = _pin(1, ts=NOW - 7200 * S)  # older than the priority age
    fresh = _pin(2)
    store.want_pin(old, NOW)
    store.want_pin(fresh, NOW + 1)
    assert store.get(fresh.cid).priority and not store.get(old.cid).priority  # type: ignore[union-attr]
    assert store.take(PIN, NOW + 2).cid == fresh.cid  # type: ignore[union-attr]
    assert store.take(PIN, NOW + 2).cid == old.cid  # type: ignore[union-attr]


def test_failures_back_off_lose_priority_and_end_in_pin_failed(store: TrackerStore) -> None:
    p = _pin(1)
    store.want_pin(p, NOW)
    t = NOW
    for attempt in range(1, 4):
        rec = store.take(PIN, t)
        assert rec is not None and rec.attempts == attempt
        after = store.finish(p.cid, PIN, f"boom {attempt}", t)
        if attempt < 3:
            assert after.status == "pin_error" and after.error == f"boom {attempt}"  # type: ignore[union-attr]
            assert after.priority == (attempt <= 2)  # type: ignore[union-attr]
            wait = 10 * 2 ** (attempt - 1) * S
            assert store.take(PIN, t + wait - 1) is None  # not due yet
            assert store.next_due(PIN) == t + wait
            t += wait
    final = store.get(p.cid)
    assert final is not None and final.status == "pin_failed" and final.error == "boom 3"
    assert store.take(PIN, t + 10**6 * S) is None  # only recover re-queues it
    assert list(store.errored(include_final=False)) == []
    again = store.recover(p.cid, t)
    assert again is not None and again.status == "pin_queued" and again.attempts == 0
    assert store.counts() == {"pin_queued": 1}


def test_unpin_replaces_pin_and_pin_replaces_unpin(store: TrackerStore) -> None:
    p = _pin(1)
    assert store.want_unpin(p.cid, NOW) == "none"  # untracked: nothing to do (never a user's own pin)
    store.want_pin(p, NOW)
    assert store.want_unpin(p.cid, NOW) == "dropped"  # queued, never started
    assert store.get(p.cid) is None
    store.want_pin(p, NOW)
    store.take(PIN, NOW)
    assert store.want_unpin(p.cid, NOW) == "queued"  # running pin: replaced by an unpin
    assert store.get(p.cid).op == UNPIN  # type: ignore[union-attr]
    assert store.finish(p.cid, PIN, None, NOW).op == UNPIN  # type: ignore[union-attr]  # the late pin outcome is ignored
    assert store.want_pin(p, NOW) == "queued"  # and back
    rec = store.take(PIN, NOW)
    store.finish(rec.cid, PIN, None, NOW)  # type: ignore[union-attr]
    assert store.want_unpin(p.cid, NOW) == "queued"
    rec = store.take(UNPIN, NOW)
    assert rec is not None and rec.status == "unpinning"
    assert store.finish(p.cid, UNPIN, None, NOW) is None
    assert store.counts() == {} and store.get(p.cid) is None


def test_running_operations_are_queued_again_after_a_restart(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    s1 = TrackerStore(db, CFG)
    for i in range(3):
        s1.want_pin(_pin(i), NOW)
    s1.take(PIN, NOW)
    s1.take(PIN, NOW)
    db.close()
    db = open_db(tmp_path / "db")
    s2 = TrackerStore(db, CFG)
    assert s2.counts() == {"pinning": 2, "pin_queued": 1}
    assert s2.requeue_running(NOW) == 2
    assert s2.counts() == {"pin_queued": 3} and s2.in_progress() == []
    db.close()


def test_adopting_a_local_pin(store: TrackerStore) -> None:
    cid = cid_for(b"uploaded here")
    store.adopt_pinned(cid, NOW)
    assert store.get(cid).status == "pinned" and store.counts() == {"pinned": 1}  # type: ignore[union-attr]
    store.forget_pinned(cid)
    assert store.get(cid) is None and store.counts() == {}


actions = st.lists(
    st.tuples(st.sampled_from(["pin", "unpin", "take_pin", "take_unpin", "ok", "fail", "recover"]), st.integers(0, 5)),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions)
def test_counters_always_equal_a_recount(tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]) -> None:
    db = open_db(tmp_path_factory.mktemp("prop") / "db")
    store = TrackerStore(db, CFG)
    t = NOW
    for action, i in steps:
        t += S
        p = _pin(i)
        if action == "pin":
            store.want_pin(p, t)
        elif action == "unpin":
            store.want_unpin(p.cid, t)
        elif action == "take_pin":
            store.take(PIN, t + 10**6 * S)
        elif action == "take_unpin":
            store.take(UNPIN, t + 10**6 * S)
        elif action in ("ok", "fail"):
            rec = store.get(p.cid)
            if rec is not None and rec.status in ("pinning", "unpinning"):
                store.finish(p.cid, rec.op, None if action == "ok" else "x", t)
        else:
            store.recover(p.cid, t)
        assert store.counts() == store.recount()
        assert store.queue_length() == store.recount().get("pin_queued", 0) + store.recount().get("unpin_queued", 0)
    # and a fresh store reads the same counters from disk
    assert TrackerStore(db, CFG).counts() == store.recount()
    db.close()


def test_iterating_from_a_cid_and_a_long_queue(store: TrackerStore) -> None:
    pins = [_pin(i) for i in range(3000)]
    for p in pins:
        store.want_pin(p, NOW)
    cids = sorted(p.cid for p in pins)
    assert [r.cid for r in store.iter_records(cids[1500])] == cids[1500:]
    taken = [store.take(PIN, NOW + S) for _ in range(3000)]
    assert all(t is not None for t in taken) and store.take(PIN, NOW + S) is None
    assert len({t.cid for t in taken if t}) == 3000 and store.next_due(PIN) is None
    late = _pin(5000)
    store.want_pin(late, NOW - 10 * S)  # a key below the last taken one is still found
    assert store.take(PIN, NOW).cid == late.cid  # type: ignore[union-attr]


def test_the_local_lane_is_taken_apart_and_demoted_without_losing_an_attempt(store: TrackerStore) -> None:
    from cluster.tracker import LOCAL

    queued = [_pin(i) for i in range(3)]
    for p in queued:
        store.want_pin(p, NOW)
    upload = _pin(9)
    assert store.want_pin(upload, NOW + 1, local=True) == "queued"
    assert store.get(upload.cid).local and store.pins_queued() == 4  # type: ignore[union-attr]
    assert store.next_due(LOCAL) == NOW + 1
    first = store.take(PIN, NOW + 2)
    assert first is not None and first.cid == queued[0].cid  # the pin workers never see the lane
    rec = store.take(LOCAL, NOW + 2)
    assert rec is not None and rec.cid == upload.cid and rec.status == "pinning" and rec.attempts == 1
    assert store.take(LOCAL, NOW + 2) is None
    # not all here after all: it joins the pin queue (fresh: priority), the attempt not counted
    moved = store.demote(upload.cid, NOW + 3)
    assert moved is not None and moved.status == "pin_queued" and moved.attempts == 0 and not moved.local and moved.priority
    assert [store.take(PIN, NOW + 4).cid for _ in range(3)] == [queued[1].cid, queued[2].cid, upload.cid]  # type: ignore[union-attr]
    assert store.counts() == store.recount() == {"pinning": 4}


def test_admission_keeps_the_last_tenth_for_uploads() -> None:
    from cluster.tracker import admission_limit

    assert admission_limit(50, upload=False) == 45 and admission_limit(50, upload=True) == 50
    assert admission_limit(1_000_000, upload=False) == 900_000
    assert admission_limit(5, upload=False) == admission_limit(5, upload=True) == 5  # too small to reserve


def _dump(store: TrackerStore, db: object) -> list[tuple[bytes, bytes]]:
    """Every key and value of the tracker's namespace (records, queues, indexes, counters)."""
    from blockstore.layout import NS_TRACKER

    with db.iterator(prefix=NS_TRACKER) as it:  # type: ignore[attr-defined]
        return list(it)


# rounds of steps on CIDs 0..5; each round is one kind of step on several CIDs (repeats allowed)
rounds = st.lists(
    st.tuples(
        st.sampled_from(["want", "take_pin", "take_unpin", "finish"]),
        st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.booleans()), min_size=1, max_size=6),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds)
def test_a_step_on_many_cids_in_one_batch_equals_the_single_steps(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, list[tuple[int, bool, bool]]]]
) -> None:
    """want_many / take_many / finish_many leave exactly the keys (records, queue entries,
    indexes, counters) that the single steps one after the other leave, and return the same."""
    base = tmp_path_factory.mktemp("batch")
    db1, db2 = open_db(base / "one"), open_db(base / "many")
    one, many = TrackerStore(db1, CFG), TrackerStore(db2, CFG)
    t = NOW
    for kind, items in steps:
        t += S
        if kind == "want":
            # (i, pin?, local?): a pin allocated here, or gone from the state
            changes = [(_pin(i).cid, _pin(i) if pin else None, None, local) for i, pin, local in items]
            singles = [one.want_pin(p, t, d, local=loc) if p is not None else one.want_unpin(c, t) for c, p, d, loc in changes]
            assert many.want_many(changes, t) == singles
        elif kind in ("take_pin", "take_unpin"):
            op = PIN if kind == "take_pin" else UNPIN
            due = t + 10**6 * S  # retries come due too
            singles = [r for r in (one.take(op, due) for _ in items) if r is not None]
            assert many.take_many(op, len(items), due) == singles
        else:
            finishes = []
            for i, ok, _ in items:
                rec = one.get(_pin(i).cid)
                if rec is not None and rec.status in ("pinning", "unpinning"):
                    finishes.append((rec.cid, rec.op, None if ok else "x"))
            singles = [one.finish(c, op, e, t) for c, op, e in finishes]
            assert many.finish_many(finishes, t) == singles
        assert _dump(one, db1) == _dump(many, db2)
        assert many.counts() == many.recount() == one.counts()
    db1.close()
    db2.close()


def test_take_many_takes_priority_pins_first_up_to_the_limit_and_leaves_later_ones(store: TrackerStore) -> None:
    old = [_pin(i, ts=NOW - 7200 * S) for i in range(3)]
    fresh = [_pin(10 + i) for i in range(3)]
    assert store.want_pins([(p, None, False) for p in old + fresh], NOW) == ["queued"] * 6
    taken = store.take_many(PIN, 4, NOW)
    assert [r.cid for r in taken] == [p.cid for p in fresh] + [old[0].cid]
    assert all(r.status == "pinning" and r.attempts == 1 for r in taken)
    assert store.counts() == {"pinning": 4, "pin_queued": 2} == store.recount()
    assert [r.cid for r in store.take_many(PIN, 10, NOW)] == [p.cid for p in old[1:]]
    assert store.take_many(PIN, 10, NOW) == []
    done = store.finish_many([(r.cid, PIN, None) for r in taken[:2]] + [(taken[2].cid, PIN, "no")], NOW)
    assert [r.status for r in done] == ["pinned", "pinned", "pin_error"]  # type: ignore[union-attr]
    assert store.take_many(PIN, 10, NOW + S) == []  # the failed one waits for its backoff
