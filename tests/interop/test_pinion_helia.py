"""Pinion's bitswap against Helia (JavaScript IPFS), both directions, on loopback.

(a) Helia holds content it imported; Pinion fetches the whole DAG over
bitswap (its wants go out on a stream Pinion opens; Helia delivers the
blocks on a stream it opens back to us). (b) Pinion holds content its own
importer wrote; Helia fetches it over bitswap (Helia sends wants only after
identify lists bitswap; Pinion answers on a stream it opens to Helia). The
bytes are checked by sha256 on the receiving side, and the root CIDs against
the other implementation's importer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from bitswap import BitswapConfig, BlockNotDelivered, FetchError, fetch_dag
from blockstore.cid import RAW, cid_for, cid_from_str, cid_to_str
from blockstore.importer import ImportParams, import_file, import_path

from .content import HAMT_ENTRIES, make_file, make_hamt_dir
from .helia import HeliaError, HeliaPeer, listing_digest
from .pinion import dir_files, file_digest, in_thread, running_pinion

pytestmark = pytest.mark.timeout(120)

StartHelia = Callable[..., list[HeliaPeer]]
#: short client timeouts so that fault tests end quickly
FAST = BitswapConfig(block_timeout=2.0, have_timeout=2.0, rebroadcast_interval=1.0, tick_interval=0.1)
#: kubo's chunking with CIDv1 and raw leaves, in both importers' terms
KUBO_V1_HELIA = {"chunkSize": 262144, "maxChildren": 174, "rawLeaves": True, "cidVersion": 1}
KUBO_V1 = ImportParams(cid_version=1, raw_leaves=True)


def test_pinion_fetches_files_from_helia_while_helia_fetches_from_pinion(start_helia: StartHelia, tmp_path: Path) -> None:
    (helia,) = start_helia()
    path = tmp_path / "file.bin"
    size = 5 * 1024 * 1024 + 999
    sha = make_file(path, size, seed=11)
    # kubo's layout (21 leaves of 256 KiB) and Helia's default (1 MiB leaves, the largest blocks Helia makes)
    kubo_layout = helia.import_file(path, **KUBO_V1_HELIA)["cid"]
    helia_layout = helia.import_file(path)["cid"]

    ours_path = tmp_path / "ours.bin"
    ours_sha = make_file(ours_path, 3 * 1024 * 1024, seed=21)

    async def main() -> None:
        async with running_pinion(tmp_path / "pinion") as pinion:
            with open(ours_path, "rb") as fh:
                ours = cid_to_str(import_file(fh, pinion.store, KUBO_V1).cid)
            await pinion.host.connect(helia.addr)
            # meanwhile Helia fetches a file of ours over the same connection: blocks flow both ways at once
            helia_got: dict[str, object] = {}

            async def helia_fetches() -> None:
                helia_got.update(await in_thread(helia.fetch, ours))  # type: ignore[arg-type]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(helia_fetches)
                for cid_str in (kubo_layout, helia_layout):
                    root = cid_from_str(cid_str)
                    result = await fetch_dag(pinion.bitswap, root, concurrency=32, block_timeout=20)
                    # the two layouts share one leaf (the last 999 bytes), fetched once
                    assert result.blocks > 5 and result.fetched + result.present == result.blocks
                    assert file_digest(pinion.store, root) == (size, sha)
            assert helia_got == {**helia_got, "size": 3 * 1024 * 1024, "sha256": ours_sha}
            stats = pinion.bitswap.stats()
            assert stats["invalid_blocks"] == 0 and stats["unwanted_blocks"] == 0
            peers = await in_thread(helia.peers)
            assert pinion.peer_id in peers  # type: ignore[operator]
            # the CIDs Helia gave are the ones Pinion's importer gives for the same bytes
            for cid_str, params in ((kubo_layout, KUBO_V1), (helia_layout, ImportParams.from_profile("unixfs-v1-2025"))):
                with open(path, "rb") as fh:
                    assert cid_to_str(import_file(fh, pinion.store, params).cid) == cid_str

    trio.run(main)


def test_pinion_fetches_hamt_directory_from_helia(start_helia: StartHelia, tmp_path: Path) -> None:
    (helia,) = start_helia()
    files = make_hamt_dir(tmp_path / "dir")
    added = helia.import_dir(tmp_path / "dir", **KUBO_V1_HELIA)
    assert added["sharded"] is True
    root = cid_from_str(added["cid"])
    theirs = helia.fetch(added["cid"])  # held locally: Helia's own listing digest

    async def main() -> None:
        async with running_pinion(tmp_path / "pinion") as pinion:
            await pinion.host.connect(helia.addr)
            result = await fetch_dag(pinion.bitswap, root, concurrency=64, block_timeout=20)
            assert result.fetched == result.blocks > HAMT_ENTRIES
            got = dir_files(pinion.store, root)
            assert len(got) == HAMT_ENTRIES + 1
            assert {p: d for p, _, d in got} == files
            assert listing_digest(got) == theirs["listing"]
            # Pinion's importer builds the same sharded directory
            entries = list(import_path(tmp_path / "dir", pinion.store, KUBO_V1))
            assert entries[-1].cid == root

    trio.run(main)


def test_helia_fetches_files_from_pinion_after_dialling_it(start_helia: StartHelia, tmp_path: Path) -> None:
    (helia,) = start_helia()
    path = tmp_path / "file.bin"
    size = 4 * 1024 * 1024 + 77
    sha = make_file(path, size, seed=12)

    async def main() -> None:
        async with running_pinion(tmp_path / "pinion") as pinion:
            with open(path, "rb") as fh:
                root = import_file(fh, pinion.store, ImportParams(max_links=8)).cid  # CIDv0, dag-pb leaves, 2 levels
            ident = await in_thread(helia.dial, pinion.addr)
            assert ident["peerId"] == pinion.peer_id  # type: ignore[index]
            assert "/ipfs/bitswap/1.2.0" in ident["protocols"]  # type: ignore[index]
            got = await in_thread(helia.fetch, cid_to_str(root))
            assert got == {**got, "type": "file", "size": size, "sha256": sha}  # type: ignore[operator]
            assert pinion.bitswap.stats()["blocks_sent"] > 16
            # the same import in Helia gives the same root
            again = await in_thread(helia.import_file, path, chunkSize=262144, maxChildren=8, rawLeaves=False, cidVersion=0)
            assert again["cid"] == cid_to_str(root)  # type: ignore[index]
            # 1 MiB raw leaves (the unixfs-v1-2025 profile, Helia's default layout): Pinion serves its largest blocks
            with open(path, "rb") as fh:
                big_leaves = import_file(fh, pinion.store, ImportParams.from_profile("unixfs-v1-2025")).cid
            pinion.bitswap.notify_new_blocks([big_leaves])
            got = await in_thread(helia.fetch, cid_to_str(big_leaves))
            assert got == {**got, "type": "file", "size": size, "sha256": sha}  # type: ignore[operator]

    trio.run(main)


def test_helia_fetches_hamt_directory_from_pinion_that_dialled_it(start_helia: StartHelia, tmp_path: Path) -> None:
    (helia,) = start_helia()
    # 150 entries over a 4 KiB threshold: a HAMT with sub-shards, small enough for Helia's slow small-block fetches
    files = make_hamt_dir(tmp_path / "dir", entries=150)
    params = ImportParams(cid_version=1, raw_leaves=True, hamt_threshold=4096)

    async def main() -> None:
        async with running_pinion(tmp_path / "pinion") as pinion:
            root = list(import_path(tmp_path / "dir", pinion.store, params))[-1].cid
            expected = listing_digest(dir_files(pinion.store, root))
            await pinion.host.connect(helia.addr)  # Helia learns our protocols through identify on our connection
            got = await in_thread(helia.fetch, cid_to_str(root))
            assert got["type"] == "directory"  # type: ignore[index]
            assert got["files"] == len(files)  # type: ignore[index]
            assert got["listing"] == expected  # type: ignore[index]

    trio.run(main)


def test_missing_blocks_and_a_vanishing_helia(start_helia: StartHelia, tmp_path: Path) -> None:
    helia, holder = start_helia(2)
    path = tmp_path / "file.bin"
    make_file(path, 6 * 1024 * 1024, seed=13)
    big = cid_from_str(holder.import_file(path, **KUBO_V1_HELIA)["cid"])
    absent = cid_for(b"a block that no peer holds", RAW)
    absent_str = cid_to_str(absent)

    async def main() -> None:
        async with running_pinion(tmp_path / "pinion", FAST) as pinion:
            await pinion.host.connect(helia.addr)
            # neither side has it: both give up cleanly (the two waits overlap)
            async def helia_gives_up() -> None:
                with pytest.raises(HeliaError, match="fetch failed"):
                    await in_thread(helia.fetch, absent_str, timeout=2)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(helia_gives_up)
                with pytest.raises(BlockNotDelivered):
                    await pinion.bitswap.get_block(absent, timeout=2)
            # the peer holding a DAG is killed mid-fetch: the fetch fails with FetchError, nothing unverified is kept
            await pinion.host.connect(holder.addr)

            async def kill_soon() -> None:
                while pinion.bitswap.stats()["blocks_received"] < 2:
                    await trio.sleep(0.005)
                await in_thread(holder.kill)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_soon)
                with pytest.raises(FetchError, match="not found within"):
                    await fetch_dag(pinion.bitswap, big, concurrency=4, block_timeout=3)
                nursery.cancel_scope.cancel()
            assert not holder.alive
            kept = list(pinion.store.iter_multihashes())
            assert 2 <= len(kept) < 25  # some blocks arrived, not the whole DAG (24 leaves and a root)
            for mh in kept:  # sha2-256 multihashes double as CIDv0 keys
                assert hashlib.sha256(pinion.store.get(mh) or b"").digest() == mh[2:]
            assert pinion.bitswap.stats()["invalid_blocks"] == 0
            # Pinion still serves the live Helia peer afterwards
            data = b"still serving after a peer vanished\n"
            cid = cid_for(data, RAW)
            pinion.store.put(cid, data)
            pinion.bitswap.notify_new_blocks([cid])
            got = await in_thread(helia.fetch, cid_to_str(cid))
            assert got["sha256"] == hashlib.sha256(data).hexdigest()  # type: ignore[index]

    trio.run(main)

