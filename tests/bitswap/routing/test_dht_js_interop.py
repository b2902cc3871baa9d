"""The DHT against js-libp2p's ``@libp2p/kad-dht`` (15.1.11, libp2p 2.10.0, Node 20) on loopback,
both directions: one side provides, the other finds the provider through the DHT and
fetches the block over bitswap.

The js peer (``js/dht_peer.mjs``) runs kad-dht on ``/ipfs/kad/1.0.0`` in server mode
with ``passthroughMapper`` (its default mapper drops private and loopback addresses,
as the public DHT should). Needs Node >= 20 and npm: ``npm ci`` runs in ``js/`` from
its lockfile on first use; skipped with the reason where they are missing.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from npm_project import node_problem, npm_install
import trio

from bitswap import Bitswap
from bitswap.routing.dht import DHT
from blockstore.cid import RAW, cid_for, cid_from_str, cid_to_str
from blockstore.db import open_db
from blockstore.store import BlockStore

from .dht_hosts import LOOPBACK, lan_config, make_host, p2p_addr, wait_for

pytestmark = pytest.mark.timeout(240)

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def js_ready() -> None:
    problem = node_problem()
    if problem:
        pytest.skip(f"DHT interop with js-libp2p {problem}")
    npm_install(JS_DIR)


class JsDhtPeer:
    """A running ``dht_peer.mjs``: one JSON command per line in, one answer per line out."""

    def __init__(self, proc: trio.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self._buf = b""

    @classmethod
    async def start(cls, nursery: trio.Nursery, log: Path) -> tuple["JsDhtPeer", dict[str, Any]]:
        proc = await nursery.start(
            lambda task_status=trio.TASK_STATUS_IGNORED: trio.run_process(
                ["node", str(JS_DIR / "dht_peer.mjs")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=open(log, "wb"), check=False, task_status=task_status,
            )
        )  # fmt: skip
        peer = cls(proc, log)
        return peer, await peer._line(30)

    async def _line(self, timeout: float) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while b"\n" not in self._buf:
                chunk = await self.proc.stdout.receive_some(65536)
                assert chunk, f"js peer exited; stderr tail:\n{self.log.read_text()[-2000:]}"
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    async def cmd(self, timeout: float = 60, **cmd: Any) -> dict[str, Any]:
        await self.proc.stdin.send_all(json.dumps(cmd).encode() + b"\n")
        answer = await self._line(timeout)
        assert answer["ok"], f"js {cmd['cmd']} failed: {answer.get('error')}\nstderr tail:\n{self.log.read_text()[-2000:]}"
        return answer

    async def stop(self) -> None:
        try:
            with trio.move_on_after(5):
                await self.proc.stdin.send_all(b'{"cmd": "stop"}\n')
                await self.proc.wait()
        finally:
            if self.proc.returncode is None:
                self.proc.kill()


async def _py_node(stack: Any, nursery: trio.Nursery, path: Path) -> tuple[DHT, Bitswap, BlockStore]:
    """A host with Pinion's DHT (server, loopback allowed) and bitswap over one LevelDB."""
    db = open_db(path)
    stack.callback(db.close)
    store = BlockStore(db)
    host = make_host()
    await stack.enter_async_context(host.run(listen_addrs=[LOOPBACK]))
    dht = DHT(host, db, lan_config())
    bs = Bitswap(host, store)
    await nursery.start(dht.run)
    await nursery.start(bs.run)
    return dht, bs, store


def test_js_provides_and_pinion_finds_and_fetches(js_ready: None, tmp_path: Path) -> None:
    """js provides a block; a Pinion node connected only to another Pinion node finds it through
    the DHT (js is a server in the table of the first) and fetches it over bitswap."""
    data = os.urandom(3000)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nursery = await stack.enter_async_context(trio.open_nursery())
            a, _bs_a, _ = await _py_node(stack, nursery, tmp_path / "a")
            b, bs_b, store_b = await _py_node(stack, nursery, tmp_path / "b")
            js, ready = await JsDhtPeer.start(nursery, tmp_path / "js.log")
            try:
                # js <-> a <-> b: b knows js only through a
                await a.bootstrap([ready["addrs"][0]])
                await js.cmd(cmd="dial", addr=p2p_addr(a.host))
                await js.cmd(cmd="wait-table", size=1)
                await b.bootstrap([p2p_addr(a.host)])
                assert js_peer_id(ready) in {str(x) for x in _table_ids(a)}
                put = await js.cmd(cmd="put-block", base64=base64.b64encode(data).decode())
                cid = cid_from_str(put["cid"])
                assert cid == cid_for(data, RAW)
                await js.cmd(cmd="provide", cid=put["cid"])
                found = await b.find_providers(cid, 1)
                assert [str(p.peer_id) for p in found] == [js_peer_id(ready)]
                await b.host.connect(found[0])
                got = await bs_b.get_block(cid, timeout=30)
                assert got == data
                assert store_b.get(cid) == data
            finally:
                await js.stop()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_pinion_provides_and_js_finds_and_fetches(js_ready: None, tmp_path: Path) -> None:
    """A Pinion node provides a block it stores; js, connected only to another Pinion node,
    finds the provider through the DHT and fetches the block over bitswap."""
    data = os.urandom(5000)
    cid = cid_for(data, RAW)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nursery = await stack.enter_async_context(trio.open_nursery())
            a, _bs_a, store_a = await _py_node(stack, nursery, tmp_path / "a")
            b, _bs_b, _ = await _py_node(stack, nursery, tmp_path / "b")
            js, ready = await JsDhtPeer.start(nursery, tmp_path / "js.log")
            try:
                store_a.put(cid, data)
                await b.bootstrap([p2p_addr(a.host)])
                await wait_for(lambda: len(a.table) >= 1)
                await js.cmd(cmd="dial", addr=p2p_addr(b.host))
                await js.cmd(cmd="wait-table", size=1)
                assert await a.provide(cid) >= 1  # to b, the only other server a knows
                await wait_for(lambda: b.store.count() >= 1)
                got = await js.cmd(cmd="fetch", cid=cid_to_str(cid), timeout=90, timeoutMs=60000)
                assert got["provider"] == str(a.local_id)
                assert base64.b64decode(got["base64"]) == data
            finally:
                await js.stop()
                nursery.cancel_scope.cancel()

    trio.run(main)


def js_peer_id(ready: dict[str, Any]) -> str:
    return ready["peerId"]


def _table_ids(dht: DHT) -> list[Any]:
    from libp2p.peer.id import ID

    return [ID(p) for p in dht.table.peers()]
