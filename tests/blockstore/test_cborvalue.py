"""The DAG-CBOR value reader that keeps links apart from byte strings (blockstore/cborvalue.py)."""

from __future__ import annotations

import libipld
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockstore.cborvalue import CborError, Link, decode_cbor
from blockstore.cid import cid_for
from blockstore.links import cbor_links


def test_cbor_keeps_links_apart_from_bytes() -> None:
    link = cid_for(b"x")
    tagged = b"\xd8\x2a\x58" + bytes((len(link) + 1,)) + b"\x00" + link
    data = b"\xa2\x61b\x42\x01\x55\x61l" + tagged
    value = decode_cbor(data)
    assert value["b"] == b"\x01\x55"
    assert value["l"] == Link(link)
    assert cbor_links(data) == [link]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_cbor_matches_libipld(value: object) -> None:
    data = libipld.encode_dag_cbor(value)
    assert decode_cbor(data) == libipld.decode_dag_cbor(data)


@pytest.mark.parametrize("data", [b"", b"\xa1", b"\x9f\xff", b"\xc1\x00", b"\x01\x02", b"\xd8\x2a\x41\x01"])
def test_cbor_rejects(data: bytes) -> None:
    with pytest.raises(CborError):
        decode_cbor(data)
