"""NDJSON export/import of the pinset."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from blockstore.db import open_db
from cluster.crdt.state_io import clear_state, export_pins, import_pins
from cluster.pin import Pin, PinError

from .helpers import Peer, key


def test_export_then_import_gives_the_same_pins(tmp_path: Path) -> None:
    a, b = Peer(tmp_path / "a"), Peer(tmp_path / "b", max_batch_size=7, max_batch_age=1.0)
    try:
        for i in range(30):
            pin = Pin(key(i), name=f"p{i}", metadata={"i": str(i)}, replication_factor_min=1, replication_factor_max=2)
            a.replica.put(pin.cid, pin.to_cbor())
        buf = io.StringIO()
        assert export_pins(a.replica, buf) == 30
        assert len(buf.getvalue().splitlines()) == 30
        assert import_pins(b.replica, io.StringIO(buf.getvalue()), chunk=4) == 30
        assert b.state() == a.state() and b.replica.queued() == 0
    finally:
        a.close()
        b.close()


def test_import_names_the_bad_line(tmp_path: Path) -> None:
    b = Peer(tmp_path / "b")
    try:
        good = Pin(key(1)).to_json()
        lines = [json.dumps(good), "", '{"cid": "not-a-cid"}']
        with pytest.raises(PinError, match="line 3"):
            import_pins(b.replica, lines)
        assert b.replica.set.has(key(1))
    finally:
        b.close()


def test_clear_state_empties_the_crdt(tmp_path: Path) -> None:
    a = Peer(tmp_path / "a", max_batch_size=10, max_batch_age=1.0)
    try:
        for i in range(20):
            a.replica.put(key(i), Pin(key(i)).to_cbor())
        a.replica.commit()
        a.replica.put(key(99), b"queued")
        a.close()
        db = open_db(tmp_path / "a")
        assert clear_state(db) > 40
        db.close()
        a.reopen()
        assert len(a.replica.set) == 0 and a.replica.heads() == [] and a.replica.queued() == 0
    finally:
        a.close()
