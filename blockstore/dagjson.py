"""DAG-JSON <-> the IPLD data model, for ``dag put`` (https://ipld.io/specs/codecs/dag-json/spec/).

The data model in Python: ``dict`` (str keys), ``list``, ``str``, ``int``,
``float``, ``bool``, ``None``, ``bytes`` and :class:`multiformats.CID` for
links: the values the ``dag-cbor`` package encodes and decodes, so a
DAG-JSON document can be stored as DAG-CBOR and back. A link is
``{"/": "<cid>"}``, bytes are ``{"/": {"bytes": "<base64, no padding>"}}``;
any other map with a ``"/"`` key is refused, as the spec reserves it.
Encoding sorts map keys by their UTF-8 bytes and writes no whitespace.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from multiformats import CID
from .errors import InvalidData

__all__ = ["DagJsonError", "decode", "encode", "decode_json", "encode_json"]


class DagJsonError(InvalidData):
    """Input that is not valid (DAG-)JSON or a value DAG-JSON cannot hold."""


def _b64decode(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text + pad, validate=True)
    except ValueError as exc:
        raise DagJsonError(f"invalid base64 in a bytes value: {exc}") from None


def _hook(obj: dict[str, Any]) -> Any:
    if "/" not in obj:
        return obj
    if len(obj) != 1:
        raise DagJsonError('a map with a "/" key must have no other key (reserved for links and bytes)')
    inner = obj["/"]
    if isinstance(inner, str):
        try:
            return CID.decode(inner)
        except (ValueError, KeyError, IndexError) as exc:  # multiformats raises IndexError on some short strings
            raise DagJsonError(f"invalid link {inner[:80]!r}: {exc or type(exc).__name__}") from None
    if isinstance(inner, dict) and len(inner) == 1 and isinstance(inner.get("bytes"), str):
        return _b64decode(inner["bytes"])
    raise DagJsonError('a "/" map must hold a CID string or {"bytes": "<base64>"}')


def _no_constants(name: str) -> Any:
    raise DagJsonError(f"{name} is not a valid JSON number")


def decode(data: bytes) -> Any:
    """Parse DAG-JSON bytes into the data model (links as CID, bytes as bytes)."""
    try:
        return json.loads(data, object_hook=_hook, parse_constant=_no_constants)
    except DagJsonError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DagJsonError(f"invalid DAG-JSON: {exc}") from None


def decode_json(data: bytes) -> Any:
    """Parse plain JSON (codec ``json``): no links, no bytes; ``"/"`` is an ordinary key."""
    try:
        return json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise DagJsonError(f"invalid JSON: {exc}") from None


def _key(k: str) -> bytes:
    return k.encode("utf-8")


def _encode(value: Any, out: list[str], links: bool) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise DagJsonError("NaN and infinities cannot be encoded")
        out.append(repr(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        if not links:
            raise DagJsonError("bytes cannot be encoded as plain JSON")
        text = base64.b64encode(bytes(value)).decode().rstrip("=")
        out.append('{"/":{"bytes":' + json.dumps(text) + "}}")
    elif isinstance(value, CID):
        if not links:
            raise DagJsonError("links cannot be encoded as plain JSON")
        text = value.encode("base58btc") if value.version == 0 else value.encode("base32")
        out.append('{"/":' + json.dumps(text) + "}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, links)
        out.append("]")
    elif isinstance(value, dict):
        if links and "/" in value:
            # what a decoder would read as a link or bytes, or refuse: the spec reserves the key
            raise DagJsonError('a map with a "/" key cannot be encoded (DAG-JSON reserves it for links and bytes)')
        out.append("{")
        for i, k in enumerate(sorted(value, key=_key)):
            if not isinstance(k, str):
                raise DagJsonError("map keys must be strings")
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _encode(value[k], out, links)
        out.append("}")
    else:
        raise DagJsonError(f"a {type(value).__name__} cannot be encoded")


def encode(value: Any) -> bytes:
    """DAG-JSON bytes of a data-model value (keys sorted, no whitespace)."""
    out: list[str] = []
    _encode(value, out, True)
    return "".join(out).encode("utf-8")


def encode_json(value: Any) -> bytes:
    """Plain JSON bytes (codec ``json``) of a value without links or bytes."""
    out: list[str] = []
    _encode(value, out, False)
    return "".join(out).encode("utf-8")
