"""The walk protocol's synchronous driver and the sub-walk helper (blockstore/walk_protocol.py)."""

from __future__ import annotations

import pytest

from blockstore.cid import IDENTITY, cid_for
from blockstore.dagwalk import BlockNotFound
from blockstore.walk_protocol import Ahead, Need, Visited, Walk, collect, run_sync, stream_sync


def _reader(cids: list[bytes]) -> Walk[bytes, int]:
    """A core that announces ``cids``, needs each in turn, outputs its bytes, returns the total length."""
    yield Ahead(tuple(cids), "test")
    total = 0
    for cid in cids:
        data = yield Need(cid, "test")
        assert data is not None
        total += len(data)
        yield data
    return total


def test_stream_sync_answers_needs_yields_outputs_and_returns_the_result() -> None:
    blocks = {cid_for(b"a"): b"a", cid_for(b"bb"): b"bb"}
    asked: list[bytes] = []

    def get(cid: bytes) -> bytes | None:
        asked.append(cid)
        return blocks.get(cid)

    walk = stream_sync(_reader(list(blocks)), get)
    out = []
    with pytest.raises(StopIteration) as stop:
        while True:
            out.append(next(walk))
    assert out == [b"a", b"bb"] and stop.value.value == 3
    assert asked == list(blocks)  # hints are not fetched by the sync driver
    assert run_sync(_reader(list(blocks)), get) == 3


def test_identity_cids_are_answered_from_the_cid() -> None:
    ident = cid_for(b"inline", mh_code=IDENTITY)
    assert list(stream_sync(_reader([ident]), lambda c: None)) == [b"inline"]


def test_a_missing_block_raises_block_not_found_naming_it() -> None:
    missing = cid_for(b"nowhere")
    with pytest.raises(BlockNotFound) as info:
        run_sync(_reader([missing]), lambda c: None)
    assert info.value.cid == missing


def test_closing_the_stream_closes_the_walk() -> None:
    closed = []

    def core() -> Walk[int, None]:
        try:
            for i in range(10):
                yield i
        finally:
            closed.append(True)

    stream = stream_sync(core(), lambda c: None)
    assert next(stream) == 0
    stream.close()
    assert closed == [True]


def test_collect_passes_requests_up_and_keeps_outputs() -> None:
    blocks = {cid_for(b"x"): b"x", cid_for(b"yz"): b"yz"}
    kept: list[bytes] = []

    def outer() -> Walk[Visited, int]:
        total = yield from collect(_reader(list(blocks)), kept)
        yield Visited(b"k", b"v")
        return total * 10

    stream = stream_sync(outer(), blocks.get)
    assert list(stream) == [Visited(b"k", b"v")]
    assert kept == [b"x", b"yz"]
    assert run_sync(outer(), blocks.get) == 30
