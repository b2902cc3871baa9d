"""Local pin records: names (kubo 0.27+ ``pin add --name``), records of older repos, kubo's pin-state rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockstore.cid import RAW, cid_for
from blockstore.db import open_db
from blockstore.layout import NS_PINS
from blockstore.pins import DIRECT, RECURSIVE, LocalPinError, PinRecord, Pins


def _pins(tmp_path: Path) -> tuple[Pins, object]:
    db = open_db(tmp_path / "db")
    return Pins(db), db


def test_names_are_stored_and_read_back(tmp_path: Path) -> None:
    pins, db = _pins(tmp_path)
    a, b = cid_for(b"a", codec=RAW), cid_for(b"b", codec=RAW)
    pins.add(a, RECURSIVE, name="photos 2024")
    pins.add(b, DIRECT, name="é")
    assert pins.record(a) == PinRecord(RECURSIVE, "photos 2024")
    assert pins.record(b) == PinRecord(DIRECT, "é")
    assert dict(pins.records()) == {a: PinRecord(RECURSIVE, "photos 2024"), b: PinRecord(DIRECT, "é")}
    assert dict(pins) == {a: RECURSIVE, b: DIRECT}
    db.close()


def test_records_of_older_repos_read_as_unnamed(tmp_path: Path) -> None:
    """Before names, a record was the type byte alone: it still reads, without a name."""
    pins, db = _pins(tmp_path)
    a, b = cid_for(b"old r", codec=RAW), cid_for(b"old d", codec=RAW)
    db.put(NS_PINS + a, b"r")
    db.put(NS_PINS + b, b"d")
    assert pins.record(a) == PinRecord(RECURSIVE, "") and pins.get(b) == DIRECT
    pins.add(a, RECURSIVE, name="now named")
    assert pins.record(a) == PinRecord(RECURSIVE, "now named")
    assert pins.remove(b) == DIRECT and pins.record(b) is None
    db.close()


def test_name_rules(tmp_path: Path) -> None:
    pins, db = _pins(tmp_path)
    a = cid_for(b"a", codec=RAW)
    pins.add(a, DIRECT, name="first")
    pins.add(a, DIRECT)  # name=None keeps the name (the cluster pin tracker re-pins this way)
    assert pins.record(a) == PinRecord(DIRECT, "first")
    pins.add(a, RECURSIVE, name="")  # "" clears it, as kubo's re-pin without --name
    assert pins.record(a) == PinRecord(RECURSIVE, "")
    pins.add(a, DIRECT, name="ignored")  # a direct pin never replaces a recursive one
    assert pins.record(a) == PinRecord(RECURSIVE, "")
    with pytest.raises(LocalPinError, match=r"pin name is 256 bytes \(max 255 bytes\)"):
        pins.add(a, RECURSIVE, name="x" * 256)
    pins.add(a, RECURSIVE, name="é" * 127)  # 254 bytes of UTF-8
    assert pins.record(a) == PinRecord(RECURSIVE, "é" * 127)
    db.close()
