"""blockstore/kv.py: the repo's plyvel database satisfies the key-value Protocols, which behave as documented."""

from __future__ import annotations

import ast
import inspect
import typing
from collections.abc import Callable
from pathlib import Path

import plyvel
import pytest

from blockstore.db import open_db
from blockstore.kv import KVIterator, KVReader, KVSnapshot, KVStore, KVWriteBatch

ROOT = Path(__file__).resolve().parents[2]
_P = inspect.Parameter


def _members(proto: type) -> dict[str, Callable[..., object]]:
    """The methods a Protocol declares (its own and inherited ones), by name."""
    out: dict[str, Callable[..., object]] = {}
    for cls in reversed(proto.__mro__):
        if cls in (object, typing.Protocol, typing.Generic) or not getattr(cls, "_is_protocol", False):
            continue
        for name, value in vars(cls).items():
            if callable(value) and (not name.startswith("_") or name in ("__iter__", "__next__", "__enter__", "__exit__")):
                out[name] = value
    return out


def _accepts(impl: inspect.Signature, proto: inspect.Signature) -> list[str]:
    """Why a call written against ``proto`` would fail on ``impl`` (empty when it cannot)."""
    problems = []
    ip = [p for p in impl.parameters.values() if p.name != "self"]
    pp = [p for p in proto.parameters.values() if p.name != "self"]
    by_name = {p.name: p for p in ip}
    positional = [p for p in ip if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    used = set()
    for i, p in enumerate(pp):
        if p.kind == _P.POSITIONAL_ONLY:
            if i >= len(positional):
                problems.append(f"positional parameter {i} ({p.name}) missing")
                continue
            q = positional[i]
        else:
            q = by_name.get(p.name)
            if q is None:
                problems.append(f"parameter {p.name!r} missing")
                continue
            if p.kind == _P.POSITIONAL_OR_KEYWORD and (q.kind != _P.POSITIONAL_OR_KEYWORD or positional.index(q) != i):
                problems.append(f"parameter {p.name!r} is not positional at {i}")
            if p.kind == _P.KEYWORD_ONLY and q.kind not in (_P.KEYWORD_ONLY, _P.POSITIONAL_OR_KEYWORD):
                problems.append(f"parameter {p.name!r} cannot be passed by keyword")
        used.add(q.name)
        if p.default is not _P.empty and q.default != p.default:
            problems.append(f"default of {p.name!r} is {q.default!r}, the Protocol says {p.default!r}")
    for q in ip:
        if q.name not in used and q.default is _P.empty and q.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD):
            problems.append(f"extra required parameter {q.name!r}")
    return problems


@pytest.fixture
def db(tmp_path: Path) -> typing.Iterator[plyvel.DB]:
    d = open_db(tmp_path / "db")
    yield d
    d.close()


def _implementations(db: plyvel.DB) -> list[tuple[type, object]]:
    return [
        (KVStore, db),
        (KVStore, db.prefixed_db(b"x/")),
        (KVSnapshot, db.snapshot()),
        (KVWriteBatch, db.write_batch()),
        (KVIterator, db.iterator()),
    ]


def test_plyvel_objects_have_every_method_with_compatible_signatures(db: plyvel.DB) -> None:
    checked = 0
    for proto, obj in _implementations(db):
        assert isinstance(obj, proto), (type(obj), proto)
        for name, fn in _members(proto).items():
            impl = getattr(type(obj), name, None)
            assert impl is not None, f"{type(obj).__name__} has no {name}"
            try:
                impl_sig = inspect.signature(impl)
            except ValueError:  # a C slot without a signature (Iterator.__next__): presence is all we can check
                continue
            sigs = [inspect.signature(o) for o in typing.get_overloads(fn)] + [inspect.signature(fn)]
            for sig in sigs:
                problems = _accepts(impl_sig, sig)
                assert not problems, f"{type(obj).__name__}.{name}{impl_sig} vs {proto.__name__}.{name}{sig}: {problems}"
                checked += 1
    assert checked > 20


def test_the_signature_check_catches_a_mismatch() -> None:
    def proto(self: object, key: bytes, *, sync: bool = False) -> None: ...

    def wrong_default(self: object, key: bytes, *, sync: bool = True) -> None: ...

    def no_sync(self: object, key: bytes) -> None: ...

    def extra_required(self: object, key: bytes, value: bytes, *, sync: bool = False) -> None: ...

    p = inspect.signature(proto)
    assert _accepts(inspect.signature(proto), p) == []
    assert _accepts(inspect.signature(wrong_default), p)
    assert _accepts(inspect.signature(no_sync), p)
    assert _accepts(inspect.signature(extra_required), p)


def _fill(db: KVStore) -> None:
    for k in (b"a", b"b/1", b"b/2", b"b/3", b"c"):
        db.put(k, k.upper())


def test_get_and_iterator_behave_as_documented(db: plyvel.DB) -> None:
    kv: KVStore = db
    _fill(kv)
    assert kv.get(b"b/2") == b"B/2" and kv.get(b"missing") is None
    with kv.iterator(prefix=b"b/") as it:
        assert list(it) == [(b"b/1", b"B/1"), (b"b/2", b"B/2"), (b"b/3", b"B/3")]
    assert list(kv.iterator(prefix=b"b/", include_value=False)) == [b"b/1", b"b/2", b"b/3"]
    assert list(kv.iterator(start=b"b/2", stop=b"c", include_value=False)) == [b"b/2", b"b/3"]
    assert list(kv.iterator(start=b"b/2", stop=b"c", include_start=False, include_value=False)) == [b"b/3"]
    it2 = kv.iterator(prefix=b"b/", include_value=False)
    assert next(it2) == b"b/1"
    it2.close()
    with pytest.raises(RuntimeError):
        next(it2)
    kv.delete(b"a", sync=True)
    assert kv.get(b"a") is None


def test_write_batches_and_snapshots_behave_as_documented(db: plyvel.DB) -> None:
    kv: KVStore = db
    _fill(kv)
    with kv.write_batch(sync=True) as wb:
        wb.put(b"d", b"D")
        wb.delete(b"a")
        assert kv.get(b"d") is None  # nothing is written before the block ends
    assert kv.get(b"d") == b"D" and kv.get(b"a") is None

    snap = kv.snapshot()
    with pytest.raises(ValueError), kv.write_batch(transaction=True) as wb:
        wb.put(b"e", b"E")
        raise ValueError
    assert kv.get(b"e") is None  # a transaction is dropped when its block raises
    with pytest.raises(ValueError), kv.write_batch() as wb:
        wb.put(b"f", b"F")
        raise ValueError
    assert kv.get(b"f") == b"F"  # without transaction=True what was put is written
    assert snap.get(b"d") == b"D" and snap.get(b"f") is None  # the snapshot keeps the old view
    assert [k for k, _v in snap.iterator(prefix=b"b/")] == [b"b/1", b"b/2", b"b/3"]
    snap.close()


def _imports_plyvel(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "plyvel" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "plyvel":
            return True
    return False


#: the modules that open the database or map its errors; everything else types against blockstore.kv
PLYVEL_USERS = {"blockstore/db.py", "node/repo.py"}


def test_only_the_database_openers_import_plyvel() -> None:
    found = {
        str(p.relative_to(ROOT))
        for pkg in ("blockstore", "bitswap", "cluster", "node")
        for p in (ROOT / pkg).rglob("*.py")
        if _imports_plyvel(p)
    }
    assert found <= PLYVEL_USERS, sorted(found - PLYVEL_USERS)
    assert "blockstore/db.py" in found  # the scan sees imports
