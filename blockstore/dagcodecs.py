"""Decoding and encoding IPLD blocks by codec name, for ``dag put`` (``input-codec`` -> ``store-codec``).

kubo decodes the input with the named codec into the IPLD data model and
encodes that with the store codec (go-ipld-prime's multicodec registry).
Here the data model is the one of the ``dag-cbor`` package (links are
:class:`multiformats.CID`, bytes are ``bytes``). Codecs: ``dag-cbor``,
``dag-json``, ``dag-pb`` (the ``{"Data", "Links": [{"Hash","Name","Tsize"}]}``
form of the dag-pb spec), ``json``, ``cbor`` and ``raw`` (a bytes value).
"""

from __future__ import annotations

from typing import Any

import dag_cbor
from dag_cbor.decoding import DAGCBORDecodingError
from dag_cbor.encoding import CBOREncodingError as DAGCBORError
from multiformats import CID

from . import dagjson
from .cid import DAG_CBOR, DAG_PB, RAW
from .dagpb import DagPBError, PBLink, PBNode, decode_pbnode, encode_pbnode
from .links import DAG_JSON
from .errors import InvalidData

JSON = 0x0200
CBOR = 0x51

CODECS = {"dag-cbor": DAG_CBOR, "dag-json": DAG_JSON, "dag-pb": DAG_PB, "json": JSON, "cbor": CBOR, "raw": RAW}


class CodecError(InvalidData):
    """An unknown codec name, input that does not decode, or a value the store codec cannot hold."""


def codec_code(name: str) -> int:
    """The multicodec code of a codec name."""
    code = CODECS.get(name)
    if code is None:
        raise CodecError(f'unknown multicodec: "{name}" (supported: {", ".join(CODECS)})')
    return code


def _pb_to_model(data: bytes) -> dict[str, Any]:
    try:
        node = decode_pbnode(data)
    except DagPBError as exc:
        raise CodecError(f"invalid dag-pb input: {exc}") from None
    links = []
    for link in node.links:
        entry: dict[str, Any] = {"Hash": CID.decode(link.hash)}
        if link.name is not None:
            entry["Name"] = link.name.decode("utf-8", "surrogateescape")
        if link.tsize is not None:
            entry["Tsize"] = link.tsize
        links.append(entry)
    out: dict[str, Any] = {"Links": links}
    if node.data is not None:
        out["Data"] = node.data
    return out


def _model_to_pb(value: Any) -> bytes:
    if not isinstance(value, dict) or not set(value) <= {"Data", "Links"} or "Links" not in value:
        raise CodecError('dag-pb needs a map with "Links" (a list) and optionally "Data" (bytes)')
    data = value.get("Data")
    if data is not None and not isinstance(data, bytes):
        raise CodecError('dag-pb "Data" must be bytes')
    links = []
    for link in value["Links"] if isinstance(value["Links"], list) else [None]:
        if not isinstance(link, dict) or not isinstance(link.get("Hash"), CID) or not set(link) <= {"Hash", "Name", "Tsize"}:
            raise CodecError('each dag-pb link must be a map with "Hash" (a link), optional "Name" and "Tsize"')
        name, tsize = link.get("Name"), link.get("Tsize")
        if name is not None and not isinstance(name, str) or tsize is not None and not isinstance(tsize, int):
            raise CodecError('dag-pb link "Name" must be a string and "Tsize" an integer')
        links.append(PBLink(bytes(link["Hash"]), None if name is None else name.encode(), tsize))
    return encode_pbnode(PBNode(links, data))


def decode(data: bytes, codec: str) -> Any:
    """The data-model value of ``data`` read as ``codec``."""
    code = codec_code(codec)
    try:
        if code == DAG_JSON:
            return dagjson.decode(data)
        if code == JSON:
            return dagjson.decode_json(data)
        if code in (DAG_CBOR, CBOR):
            return dag_cbor.decode(data)
        if code == DAG_PB:
            return _pb_to_model(data)
        return bytes(data)  # raw
    except dagjson.DagJsonError as exc:
        raise CodecError(str(exc)) from None
    except DAGCBORDecodingError as exc:
        raise CodecError(f"invalid {codec} input: {exc}") from None


def encode(value: Any, codec: str) -> bytes:
    """``value`` encoded as ``codec``."""
    code = codec_code(codec)
    try:
        if code == DAG_JSON:
            return dagjson.encode(value)
        if code == JSON:
            return dagjson.encode_json(value)
        if code in (DAG_CBOR, CBOR):
            return dag_cbor.encode(value)
        if code == DAG_PB:
            return _model_to_pb(value)
        if not isinstance(value, bytes):
            raise CodecError("the raw codec can only store a bytes value")
        return value
    except dagjson.DagJsonError as exc:
        raise CodecError(str(exc)) from None
    except (DAGCBORError, TypeError, ValueError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"cannot encode as {codec}: {exc}") from None


def transcode(data: bytes, input_codec: str, store_codec: str) -> tuple[bytes, int]:
    """(block bytes, codec code) of ``data`` decoded as ``input_codec`` and stored as ``store_codec``."""
    code = codec_code(store_codec)
    value = decode(data, input_codec)
    if code == CBOR and _has_link(value):
        raise CodecError("cannot encode as cbor: plain CBOR has no links (use dag-cbor)")
    return encode(value, store_codec), code


def _has_link(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, CID):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False
