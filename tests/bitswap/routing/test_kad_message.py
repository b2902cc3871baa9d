"""The kad message codec: round trips, agreement with Google's protobuf runtime on the
kad-dht schema (the one py-libp2p generates from go-libp2p-kad-dht's dht.proto), and
strict, bounded decoding of malformed input."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.kad_dht.pb.kademlia_pb2 import Message as PbMessage

from bitswap.routing.kad_message import (
    ADD_PROVIDER,
    CONNECTED,
    FIND_NODE,
    GET_PROVIDERS,
    MAX_ADDRS_PER_PEER,
    MAX_MESSAGE_SIZE,
    MAX_PEERS_PER_LIST,
    MESSAGE_TYPES,
    KadMessage,
    KadMessageError,
    Peer,
    Record,
    check_peer_id,
    decode_message,
    encode_message,
    encode_peer,
    len_field,
)

ed25519_ids = st.binary(min_size=32, max_size=32).map(lambda b: b"\x00\x24\x08\x01\x12\x20" + b)
sha256_ids = st.binary(min_size=32, max_size=32).map(lambda b: b"\x12\x20" + b)
peer_ids = st.one_of(ed25519_ids, sha256_ids)
peers = st.builds(
    Peer,
    id=peer_ids,
    addrs=st.lists(st.binary(min_size=1, max_size=40), max_size=4),
    connection=st.integers(0, 3),
)
records = st.builds(
    Record,
    key=st.binary(max_size=40),
    value=st.binary(max_size=100),
    time_received=st.text(max_size=30).filter(lambda t: len(t.encode()) <= 64),
)
messages = st.builds(
    KadMessage,
    type=st.sampled_from(sorted(MESSAGE_TYPES)),
    key=st.binary(max_size=80),
    record=st.one_of(st.none(), records),
    closer=st.lists(peers, max_size=5),
    providers=st.lists(peers, max_size=5),
    cluster_level=st.integers(-(2**31), 2**31 - 1),
)


@given(messages)
@settings(max_examples=300)
def test_round_trip(msg: KadMessage) -> None:
    assert decode_message(encode_message(msg)) == msg


@given(messages)
@settings(max_examples=200)
def test_google_protobuf_reads_what_we_write_and_we_read_what_it_writes(msg: KadMessage) -> None:
    pb = PbMessage()
    pb.ParseFromString(encode_message(msg))
    assert pb.type == msg.type and pb.key == msg.key and pb.clusterLevelRaw == msg.cluster_level
    assert [(p.id, list(p.addrs), p.connection) for p in pb.closerPeers] == [(p.id, p.addrs, p.connection) for p in msg.closer]
    assert [(p.id, list(p.addrs), p.connection) for p in pb.providerPeers] == [
        (p.id, p.addrs, p.connection) for p in msg.providers
    ]
    assert pb.HasField("record") == (msg.record is not None)
    if msg.record is not None:
        assert (pb.record.key, pb.record.value, pb.record.timeReceived) == (
            msg.record.key, msg.record.value, msg.record.time_received,
        )  # fmt: skip
    assert decode_message(pb.SerializeToString()) == msg


def test_py_libp2p_extension_fields_are_skipped() -> None:
    """py-libp2p adds senderRecord (11) and Peer.signedRecord (4): unknown fields, skipped."""
    pb = PbMessage(type=PbMessage.MessageType.FIND_NODE, key=b"k", senderRecord=b"envelope")
    p = pb.closerPeers.add()
    p.id = b"\x12\x20" + bytes(32)
    p.addrs.append(b"\x04\x7f\x00\x00\x01")
    p.signedRecord = b"signed"
    msg = decode_message(pb.SerializeToString())
    assert msg.type == FIND_NODE and msg.key == b"k"
    assert msg.closer == [Peer(b"\x12\x20" + bytes(32), [b"\x04\x7f\x00\x00\x01"])]


@given(st.binary(max_size=300))
@settings(max_examples=1000)
def test_random_bytes_decode_or_raise_the_codec_error(data: bytes) -> None:
    try:
        decode_message(data)
    except KadMessageError:
        pass


@given(messages, st.data())
@settings(max_examples=300)
def test_mutated_messages_decode_or_raise_the_codec_error(msg: KadMessage, data: st.DataObject) -> None:
    raw = bytearray(encode_message(msg))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        decode_message(bytes(raw))
    except KadMessageError:
        pass


PID = b"\x12\x20" + bytes(32)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x08", "truncated varint"),
        (b"\x08\x09", "unknown type 9"),
        (b"\x12\x05ab", "overruns"),
        (b"\x0a\x01\x00", "wire type 2, expected 0"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x00", "field number 0"),
        (b"\x08" + b"\xff" * 11, "varint too long"),
        (len_field(8, len_field(1, b"")), "empty peer ID"),
        (len_field(8, len_field(1, b"\x13\x20" + bytes(32))), "neither identity nor sha2-256"),
        (len_field(8, len_field(1, b"\x12\x20" + bytes(31))), "length does not match"),
        (len_field(8, len_field(1, b"\x00\xc8\x01" + bytes(200))), "exceeds 128"),
        (len_field(8, len_field(1, PID) + len_field(2, bytes(1025))), "multiaddr of 1025 bytes"),
        (len_field(8, len_field(1, PID) + b"\x18\x04"), "unknown connection type 4"),
        (len_field(2, bytes(1025)), "key of 1025 bytes"),
        (len_field(3, len_field(2, bytes(70000))), "value of 70000 bytes"),
        (len_field(3, len_field(5, b"\xff\xfe")), "not UTF-8"),
    ],
)
def test_malformed_messages_name_the_problem(data: bytes, error: str) -> None:
    with pytest.raises(KadMessageError, match=error):
        decode_message(data)


def test_oversized_provider_lists_and_address_lists_are_refused() -> None:
    peer = len_field(9, encode_peer(Peer(PID, [b"\x04\x7f\x00\x00\x01"])))
    ok = b"\x08\x03" + peer * MAX_PEERS_PER_LIST
    assert len(decode_message(ok).providers) == MAX_PEERS_PER_LIST
    with pytest.raises(KadMessageError, match="more than 1000 providerPeers"):
        decode_message(ok + peer)
    closer = len_field(8, encode_peer(Peer(PID)))
    with pytest.raises(KadMessageError, match="more than 1000 closerPeers"):
        decode_message(closer * (MAX_PEERS_PER_LIST + 1))
    many_addrs = Peer(PID, [b"\x04\x7f\x00\x00\x01"] * (MAX_ADDRS_PER_PEER + 1))
    with pytest.raises(KadMessageError, match="more than 64 multiaddrs"):
        decode_message(encode_message(KadMessage(GET_PROVIDERS, providers=[many_addrs])))
    with pytest.raises(KadMessageError, match="exceeds the 4194304-byte limit"):
        decode_message(bytes(MAX_MESSAGE_SIZE + 1))


def test_encode_refuses_oversized_messages() -> None:
    big = KadMessage(ADD_PROVIDER, providers=[Peer(PID, [os.urandom(1000)] * 64)] * 70)
    with pytest.raises(KadMessageError, match="exceeds the 4194304-byte limit"):
        encode_message(big)


def test_known_bytes_of_an_add_provider() -> None:
    """The exact bytes go-libp2p-kad-dht writes for an ADD_PROVIDER (proto3: defaults omitted)."""
    mh = b"\x12\x20" + bytes(range(32))
    msg = KadMessage(ADD_PROVIDER, key=mh, providers=[Peer(PID, [b"\x04\x7f\x00\x00\x01\x06\x0f\xa1"], CONNECTED)])
    expected = (
        b"\x08\x02" + b"\x12\x22" + mh
        + b"\x4a" + bytes([2 + 34 + 2 + 8 + 2]) + b"\x0a\x22" + PID + b"\x12\x08\x04\x7f\x00\x00\x01\x06\x0f\xa1" + b"\x18\x01"
    )  # fmt: skip
    assert encode_message(msg) == expected
    assert check_peer_id(PID) == PID
