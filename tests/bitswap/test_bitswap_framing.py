"""Varint length-prefixed framing of the stream adapter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitswap.network import FrameError, _frame_need, read_frames
from blockstore.cid import encode_varint


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(encode_varint(len(p)) + p for p in payloads)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6), st.lists(st.integers(1, 64), max_size=40))
def test_any_split_gives_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    wire = framed(payloads)
    buf = bytearray()
    got: list[bytes] = []
    pos = 0
    for n in cuts + [len(wire)]:
        buf += wire[pos : pos + n]
        pos += n
        got += read_frames(buf)
        if pos >= len(wire):
            break
    assert got == payloads and buf == bytearray()


def test_partial_frame_stays_and_need_is_known() -> None:
    buf = bytearray(encode_varint(300) + b"x" * 100)
    assert read_frames(buf) == []
    assert len(buf) == 102 and _frame_need(buf) == 302
    assert _frame_need(bytearray(b"\x80")) == 1


def test_oversize_and_endless_lengths_are_rejected() -> None:
    with pytest.raises(FrameError, match="exceeds"):
        read_frames(bytearray(encode_varint(1001) + b"x"), max_size=1000)
    with pytest.raises(FrameError, match="too long"):
        read_frames(bytearray(b"\xff" * 11))
