"""node/content.py's DAG fetches on two P2PServices in one process: many DAGs asked for at once
cross to the libp2p thread together and each ends on its own (done, not found, cancelled)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from blockstore.cid import RAW, cid_for
from blockstore.db import open_db
from blockstore.importer import ImportParams, import_bytes
from blockstore.store import BlockStore
from node.content import NetworkContent
from node.p2p.identity import generate_identity
from node.p2p.service import P2PService, P2PSettings

from .conftest import LOOPBACK


def _settings() -> P2PSettings:
    return P2PSettings(swarm_privkey=generate_identity()[1], swarm_addrs=(LOOPBACK,))


def test_many_dags_at_once_each_done_missing_or_cancelled_on_its_own(tmp_path: Path) -> None:
    db_a, db_b = open_db(tmp_path / "a"), open_db(tmp_path / "b")
    store_a, store_b = BlockStore(db_a), BlockStore(db_b)
    roots = [import_bytes(b"dag %d " % i * (50 + 200 * (i % 5)), store_a, ImportParams(cid_version=1, chunk_size=256)).cid
             for i in range(40)]
    absent = cid_for(b"a block nobody has", RAW)
    slow = cid_for(b"a block that will be cancelled", RAW)

    async def main() -> None:
        async with P2PService(_settings()) as a, P2PService(_settings()) as b:
            content_a = NetworkContent(a, store_a)
            content_b = NetworkContent(b, store_b, fetch_timeout=3.0)
            await content_a.start()
            await content_b.start()
            await b.connect((await a.id())["Addresses"][0])
            progress: dict[bytes, int] = {}

            def seen(root: bytes):  # called from the libp2p thread
                return lambda blocks, _bytes: progress.__setitem__(root, blocks)

            fetches = [asyncio.create_task(content_b.fetch_dag(r, progress=seen(r))) for r in roots]
            missing = asyncio.create_task(content_b.fetch_dag(absent))
            cancelled = asyncio.create_task(content_b.fetch_dag(slow))
            await asyncio.sleep(0.3)
            cancelled.cancel()
            await asyncio.wait_for(asyncio.gather(*fetches), 60)
            with pytest.raises(LookupError, match="not found"):
                await asyncio.wait_for(missing, 60)
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            # the cancelled want was withdrawn, not left in the wantlist
            for _ in range(100):
                if content_b.stats().get("wantlist_size") == 0:
                    break
                await asyncio.sleep(0.05)
            assert content_b.stats()["wantlist_size"] == 0
            assert all(progress.get(r, 0) >= 1 for r in roots)
            for r in roots:
                content_b.fetch_dag_blocking(r)  # remembered as fetched: returns at once

    asyncio.run(main())
    from blockstore.dagwalk import walk_dag

    for r in roots:
        assert [c for c, _d in walk_dag(r, store_b.get)] == [c for c, _d in walk_dag(r, store_a.get)]
    db_a.close()
    db_b.close()
