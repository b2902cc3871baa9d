"""The visited set of DAG walks: exact set semantics whether keys sit in memory or spilled to LevelDB."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from blockstore.db import open_db
from blockstore.visited import VisitedSet, clear_scratch, scratch_keys


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=4), st.integers(-5, 5)), max_size=200), st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_behaves_like_a_dict_whatever_the_memory_limit(tmp_path_factory, ops, limit) -> None:  # type: ignore[no-untyped-def]
    db = open_db(tmp_path_factory.mktemp("v") / "db")
    model: dict[bytes, int] = {}
    with VisitedSet(db, memory_limit=limit) as vs:
        for key, value in ops:
            if value < 0:
                assert vs.visit(key) == (key not in model)
                model.setdefault(key, 0)
            else:
                vs.set(key, value)
                model[key] = value
            assert vs.get(key) == model[key]
        for key, value in model.items():
            assert vs.get(key) == value and key in vs
        assert vs.get(b"never added") is None
    assert list(scratch_keys(db)) == []  # close() removed what spilled
    db.close()


def test_spills_past_the_memory_limit_and_cleans_up(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    vs = VisitedSet(db, memory_limit=100)
    for i in range(1000):
        assert vs.visit(i.to_bytes(4, "big"))
    assert vs.spilled >= 900 and len(vs._mem) < 100  # noqa: SLF001 - the memory bound itself
    assert all(not vs.visit(i.to_bytes(4, "big")) for i in range(1000))
    assert len(list(scratch_keys(db))) == vs.spilled
    left = VisitedSet(db, memory_limit=10)  # as if a walk died in a crash
    for i in range(50):
        left.visit(bytes([i]))
    vs.close()
    assert clear_scratch(db) >= 40  # what Repo.open does at start
    assert list(scratch_keys(db)) == []
    db.close()
