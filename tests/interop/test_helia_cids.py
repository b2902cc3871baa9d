"""Pinion's UnixFS importer and Helia's give the same CIDs for the same content and parameters.

No network: both import the same files from disk and the root CIDs are
compared, so a fetch in either direction can be checked by CID alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blockstore.cid import cid_to_str
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_file, import_path
from blockstore.store import BlockStore

from .content import HAMT_NAME_LENGTH, make_file, make_hamt_dir
from .helia import HeliaPeer

StartHelia = Callable[..., list[HeliaPeer]]

#: (Helia importer options, the same choices as Pinion ImportParams)
FILE_LAYOUTS: list[tuple[dict[str, Any], ImportParams]] = [
    # kubo's chunking with CIDv1 and raw leaves
    ({"chunkSize": 262144, "maxChildren": 174, "rawLeaves": True, "cidVersion": 1}, ImportParams(cid_version=1, raw_leaves=True)),
    # a deep tree: 4 links per node
    (
        {"chunkSize": 262144, "maxChildren": 4, "rawLeaves": True, "cidVersion": 1},
        ImportParams(cid_version=1, raw_leaves=True, max_links=4),
    ),
    # Helia's defaults (1 MiB chunks, 1024 links, raw leaves, CIDv1) = the unixfs-v1-2025 profile
    ({}, ImportParams.from_profile("unixfs-v1-2025")),
    # kubo's legacy defaults: CIDv0, dag-pb leaves
    ({"chunkSize": 262144, "maxChildren": 174, "rawLeaves": False, "cidVersion": 0}, ImportParams()),
]
#: the directory and file options both importers use for directories (kubo chunking, CIDv1, raw leaves)
DIR_HELIA = {"chunkSize": 262144, "maxChildren": 174, "rawLeaves": True, "cidVersion": 1}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlockStore]:
    """A Pinion block store in its own LevelDB, closed after the test."""
    db = open_db(tmp_path / "blocks")
    yield BlockStore(db)
    db.close()


def _dir_estimate(entries: int) -> int:
    """The directory size both importers estimate for make_hamt_dir(entries): name + CIDv1 bytes per link."""
    return entries * (HAMT_NAME_LENGTH + 36) + len("sub") + 36


def test_importer_cids_match_helia(start_helia: StartHelia, store: BlockStore, tmp_path: Path) -> None:
    (helia,) = start_helia()
    path = tmp_path / "file.bin"
    make_file(path, 5 * 1024 * 1024 + 4321, seed=7)
    for helia_options, params in FILE_LAYOUTS:
        theirs = helia.import_file(path, **helia_options)["cid"]
        with open(path, "rb") as fh:
            ours = cid_to_str(import_file(fh, store, params).cid)
        assert ours == theirs, f"file with importer options {helia_options}"

    # directories; the default threshold with HAMT_ENTRIES entries is compared in test_pinion_helia
    small = tmp_path / "small"
    make_hamt_dir(small, entries=120)
    for threshold, sharded in (
        (_dir_estimate(120), False),  # estimate == threshold: stays flat (strictly greater shards)
        (_dir_estimate(120) - 1, True),  # one byte less: sharded
        (4096, True),  # far over: sub-shards
        (262144, False),  # the default threshold: flat
    ):
        theirs = helia.import_dir(small, **DIR_HELIA, shardSplitThresholdBytes=threshold)
        params = ImportParams(cid_version=1, raw_leaves=True, hamt_threshold=threshold)
        ours = list(import_path(small, store, params))[-1]
        assert theirs["sharded"] is sharded, f"threshold {threshold}"
        assert cid_to_str(ours.cid) == theirs["cid"], f"directory with threshold {threshold}"
