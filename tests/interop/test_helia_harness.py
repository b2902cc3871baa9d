"""The harness on its own: two Helia peers exchange a file over bitswap, and the driver reports failures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from blockstore.cid import RAW, cid_for, cid_to_str

from .content import make_file
from .helia import HeliaError, HeliaPeer

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
    assert fetcher.dial(provider.addr)["protocols"] == ident["protocols"]  # a second dial answers from the peer store
    got = fetcher.fetch(added["cid"])
    assert got == {**got, "type": "file", "size": size, "sha256": sha}
    assert fetcher.stats() == provider.stats()


def test_missing_content_bad_commands_and_a_dead_peer_get_clear_errors(start_helia: StartHelia, tmp_path: Path) -> None:
    (peer,) = start_helia()
    absent = cid_to_str(cid_for(b"nobody holds this block", RAW))
    with pytest.raises(HeliaError, match="fetch failed"):
        peer.fetch(absent, timeout=1)
    assert peer.peers() == []
    with pytest.raises(HeliaError, match="no /p2p/ peer ID"):
        peer.dial("/ip4/127.0.0.1/tcp/1")
    with pytest.raises(HeliaError, match="dial failed"):
        peer.dial(f"/ip4/127.0.0.1/tcp/1/p2p/{peer.peer_id}", timeout=2)
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

