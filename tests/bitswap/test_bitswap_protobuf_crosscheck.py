"""Our hand-written codec against Google's protobuf runtime, with the bitswap schema built at test time."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given, settings

from bitswap.message import Block, Message, Presence, WantEntry, decode_message, encode_message
from .test_bitswap_message import messages

F = descriptor_pb2.FieldDescriptorProto


def _schema() -> Any:
    fd = descriptor_pb2.FileDescriptorProto(name="pinion_bitswap_test.proto", package="bs", syntax="proto3")
    msg = fd.message_type.add(name="Message")
    wl = msg.nested_type.add(name="Wantlist")
    entry = wl.nested_type.add(name="Entry")
    for name, num, typ in [
        ("block", 1, F.TYPE_BYTES),
        ("priority", 2, F.TYPE_INT32),
        ("cancel", 3, F.TYPE_BOOL),
        ("wantType", 4, F.TYPE_INT32),
        ("sendDontHave", 5, F.TYPE_BOOL),
    ]:
        entry.field.add(name=name, number=num, type=typ, label=F.LABEL_OPTIONAL)
    wl.field.add(name="entries", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".bs.Message.Wantlist.Entry")
    wl.field.add(name="full", number=2, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    blk = msg.nested_type.add(name="Block")
    blk.field.add(name="prefix", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    blk.field.add(name="data", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    pres = msg.nested_type.add(name="BlockPresence")
    pres.field.add(name="cid", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    pres.field.add(name="type", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    msg.field.add(name="wantlist", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".bs.Message.Wantlist")
    msg.field.add(name="blocks", number=2, type=F.TYPE_BYTES, label=F.LABEL_REPEATED)
    msg.field.add(name="payload", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".bs.Message.Block")
    msg.field.add(
        name="blockPresences", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".bs.Message.BlockPresence"
    )
    msg.field.add(name="pendingBytes", number=5, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bs.Message"))


PB = _schema()


def _from_pb(pb: Any) -> Message:
    return Message(
        wantlist=[WantEntry(e.block, e.priority, e.cancel, e.wantType, e.sendDontHave) for e in pb.wantlist.entries],
        full=pb.wantlist.full,
        blocks=[Block(b.prefix, b.data) for b in pb.payload],
        presences=[Presence(p.cid, p.type) for p in pb.blockPresences],
        pending_bytes=pb.pendingBytes,
    )


def _to_pb(msg: Message) -> Any:
    pb = PB()
    for e in msg.wantlist:
        pb.wantlist.entries.add(block=e.cid, priority=e.priority, cancel=e.cancel, wantType=e.want_type, sendDontHave=e.send_dont_have)
    if msg.wantlist or msg.full:
        pb.wantlist.full = msg.full
        pb.wantlist.SetInParent()
    for b in msg.blocks:
        pb.payload.add(prefix=b.prefix, data=b.data)
    for p in msg.presences:
        pb.blockPresences.add(cid=p.cid, type=p.type)
    pb.pendingBytes = msg.pending_bytes
    return pb


@settings(max_examples=200, deadline=None)
@given(messages)
def test_protobuf_reads_what_we_write(msg: Message) -> None:
    pb = PB()
    pb.ParseFromString(encode_message(msg))
    assert _from_pb(pb) == msg


@settings(max_examples=200, deadline=None)
@given(messages)
def test_we_read_what_protobuf_writes(msg: Message) -> None:
    assert decode_message(_to_pb(msg).SerializeToString()) == msg
