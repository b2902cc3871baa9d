"""The harness on its own: two Helia peers exchange content over bitswap, and the driver reports failures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from blockstore.cid import RAW, cid_for, cid_to_str

from .content import make_file, make_hamt_dir
from .helia import HeliaError, HeliaPeer, listing_digest

StartHelia = Callable[..., list[HeliaPeer]]


def test_helia_to_helia_multi_block_file(start_helia: StartHelia, tmp_path: Path) -> None:
    provider, fetcher = start_helia(2)
    size = 3 * 1024 * 1024 + 12345
    sha = make_file(tmp_path / "file.bin", size, seed=1)
    # 256 KiB chunks, 4 links per node: 13 leaves under a three-level tree
    added = provider.import_file(tmp_path / "file.bin", chunkSize=262144, maxChildren=4, rawLeaves=True, cidVersion=1)
    assert added["size"] == size
    assert provider.stats()["blocks"] > 13

    ident = fetcher.dial(provider.addr)
    assert ident["peerId"] == provider.peer_id
    assert "/ipfs/bitswap/1.2.0" in ident["protocols"]
    got = fetcher.fetch(added["cid"])
    assert got == {**got, "type": "file", "size": size, "sha256": sha}
    assert fetcher.stats() == provider.stats()


def test_helia_to_helia_hamt_directory(start_helia: StartHelia, tmp_path: Path) -> None:
    provider, fetcher = start_helia(2)
    # 150 entries over an 8 KiB threshold: a HAMT with sub-shards, small enough to stay quick
    files = make_hamt_dir(tmp_path / "dir", entries=150)
    added = provider.import_dir(tmp_path / "dir", rawLeaves=True, cidVersion=1, shardSplitThresholdBytes=8192)
    assert added["sharded"] is True

    fetcher.dial(provider.addr)
    got = fetcher.fetch(added["cid"])
    assert got["type"] == "directory"
    assert got["files"] == 150 + 1
    assert got["size"] == sum(len(d) for d in files.values())
    # every small file is one raw block, so its CID is known without an importer
    small = {p: d for p, d in files.items() if not p.startswith("sub/")}
    nested = provider.import_file(tmp_path / "dir" / "sub" / "nested.bin", rawLeaves=True, cidVersion=1)["cid"]
    listing = [(p, cid_to_str(cid_for(d, RAW)), d) for p, d in small.items()]
    listing.append(("sub/nested.bin", nested, files["sub/nested.bin"]))
    assert got["listing"] == listing_digest(listing)


def test_fetch_of_missing_content_times_out(start_helia: StartHelia) -> None:
    (lonely,) = start_helia()
    absent = cid_to_str(cid_for(b"nobody holds this block", RAW))
    with pytest.raises(HeliaError, match="fetch failed"):
        lonely.fetch(absent, timeout=1)
    assert lonely.peers() == []


def test_bad_commands_and_a_dead_peer_get_clear_errors(start_helia: StartHelia, tmp_path: Path) -> None:
    (peer,) = start_helia()
    with pytest.raises(HeliaError, match="unknown command"):
        peer.call("no-such-command")
    with pytest.raises(HeliaError, match="fetch failed"):
        peer.fetch("not-a-cid")
    with pytest.raises(HeliaError, match="import-file failed.*ENOENT"):
        peer.import_file(tmp_path / "missing.bin")
    # the peer still works after errors
    (tmp_path / "one.txt").write_bytes(b"one block\n")
    one = peer.import_file(tmp_path / "one.txt", rawLeaves=True, cidVersion=1)
    assert one["cid"] == cid_to_str(cid_for(b"one block\n", RAW))
    assert peer.fetch(one["cid"])["sha256"] == hashlib.sha256(b"one block\n").hexdigest()
    # a peer that died is reported, not waited for
    peer.kill()
    with pytest.raises(HeliaError, match="not running|exited"):
        peer.peers()

