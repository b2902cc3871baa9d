"""``dag put`` codecs (DAG-JSON, DAG-CBOR, dag-pb, JSON, raw) and the ``get`` tar stream."""

from __future__ import annotations

import io
import json
import os
import tarfile

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID

from blockstore import dagjson, tarexport
from blockstore.dagjson import DagJsonError
from blockstore.cid import cid_for, cid_to_str
from blockstore.dagcodecs import CodecError, decode, transcode
from blockstore.importer import ImportParams, import_path


def test_kubo_dag_put_vector() -> None:
    """``echo '{"hello":"world"}' | ipfs dag put`` gives this CID in kubo (dag-json in, dag-cbor stored)."""
    block, codec = transcode(b'{"hello": "world"}', "dag-json", "dag-cbor")
    assert cid_to_str(cid_for(block, codec=codec)) == "bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae"


def test_links_and_bytes_cross_codecs() -> None:
    link = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    doc = b'{"b":{"/":{"bytes":"aGVsbG8"}},"a":[{"/":"%s"},1.5,-3,null,true]}' % link.encode()
    value = decode(doc, "dag-json")
    assert value == {"a": [CID.decode(link), 1.5, -3, None, True], "b": b"hello"}
    cbor, _ = transcode(doc, "dag-json", "dag-cbor")
    assert dag_cbor.decode(cbor) == value
    back, _ = transcode(cbor, "dag-cbor", "dag-json")
    assert back == b'{"a":[{"/":"%s"},1.5,-3,null,true],"b":{"/":{"bytes":"aGVsbG8"}}}' % link.encode()
    pb, _ = transcode(b'{"Data":{"/":{"bytes":"CAE"}},"Links":[{"Hash":{"/":"%s"},"Name":"x","Tsize":3}]}' % link.encode(), "dag-json", "dag-pb")
    assert decode(pb, "dag-pb") == {"Data": b"\x08\x01", "Links": [{"Hash": CID.decode(link), "Name": "x", "Tsize": 3}]}
    assert transcode(b"raw bytes", "raw", "raw")[0] == b"raw bytes"


@pytest.mark.parametrize(
    ("data", "incodec", "outcodec", "message"),
    [
        (b"{not json", "dag-json", "dag-cbor", "invalid DAG-JSON"),
        (b'{"/": "not a cid"}', "dag-json", "dag-cbor", "invalid link"),
        (b'{"/": "x", "y": 1}', "dag-json", "dag-cbor", "no other key"),
        (b"NaN", "dag-json", "dag-cbor", "not a valid JSON number"),
        (b'{"a":1}', "dag-json", "raw", "bytes value"),
        (b'{"a":1}', "dag-json", "dag-pb", "Links"),
        (b'{"a":1}', "dag-yaml", "dag-cbor", "unknown multicodec"),
        (b'{"l":{"/":"bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"}}', "dag-json", "json", "links"),
        (b"\xff", "dag-cbor", "dag-json", "invalid dag-cbor"),
    ],
)
def test_bad_input_is_refused(data: bytes, incodec: str, outcodec: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        transcode(data, incodec, outcodec)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=8),
    # the key "/" is reserved for links and bytes: such maps are refused (test below)
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6).filter(lambda k: k != "/"), kids, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=3), json_values)
@settings(max_examples=100, deadline=None)
def test_dag_json_refuses_a_map_with_the_reserved_key(other: dict, inner: object) -> None:
    """A map holding "/" would come back as a link, bytes or an error: encode refuses it."""
    with pytest.raises(DagJsonError, match="reserves"):
        dagjson.encode({**other, "/": inner})


@given(st.text(max_size=12))
@settings(max_examples=300, deadline=None)
def test_dag_json_any_link_string_decodes_or_is_refused_cleanly(text: str) -> None:
    """A bad CID string in a link gives DagJsonError, never another exception."""
    try:
        dagjson.decode(json.dumps({"/": text}).encode())
    except DagJsonError:
        pass


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_dag_json_round_trip(value: object) -> None:
    """encode -> decode gives the value back; keys come out sorted by their UTF-8 bytes."""
    text = dagjson.encode(value)
    assert dagjson.decode(text) == value
    assert dagjson.encode(dagjson.decode(text)) == text


def _dir_sink():  # type: ignore[no-untyped-def]
    blocks: dict[bytes, bytes] = {}

    class Sink:
        def put_many(self, items, verify=False):  # type: ignore[no-untyped-def]
            blocks.update(items)
            return len(items)

    return blocks, Sink()


def test_tar_of_a_directory_tree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tree = tmp_path / "site"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    big = os.urandom(700_000)
    (tree / "sub" / "big.bin").write_bytes(big)
    (tree / "sub" / "deeper" / "empty").write_bytes(b"")
    os.symlink("../a.txt", tree / "sub" / "link")
    blocks, sink = _dir_sink()
    root = list(import_path(str(tree), sink, ImportParams.from_options()))[-1].cid
    stream = b"".join(tarexport.tar_stream(blocks.get, root, "site"))
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        assert sorted(members) == ["site", "site/a.txt", "site/sub", "site/sub/big.bin", "site/sub/deeper", "site/sub/deeper/empty", "site/sub/link"]
        assert members["site"].isdir() and members["site"].mode == 0o755
        assert members["site/a.txt"].mode == 0o644 and tar.extractfile("site/a.txt").read() == b"alpha"  # type: ignore[union-attr]
        assert tar.extractfile("site/sub/big.bin").read() == big  # type: ignore[union-attr]
        assert members["site/sub/link"].issym() and members["site/sub/link"].linkname == "../a.txt"
    assert tarexport.node_size(blocks.get, root) > len(big)
    gz = b"".join(tarexport.gzip_stream(iter([stream]), 6))
    assert tarfile.open(fileobj=io.BytesIO(gz), mode="r:gz").getnames()[0] == "site"


def test_tar_refuses_names_that_leave_the_root() -> None:
    from blockstore.dagpb import PBLink, PBNode, encode_pbnode
    from blockstore.unixfs import DIRECTORY, UnixFSData, encode_unixfs
    from blockstore.cid import DAG_PB, RAW

    leaf = cid_for(b"x", codec=RAW)
    blocks = {leaf: b"x"}
    for bad in (b"..", b"a/../../etc", b""):
        node = encode_pbnode(PBNode([PBLink(leaf, bad, 1)], encode_unixfs(UnixFSData(type=DIRECTORY))))
        cid = cid_for(node, codec=DAG_PB, version=0)
        blocks[cid] = node
        with pytest.raises(tarexport.TarExportError, match="outside the root"):
            b"".join(tarexport.tar_stream(blocks.get, cid, "d"))
