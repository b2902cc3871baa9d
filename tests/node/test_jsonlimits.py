"""node/jsonlimits.py: JSON decoded within size and depth bounds, whatever the input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.jsonlimits import JsonLimitError, is_json_type, loads

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\[]{}é', max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(alphabet='k"\\[{', max_size=4), children, max_size=4),
    max_leaves=30,
)


def _depth(obj: Any) -> int:
    if isinstance(obj, list):
        return 1 + max((_depth(v) for v in obj), default=0)
    if isinstance(obj, dict):
        return 1 + max((_depth(v) for v in obj.values()), default=0)
    return 0


@given(JSON, st.integers(min_value=1, max_value=8))
def test_accepts_exactly_what_fits_and_decodes_as_json_does(obj: Any, max_depth: int) -> None:
    text = json.dumps(obj)
    if _depth(obj) <= max_depth:
        assert loads(text, max_depth=max_depth) == obj
    else:
        with pytest.raises(JsonLimitError, match="deeper than"):
            loads(text, max_depth=max_depth)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_json_limit_error(data: bytes) -> None:
    try:
        loads(data, max_depth=3)
    except JsonLimitError:
        pass


def test_the_issues_input_and_size() -> None:
    with pytest.raises(JsonLimitError, match="deeper than 64"):
        loads("[" * 100_000 + "]" * 100_000)
    with pytest.raises(JsonLimitError, match="deeper than"):
        loads('{"a":' * 5000 + "1" + "}" * 5000)
    assert loads('["[[[[[[[[[[", "\\"[[[[[["]', max_depth=1) == ["[[[[[[[[[[", '"[[[[[[']  # brackets in strings do not count
    with pytest.raises(JsonLimitError, match="longer than 10 bytes"):
        loads(b'"0123456789"', max_bytes=10)
    with pytest.raises(JsonLimitError, match="not valid JSON"):
        loads(b"\xff\xfe")


def test_json_content_types() -> None:
    for ok in ("application/json", "Application/JSON; charset=utf-8", "application/x-ndjson", "application/problem+json"):
        assert is_json_type(ok), ok
    for bad in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "text/json"):
        assert not is_json_type(bad), bad
