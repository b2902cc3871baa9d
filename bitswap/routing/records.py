"""The Delegated Routing V1 wire shapes, sans-I/O: peer records, peer IDs, body parsing, IPIP-484 filters.

Spec: https://specs.ipfs.tech/routing/http-routing-v1/ (IPIP-337, IPIP-484 filters, IPIP-513
"200 with an empty list"). Both the client (``delegated.py``) and the server
(``routing_v1_server.py``) use this module; nothing here does I/O.

A provider or peer answer is ``{"Providers": [record, ...]}`` (``{"Peers": [...]}``) as
``application/json``, or one record per line as ``application/x-ndjson``. A record of the
``peer`` schema is::

    {"Schema": "peer", "ID": "12D3KooW...", "Addrs": ["/ip4/..."], "Protocols": ["transport-bitswap"]}

:class:`RecordsParser` takes the bytes of such a body in pieces of any size and returns
:class:`PeerRecord`\\ s as they complete. Everything an untrusted router sends is bounded
(:class:`Limits`): the body size, one NDJSON line, the number of records, addresses and
protocols per record. A record that is not an object, has an unknown schema, a missing or
invalid ``ID`` or fields of the wrong type is skipped and counted (``skipped``), never fatal;
an address that is not a multiaddr, or a protocol name over 63 characters, is dropped from its
record. Passing a limit cuts the answer there (``truncated``): what came before is kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import multiaddr

from blockstore.cid import IDENTITY, SHA2_256, CidError, cid_from_str, read_varint
from ..errors import BadMessage

__all__ = [
    "JSON_TYPE",
    "NDJSON_TYPE",
    "PEER_SCHEMA",
    "TRANSPORT_BITSWAP",
    "TRANSPORT_HTTP",
    "Limits",
    "PeerIdError",
    "PeerRecord",
    "RecordsParser",
    "RoutingAnswerError",
    "addr_protocols",
    "filter_record",
    "parse_filter",
    "parse_peer_id",
    "peer_id_to_str",
    "record_from_json",
]

JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"
PEER_SCHEMA = "peer"
#: legacy schema some routers still send; parsed like ``peer`` (the spec allows it)
BITSWAP_SCHEMA = "bitswap"
TRANSPORT_BITSWAP = "transport-bitswap"
TRANSPORT_HTTP = "transport-ipfs-gateway-http"
#: the spec's limit on a transfer protocol name (IPIP-484)
MAX_PROTOCOL_NAME = 63
#: longest address string kept (a multiaddr with two certhashes is ~200 characters)
MAX_ADDR_LEN = 1024
#: longest identity-multihash peer ID: keys up to 42 bytes are inlined (libp2p peer-ids spec)
MAX_INLINE_KEY = 42


class PeerIdError(BadMessage):
    """A string or multihash that is not a libp2p peer ID."""


class RoutingAnswerError(BadMessage):
    """A routing answer that cannot be used at all (not JSON, wrong shape); single bad records are skipped instead."""


# --------------------------------------------------------------------------- peer IDs
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        i = _B58_INDEX.get(ch)
        if i is None:
            raise PeerIdError(f"invalid base58 character {ch!r}")
        n = n * 58 + i
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def check_peer_multihash(mh: bytes) -> bytes:
    """Return ``mh`` if it is a peer ID multihash (sha2-256, or identity of an inlined key); else PeerIdError."""
    try:
        code, p = read_varint(mh, 0)
        size, p = read_varint(mh, p)
    except CidError as exc:
        raise PeerIdError(f"not a multihash: {exc}") from None
    if p + size != len(mh):
        raise PeerIdError("multihash length does not match its digest")
    if code == SHA2_256 and size == 32:
        return mh
    if code == IDENTITY and 0 < size <= MAX_INLINE_KEY:
        # an inlined key is a protobuf PublicKey {1: KeyType (0-3), 2: bytes} (libp2p peer-ids spec)
        key = mh[p:]
        if len(key) > 4 and key[0] == 0x08 and key[1] <= 3 and key[2] == 0x12 and key[3] == len(key) - 4:
            return mh
        raise PeerIdError("identity peer ID that is not a public key")
    raise PeerIdError(f"multihash 0x{code:x} of {size} bytes is not a peer ID")


def parse_peer_id(text: str) -> bytes:
    """The multihash of a peer ID string: base58btc (``12D3KooW...``, ``Qm...``) or a CIDv1 (base32/base36).

    As boxo does, a CIDv1 of any codec is accepted for its multihash (clients often send the
    CID form of a legacy peer ID). Raises :class:`PeerIdError`.
    """
    if not isinstance(text, str) or not text or len(text) > 256:
        raise PeerIdError("empty or over-long peer ID")
    if text[0] in "1Q":
        return check_peer_multihash(_b58decode(text))
    try:
        cid = cid_from_str(text)
    except CidError as exc:
        raise PeerIdError(f"invalid peer ID {text[:80]!r}: {exc}") from None
    if cid[0] != 1:
        raise PeerIdError(f"invalid peer ID {text[:80]!r}")
    _, p = read_varint(cid, 1)  # skip the codec
    return check_peer_multihash(cid[p:])


def peer_id_to_str(mh: bytes) -> str:
    """The canonical string of a peer ID multihash (base58btc, as libp2p prints it)."""
    return _b58encode(mh)


# --------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class PeerRecord:
    """One ``peer`` record: who (the peer ID multihash), where (multiaddr strings), how (transfer protocols)."""

    peer_id: bytes
    addrs: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()

    @property
    def id_str(self) -> str:
        """The peer ID as base58btc."""
        return peer_id_to_str(self.peer_id)

    def to_json(self) -> dict[str, Any]:
        """The record as the spec's JSON object (``Addrs``/``Protocols`` always present, maybe empty)."""
        return {"Schema": PEER_SCHEMA, "ID": self.id_str, "Addrs": list(self.addrs), "Protocols": list(self.protocols)}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one router answer may make us hold or process."""

    #: a whole ``application/json`` body (boxo's client has the same 1 MiB limit)
    max_json_bytes: int = 1 << 20
    #: a whole NDJSON stream
    max_stream_bytes: int = 8 << 20
    #: one NDJSON line (one record)
    max_line_bytes: int = 64 << 10
    #: records taken from one answer (the spec asks JSON servers for at most 100)
    max_records: int = 1000
    #: addresses kept per record
    max_addrs: int = 64
    #: protocols kept per record
    max_protocols: int = 32


DEFAULT_LIMITS = Limits()


def _valid_addr(addr: Any) -> bool:
    if not isinstance(addr, str) or not addr.startswith("/") or len(addr) > MAX_ADDR_LEN:
        return False
    try:
        multiaddr.Multiaddr(addr)
    except Exception:  # py-multiaddr raises several types for a bad address
        return False
    return True


def record_from_json(obj: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[PeerRecord | None, str]:
    """One JSON record as a :class:`PeerRecord`, or (None, why it was skipped).

    Unknown fields are ignored (the spec says clients MUST); the legacy ``bitswap`` schema is read
    like ``peer`` with its ``Protocol`` as the protocol list; any other schema is skipped.
    """
    if not isinstance(obj, dict):
        return None, "record is not an object"
    schema = obj.get("Schema")
    if schema not in (PEER_SCHEMA, BITSWAP_SCHEMA):
        return None, f"unknown schema {str(schema)[:40]!r}"
    ident = obj.get("ID")
    if not isinstance(ident, str):
        return None, "record without a string ID"
    try:
        peer = parse_peer_id(ident)
    except PeerIdError as exc:
        return None, str(exc)
    addrs_in = obj.get("Addrs")
    if addrs_in is None:
        addrs_in = []
    if not isinstance(addrs_in, list):
        return None, "Addrs is not a list"
    addrs: list[str] = []
    for addr in addrs_in[: limits.max_addrs * 4]:
        if len(addrs) >= limits.max_addrs:
            break
        if _valid_addr(addr) and addr not in addrs:
            addrs.append(addr)
    if schema == BITSWAP_SCHEMA:
        proto = obj.get("Protocol")
        protos_in: Any = [proto] if isinstance(proto, str) else [TRANSPORT_BITSWAP]
    else:
        protos_in = obj.get("Protocols")
        if protos_in is None:
            protos_in = []
    if not isinstance(protos_in, list):
        return None, "Protocols is not a list"
    protocols: list[str] = []
    for proto in protos_in[: limits.max_protocols * 4]:
        if len(protocols) >= limits.max_protocols:
            break
        if isinstance(proto, str) and 0 < len(proto) <= MAX_PROTOCOL_NAME and proto not in protocols:
            protocols.append(proto)
    return PeerRecord(peer, tuple(addrs), tuple(protocols)), ""


class RecordsParser:
    """Incremental parser of one ``/routing/v1`` answer body (sans-I/O).

    ``kind`` is ``"ndjson"`` (records as their lines complete) or ``"json"`` (the body is
    gathered, up to ``max_json_bytes``, and parsed at :meth:`finish`); ``key`` is the array's
    name, ``"Providers"`` or ``"Peers"``. After ``done`` turns true (a limit was reached)
    further input is ignored: the caller should stop reading.
    """

    def __init__(self, kind: str, key: str, limits: Limits = DEFAULT_LIMITS) -> None:
        if kind not in ("json", "ndjson"):
            raise ValueError(f"unknown body kind {kind!r}")
        self.kind = kind
        self.key = key
        self.limits = limits
        self._buf = bytearray()
        self._discarding = False  # inside an over-long NDJSON line
        self.received = 0
        self.records = 0
        self.skipped = 0
        #: why the last record was skipped (for logs)
        self.last_skip = ""
        #: the answer passed a limit and was cut there
        self.truncated = False
        self.done = False

    def feed(self, data: bytes) -> list[PeerRecord]:
        """Parse more of the body; return the records it completes (JSON bodies: none until :meth:`finish`)."""
        if self.done or not data:
            return []
        room = (self.limits.max_json_bytes if self.kind == "json" else self.limits.max_stream_bytes) - self.received
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self.received += len(data)
        if self.kind == "json":
            self._buf += data
            if self.truncated:
                # a JSON document cut anywhere cannot be parsed: the whole answer is refused
                self.done = True
                self._buf.clear()
                raise RoutingAnswerError(f"JSON answer over the {self.limits.max_json_bytes}-byte limit")
            return []
        out = self._lines(data)
        if self.truncated:
            self.done = True
        return out

    def finish(self) -> list[PeerRecord]:
        """The end of the body: parse a JSON document, or the last NDJSON line without a newline."""
        if self.done:
            return []
        self.done = True
        if self.kind == "ndjson":
            if self._discarding or not self._buf:
                return []
            line = bytes(self._buf)
            self._buf.clear()
            return self._take([self._line(line)])
        body = bytes(self._buf)
        self._buf.clear()
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RoutingAnswerError(f"answer is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RoutingAnswerError("answer is not a JSON object")
        items = doc.get(self.key)
        if items is None:
            return []
        if not isinstance(items, list):
            raise RoutingAnswerError(f"{self.key} is not a list")
        return self._take(record_from_json(item, self.limits) for item in items)

    # ------------------------------------------------------------------ internals
    def _take(self, results: Iterable[tuple[PeerRecord | None, str]]) -> list[PeerRecord]:
        out: list[PeerRecord] = []
        for rec, why in results:
            if self.records >= self.limits.max_records:
                self.truncated = True
                self.done = True
                break
            if rec is None:
                self.skipped += 1
                self.last_skip = why
                continue
            self.records += 1
            out.append(rec)
        return out

    def _line(self, line: bytes) -> tuple[PeerRecord | None, str]:
        line = line.strip()
        if not line:
            return None, ""
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return None, "line is not JSON"
        return record_from_json(obj, self.limits)

    def _lines(self, data: bytes) -> list[PeerRecord]:
        results: list[tuple[PeerRecord | None, str]] = []
        start = 0
        max_line = self.limits.max_line_bytes
        while start < len(data):
            nl = data.find(b"\n", start)
            end = len(data) if nl < 0 else nl
            if self._discarding:
                if nl >= 0:
                    self._discarding = False
            else:
                self._buf += data[start:end]
                if len(self._buf) > max_line:
                    self._buf.clear()
                    self._discarding = nl < 0
                    results.append((None, f"line over {max_line} bytes"))
                elif nl >= 0:
                    line = bytes(self._buf)
                    self._buf.clear()
                    if line.strip():
                        results.append(self._line(line))
            if nl < 0:
                break
            start = nl + 1
        return self._take(results)


# --------------------------------------------------------------------------- IPIP-484 filters
def parse_filter(text: str | None) -> list[str]:
    """The names of a ``filter-addrs``/``filter-protocols`` query value (comma-separated, lower-cased)."""
    if not text:
        return []
    return [part.strip().lower() for part in text.split(",") if part.strip()][:64]


def addr_protocols(addr: str) -> list[str]:
    """The protocol names of a multiaddr string (empty when it does not parse)."""
    try:
        return [p.name for p in multiaddr.Multiaddr(addr).protocols()]
    except Exception:
        return []


def _addr_passes(names: list[str], positive: list[str], negative: list[str]) -> bool:
    if any(n in names for n in negative):
        return False
    return not positive or any(p in names for p in positive)


def filter_record(rec: PeerRecord, filter_addrs: list[str], filter_protocols: list[str]) -> PeerRecord | None:
    """Apply IPIP-484 filters to one record: the record (maybe with fewer addresses) or None to omit it.

    ``filter-protocols``: keep the record if one of its protocols is listed (``unknown`` matches a
    record without protocols); it is returned unchanged. ``filter-addrs``: keep the addresses that
    pass every ``!name`` and, if any positive name is given, at least one of them; a record left
    without addresses is omitted, unless it had none and ``unknown`` is listed.
    """
    if filter_protocols:
        protos = [p.lower() for p in rec.protocols]
        if not protos:
            if "unknown" not in filter_protocols:
                return None
        elif not any(p in filter_protocols for p in protos):
            return None
    if filter_addrs:
        if not rec.addrs:
            return rec if "unknown" in filter_addrs else None
        positive = [f for f in filter_addrs if not f.startswith("!") and f != "unknown"]
        negative = [f[1:] for f in filter_addrs if f.startswith("!")]
        kept = tuple(a for a in rec.addrs if _addr_passes(addr_protocols(a), positive, negative))
        if not kept:
            return None
        if kept != rec.addrs:
            rec = PeerRecord(rec.peer_id, kept, rec.protocols)
    return rec


def encode_json_answer(key: str, records: Iterable[PeerRecord]) -> bytes:
    """A whole ``application/json`` answer: ``{"<key>": [records]}``."""
    return json.dumps({key: [r.to_json() for r in records]}, separators=(",", ":")).encode()


def encode_ndjson_line(rec: PeerRecord) -> bytes:
    """One NDJSON line of a streamed answer (with its newline)."""
    return json.dumps(rec.to_json(), separators=(",", ":")).encode() + b"\n"

