"""CAR import into a real LevelDB block store: fixtures, all-or-nothing on errors, push-style feeding."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from blockstore.car import CarError, CarReader, encode_header, encode_section, write_car
from blockstore.carimport import CarImporter, import_car
from blockstore.cid import IDENTITY, cid_for, cid_from_str, parse_cid
from blockstore.dagwalk import BlockNotFound, walk_dag
from blockstore.db import open_db
from blockstore.store import BlockStore

FIX = Path(__file__).resolve().parents[1].joinpath("fixtures")
V2 = FIX / "go-car-testdata/v2/testdata"
INPUTS = FIX / "go-car-testdata/cmd/car/testdata/inputs"
SPEC = FIX / "ipld-car-spec"
GW = FIX / "gateway-conformance"

GOOD = [
    (INPUTS / "simple-unixfs.car", ["QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"], 22),
    (INPUTS / "simple-unixfs-missing-blocks.car", ["QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"], 17),
    (V2 / "sample-v1.car", ["bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"], 1049),
    (V2 / "sample-wrapped-v2.car", ["bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"], 1049),
    (V2 / "sample-v2-indexless.car", ["bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"], 1049),
    (V2 / "sample-unixfs-v2.car", ["bafybeiakgrehdxxgy5kca72znt6jllrj2sqkehtqeojfuxlbeuqg3vfkwq"], 3),
    (
        SPEC / "carv1-basic/carv1-basic.car",
        ["bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm", "bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm"],
        8,
    ),
    (SPEC / "carv2-basic/carv2-basic.car", ["QmfEoLyB5NndqeKieExd1rtJzTduQUPEV8TwAYcUiy3H5Z"], 5),
]

BAD = [
    INPUTS / "badheaderlength.car",
    INPUTS / "badsectionlength.car",
    V2 / "sample-corrupt-pragma.car",
    V2 / "sample-rootless-v42.car",
    V2 / "sample-v1-tailing-corrupt-section.car",
    V2 / "sample-v1-with-zero-len-section.car",
    V2 / "sample-v1-with-zero-len-section2.car",
    V2 / "sample-v2-corrupt-data-and-index.car",
]


def _distinct_stored(path: Path) -> dict[bytes, int]:
    """multihash -> size of every block of a CAR that the store keeps (identity CIDs are not stored)."""
    out: dict[bytes, int] = {}
    with path.open("rb") as fh:
        for b in CarReader(fh):
            parts = parse_cid(b.cid)
            if parts.mh_code != IDENTITY:
                out[parts.multihash] = len(b.data)
    return out


@pytest.fixture
def store(tmp_path: Path):
    db = open_db(tmp_path / "repo")
    yield BlockStore(db)
    db.close()


@pytest.mark.parametrize("path,roots,count", GOOD, ids=[g[0].name for g in GOOD])
def test_good_fixture_imports(store: BlockStore, path: Path, roots: list[str], count: int) -> None:
    seen: list[int] = []
    with path.open("rb") as fh:
        res = import_car(fh, store, progress=seen.append, read_size=4096)
    assert res.roots == [cid_from_str(r) for r in roots]
    assert res.blocks == count
    expected = _distinct_stored(path)
    assert store.stats()["blocks"] == len(expected)
    assert store.stats()["bytes"] == sum(expected.values())
    for mh in expected:
        assert store.has_multihash(mh)
    assert store.pending_journals() == []
    assert sum(seen) <= path.stat().st_size and seen


@pytest.mark.parametrize("path", BAD, ids=[b.name for b in BAD])
def test_bad_fixture_leaves_nothing(store: BlockStore, path: Path) -> None:
    with path.open("rb") as fh, pytest.raises(CarError):
        import_car(fh, store, read_size=65536)
    assert store.stats()["blocks"] == 0
    assert list(store.iter_multihashes()) == []
    assert store.pending_journals() == []


def test_every_gateway_fixture_imports(store: BlockStore) -> None:
    for path in sorted(GW.rglob("*.car")):
        with path.open("rb") as fh:
            res = import_car(fh, store)
        assert res.roots and res.blocks >= 1


def test_failure_after_many_batches_keeps_only_earlier_blocks(store: BlockStore) -> None:
    old = b"already stored before the import"
    store.put(cid_for(old), old)
    blocks = [(cid_for(b"%d" % i * 500), b"%d" % i * 500) for i in range(300)]
    blocks.insert(150, (cid_for(old), old))  # present before: must survive the rollback
    data = b"".join(write_car([blocks[0][0]], blocks)) + encode_section(cid_for(b"x"), b"y")
    with pytest.raises(CarError, match="does not match"):
        import_car(io.BytesIO(data), store, read_size=1000)
    assert store.stats()["blocks"] == 1 and store.get(cid_for(old)) == old


def test_block_over_store_limit_is_refused(tmp_path: Path) -> None:
    db = open_db(tmp_path / "r")
    try:
        small = BlockStore(db, max_block_size=100)
        big = b"b" * 101
        data = encode_header([cid_for(big)]) + encode_section(cid_for(b"ok"), b"ok") + encode_section(cid_for(big), big)
        with pytest.raises(CarError, match="exceeds the 100-byte limit"):
            import_car(io.BytesIO(data), small)
        assert small.stats()["blocks"] == 0
    finally:
        db.close()


def test_push_style_import_with_random_chunks(store: BlockStore) -> None:
    data = (V2 / "sample-wrapped-v2.car").read_bytes()
    rng = random.Random(7)
    imp = CarImporter(store)
    pos = 0
    while pos < len(data):
        n = rng.randint(1, 20000)
        imp.feed(data[pos : pos + n])
        pos += n
    res = imp.finish()
    assert res.blocks == 1049 and not imp.active
    assert store.stats()["blocks"] == len(_distinct_stored(V2 / "sample-wrapped-v2.car"))


def test_push_style_abort_rolls_back(store: BlockStore) -> None:
    data = (V2 / "sample-v1.car").read_bytes()
    imp = CarImporter(store, batch_blocks=8)
    imp.feed(data[: len(data) // 2])
    assert store.stats()["blocks"] > 0
    imp.abort()
    imp.abort()
    assert store.stats()["blocks"] == 0
    with pytest.raises(RuntimeError):
        imp.feed(b"more")


def test_truncated_stream_rolls_back_at_finish(store: BlockStore) -> None:
    data = (V2 / "sample-v1.car").read_bytes()
    imp = CarImporter(store, batch_blocks=8)
    imp.feed(data[:-10])
    with pytest.raises(CarError, match="unexpected EOF"):
        imp.finish()
    assert store.stats()["blocks"] == 0 and store.pending_journals() == []


def test_caller_exception_rolls_back(store: BlockStore) -> None:
    data = (V2 / "sample-v1.car").read_bytes()

    def progress(n: int) -> None:
        if store.stats()["blocks"] > 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_car(io.BytesIO(data), store, progress=progress, read_size=8192)
    assert store.stats()["blocks"] == 0


def test_v2_index_is_not_read(store: BlockStore) -> None:
    data = (V2 / "sample-wrapped-v2.car").read_bytes()
    stream = io.BytesIO(data)
    import_car(stream, store, read_size=4096)
    assert stream.tell() < len(data)  # the index after the payload was left unread


def test_writer_thread_error_reaches_the_caller_and_rolls_back(store: BlockStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.put_many
    calls = {"n": 0}

    def failing(blocks, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        return real(blocks, **kw)

    monkeypatch.setattr(store, "put_many", failing)
    data = (V2 / "sample-v1.car").read_bytes()
    with pytest.raises(OSError, match="disk full"):
        import_car(io.BytesIO(data), store, batch_blocks=16, read_size=4096)
    assert store.stats()["blocks"] == 0 and store.pending_journals() == []


def test_many_batches_through_the_writer_thread(store: BlockStore) -> None:
    data = (V2 / "sample-v1.car").read_bytes()
    res = import_car(io.BytesIO(data), store, batch_blocks=3, read_size=1000)
    assert res.blocks == 1049
    assert store.stats()["blocks"] == len(_distinct_stored(V2 / "sample-v1.car"))


def test_import_then_export_reproduces_kubos_cars_byte_for_byte(store: BlockStore) -> None:
    """kubo wrote the gateway fixtures with ``dag export``: our export of the imported DAG must be identical."""
    checked = 0
    for path in sorted(GW.rglob("*.car")):
        if "missing-block" in path.name:
            continue
        with path.open("rb") as fh:
            res = import_car(fh, store)
        out = b"".join(write_car(res.roots, walk_dag(res.roots[0], store.get)))
        assert out == path.read_bytes(), path.name
        checked += 1
    assert checked >= 20


def test_export_of_incomplete_dag_names_the_missing_block(store: BlockStore) -> None:
    with (GW / "trustless_gateway_car/file-3k-and-3-blocks-missing-block.car").open("rb") as fh:
        res = import_car(fh, store)
    with pytest.raises(BlockNotFound, match="QmSNLTo6Wv9dfroVaw7MFYjLqf9ho7PKrgsjdzYDtv8h1W"):
        b"".join(write_car(res.roots, walk_dag(res.roots[0], store.get)))
