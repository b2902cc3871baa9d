"""node/cluster/fetch.py: the per-pin work of pins that start together is shared: one local
check job (free space read once), one dial of the same providers, every DAG still fetched."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from blockstore.dagwalk import walk_dag
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_bytes
from blockstore.store import BlockStore
from cluster.pin import Pin
from node.cluster.fetch import DagFetcher


class Providers:
    """The connector's calls, recorded (the fetcher only asks it to dial)."""

    interval = 15.0

    def __init__(self) -> None:
        self.dials: list[bytes] = []

    async def connect_providers(self, pin: Pin) -> None:
        self.dials.append(pin.cid)
        await asyncio.sleep(0.01)

    async def keep_connecting(self, pin: Pin) -> None:
        await asyncio.sleep(3600)


class Network:
    """Content from a second block store, block by block (what bitswap would bring)."""

    def __init__(self, src: BlockStore, dst: BlockStore) -> None:
        self.src = src
        self.dst = dst
        self.fetched: list[bytes] = []

    async def fetch_dag(self, root: bytes, *, max_depth: int | None = None, progress: Callable[[int, int], None] | None = None) -> None:
        self.fetched.append(root)
        for n, (cid, data) in enumerate(walk_dag(root, self.src.get, max_depth=max_depth), 1):
            await asyncio.sleep(0)
            self.dst.put(cid, data)
            if progress is not None:
                progress(n, len(data))


def test_pins_starting_together_share_the_check_and_the_dial(tmp_path: Path) -> None:
    src_db, db = open_db(tmp_path / "src"), open_db(tmp_path / "repo")
    src, store = BlockStore(src_db), BlockStore(db)
    remote = [import_bytes(b"remote %d " % i * 40, src, ImportParams(cid_version=1, chunk_size=128)).cid for i in range(30)]
    local = [import_bytes(b"local %d " % i * 40, store, ImportParams(cid_version=1, chunk_size=128)).cid for i in range(10)]
    free_reads = [0]

    def freespace() -> int:
        free_reads[0] += 1
        return 1 << 30

    providers, network = Providers(), Network(src, store)
    fetcher = DagFetcher(network, store, providers, freespace=freespace)  # type: ignore[arg-type]
    progressed: dict[bytes, int] = {}

    async def main() -> None:
        pins = [Pin(c, allocations=("a", "b")) for c in remote + local]
        await asyncio.gather(*(fetcher.fetch(p, lambda n, c=p.cid: progressed.__setitem__(c, n)) for p in pins))

    asyncio.run(main())
    assert sorted(network.fetched) == sorted(remote)  # local DAGs never touch the network
    assert len(providers.dials) == 1  # one dial for 30 pins with the same providers
    assert free_reads[0] == 1  # one check job for the 40 pins
    assert all(progressed.get(c, 0) >= 1 for c in remote + local)
    for root in remote:
        assert fetcher.complete_here(root, None)

    # a later pin of a DAG fetched before: its own check job finds it complete here
    async def again() -> None:
        await fetcher.fetch(Pin(remote[0]), lambda n: None)

    asyncio.run(again())
    assert network.fetched.count(remote[0]) == 1  # complete here: nothing fetched
    src_db.close()
    db.close()
