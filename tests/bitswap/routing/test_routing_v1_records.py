"""The sans-I/O Routing V1 records module: peer IDs, the JSON/NDJSON parser (hypothesis on malformed input), IPIP-484 filters."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitswap.routing.records import (
    Limits,
    PeerIdError,
    PeerRecord,
    RecordsParser,
    RoutingAnswerError,
    encode_json_answer,
    encode_ndjson_line,
    filter_record,
    parse_filter,
    parse_peer_id,
    peer_id_to_str,
    record_from_json,
)
from blockstore.cid import cid_to_str

from .http_helpers import ed25519_peer, record, rsa_style_peer

# the spec's Peer Schema example, with a real peer ID and address in place of the placeholders
SPEC_PEER = {
    "Schema": "peer",
    "ID": "12D3KooWM8sovaEGU1bmiWGWAzvs47DEcXKZZTuJnpQyVTkRs2Vn",
    "Addrs": ["/ip4/147.28.156.11/tcp/4001"],
    "Protocols": ["transport-bitswap", "protocol-a", "protocol-b"],
    "protocol-a": "[base64-blob]",
    "protocol-b": {"foo": "bar"},
}


@given(st.binary(min_size=32, max_size=32), st.booleans())
def test_peer_id_string_round_trip(key: bytes, inline: bool) -> None:
    mh = ed25519_peer(key) if inline else rsa_style_peer(key)
    text = peer_id_to_str(mh)
    assert text.startswith("12D3KooW" if inline else "Qm")
    assert parse_peer_id(text) == mh


def test_peer_id_cid_forms_are_accepted() -> None:
    mh = parse_peer_id(SPEC_PEER["ID"])
    as_cid = b"\x01\x72" + mh
    assert parse_peer_id(cid_to_str(as_cid)) == mh  # base32 "bafz..."
    import libipld

    base36 = "k" + _base36(as_cid)
    assert libipld.decode_cid(base36)["hash"]["digest"] == mh[2:]
    assert parse_peer_id(base36) == mh


def _base36(data: bytes) -> str:
    n = int.from_bytes(b"\x00" + data, "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


@pytest.mark.parametrize(
    "text",
    # the last: a CIDv1 whose multihash (blake2b-256) cannot be a peer ID
    ["", "12D3KooW", "QmNotBase58!!", "x" * 300, "1", cid_to_str(b"\x01\x55\xa0\xe4\x02\x20" + bytes(32))],
)
def test_bad_peer_ids_are_refused(text: str) -> None:
    with pytest.raises(PeerIdError):
        parse_peer_id(text)


def test_spec_peer_example_parses_and_unknown_fields_are_ignored() -> None:
    rec, why = record_from_json(SPEC_PEER)
    assert why == "" and rec is not None
    assert rec.id_str == SPEC_PEER["ID"]
    assert rec.addrs == ("/ip4/147.28.156.11/tcp/4001",)
    assert rec.protocols == ("transport-bitswap", "protocol-a", "protocol-b")
    assert rec.to_json() == {k: SPEC_PEER[k] for k in ("Schema", "ID", "Addrs", "Protocols")}


def test_legacy_bitswap_schema_and_bad_records() -> None:
    legacy = {"Schema": "bitswap", "Protocol": "transport-bitswap", "ID": SPEC_PEER["ID"], "Addrs": ["/ip4/1.2.3.4/tcp/1"]}
    rec, _ = record_from_json(legacy)
    assert rec is not None and rec.protocols == ("transport-bitswap",)
    for bad in (
        [],
        "peer",
        {"Schema": "graphsync-filecoinv1", "ID": SPEC_PEER["ID"]},
        {"Schema": "peer"},
        {"Schema": "peer", "ID": 12},
        {"Schema": "peer", "ID": "nope"},
        {"Schema": "peer", "ID": SPEC_PEER["ID"], "Addrs": "/ip4/1.2.3.4"},
        {"Schema": "peer", "ID": SPEC_PEER["ID"], "Protocols": {"a": 1}},
    ):
        assert record_from_json(bad)[0] is None, bad
    # bad addresses and over-long protocol names are dropped, the record kept
    rec, _ = record_from_json(
        {**SPEC_PEER, "Addrs": ["/ip4/1.2.3.4/tcp/1", "garbage", 7, "/bogus/1", "/ip4/1.2.3.4/tcp/1"], "Protocols": ["x" * 64, "ok", 3]}
    )
    assert rec is not None and rec.addrs == ("/ip4/1.2.3.4/tcp/1",) and rec.protocols == ("ok",)


def _ndjson(records: list[PeerRecord]) -> bytes:
    return b"".join(encode_ndjson_line(r) for r in records)


@given(st.lists(st.integers(min_value=1, max_value=2000), max_size=30), st.integers(min_value=0, max_value=20))
def test_ndjson_any_chunking_gives_the_same_records(cuts: list[int], n: int) -> None:
    records = [record(i) for i in range(n)]
    body = _ndjson(records)
    parser = RecordsParser("ndjson", "Providers")
    out: list[PeerRecord] = []
    pos = 0
    for cut in sorted(set(cuts)):
        out += parser.feed(body[pos:cut])
        pos = max(pos, cut)
    out += parser.feed(body[pos:])
    out += parser.finish()
    assert out == records


@settings(max_examples=300)
@given(st.binary(max_size=4000), st.sampled_from(["json", "ndjson"]))
def test_malformed_bodies_never_crash(body: bytes, kind: str) -> None:
    limits = Limits(max_json_bytes=2000, max_stream_bytes=3000, max_line_bytes=500, max_records=5)
    parser = RecordsParser(kind, "Providers", limits)
    out: list[PeerRecord] = []
    try:
        for i in range(0, len(body), 97):
            out += parser.feed(body[i : i + 97])
        out += parser.finish()
    except RoutingAnswerError:
        assert kind == "json"
    assert len(out) <= 5
    assert all(isinstance(r, PeerRecord) for r in out)


@settings(max_examples=200)
@given(st.lists(st.one_of(st.just("good"), st.binary(max_size=80), st.text(max_size=40)), max_size=20))
def test_ndjson_bad_lines_are_skipped_good_ones_kept(lines: list) -> None:
    body = b""
    good = []
    for i, line in enumerate(lines):
        if line == "good":
            rec = record(i)
            good.append(rec)
            body += encode_ndjson_line(rec)
        else:
            raw = line.encode() if isinstance(line, str) else line
            body += raw.replace(b"\n", b" ") + b"\n"
    parser = RecordsParser("ndjson", "Providers")
    out = parser.feed(body) + parser.finish()
    # a random line can by chance be a valid record only if it is JSON naming a valid peer: never here
    assert out == good


def test_ndjson_limits_cut_the_answer() -> None:
    records = [record(i) for i in range(50)]
    body = _ndjson(records)
    p = RecordsParser("ndjson", "Providers", Limits(max_records=10))
    out = p.feed(body)
    assert out == records[:10] and p.truncated and p.done
    assert p.feed(body) == [] and p.finish() == []
    # a byte limit: everything before the cut is kept
    p = RecordsParser("ndjson", "Providers", Limits(max_stream_bytes=len(encode_ndjson_line(records[0])) * 3 + 5))
    out = p.feed(body) + p.finish()
    assert out == records[:3] and p.truncated
    # one over-long line is skipped, the next one parsed
    p = RecordsParser("ndjson", "Providers", Limits(max_line_bytes=200))
    long_line = b'{"Schema":"peer","ID":"' + b"x" * 5000 + b'"}\n'
    out = p.feed(long_line[:3000]) + p.feed(long_line[3000:] + encode_ndjson_line(records[1])) + p.finish()
    assert out == [records[1]] and p.skipped == 1


def test_json_answers() -> None:
    records = [record(i) for i in range(5)]
    body = encode_json_answer("Providers", records)
    assert json.loads(body)["Providers"][0]["Schema"] == "peer"
    p = RecordsParser("json", "Providers")
    assert p.feed(body[:10]) == []
    assert p.feed(body[10:]) + p.finish() == records
    p = RecordsParser("json", "Providers")
    p.feed(b'{"Providers": null}')
    assert p.finish() == []
    for bad in (b"[1,2]", b"{", b'{"Providers": 3}', b"\xff\xfe"):
        p = RecordsParser("json", "Providers")
        p.feed(bad)
        with pytest.raises(RoutingAnswerError):
            p.finish()
    p = RecordsParser("json", "Providers", Limits(max_json_bytes=100))
    with pytest.raises(RoutingAnswerError, match="over the 100-byte limit"):
        p.feed(body)


def test_ipip484_filters() -> None:
    peer = ed25519_peer(b"f")
    rec = PeerRecord(peer, ("/ip4/1.2.3.4/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1", "/ip6/::1/tcp/4001/tls/http"), ("transport-bitswap",))
    assert filter_record(rec, [], []) == rec
    assert filter_record(rec, [], parse_filter("transport-bitswap,unknown")) == rec
    assert filter_record(rec, [], parse_filter("transport-ipfs-gateway-http")) is None
    assert filter_record(PeerRecord(peer), [], ["unknown"]) == PeerRecord(peer)
    assert filter_record(rec, parse_filter("quic-v1"), []).addrs == ("/ip4/1.2.3.4/udp/4001/quic-v1",)
    assert filter_record(rec, parse_filter("!ip6,!quic-v1"), []).addrs == ("/ip4/1.2.3.4/tcp/4001",)
    assert filter_record(rec, parse_filter("tcp,!ip6"), []).addrs == ("/ip4/1.2.3.4/tcp/4001",)
    assert filter_record(rec, parse_filter("webtransport"), []) is None
    assert filter_record(PeerRecord(peer), parse_filter("tcp"), []) is None
    assert filter_record(PeerRecord(peer), parse_filter("tcp,unknown"), []) == PeerRecord(peer)
    assert parse_filter(" TLS, ,webrtc-direct") == ["tls", "webrtc-direct"]
