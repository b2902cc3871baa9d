"""Informers on three real cluster hosts: metrics and peer sets propagate, a stopped peer raises alerts,
and a peer cannot publish metrics in another's name."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from cluster.monitor import Alert, Metric, MetricStore
from node.cluster.informer import Informer, topic_for
from node.p2p.service import P2PService

from tests.node.p2p.conftest import new_secret
from tests.node.p2p.test_peer_rpc import _settings

PING = 0.3
TTL = 1.2


def _informer(svc: P2PService, name: str, group: str, alerts: list[Alert]) -> Informer:
    assert svc.cluster is not None
    peer = svc.cluster.peer_id
    return Informer(
        svc,
        MetricStore(peer),
        peer_id=peer,
        cluster_name="informer-test",
        ping_interval=PING,
        ttl=TTL,
        tags={"group": group},
        ping_value=lambda: {"peer_name": name, "ipfs_id": "", "ipfs_addresses": [], "cluster_addresses": []},
        freespace=lambda: 1000 if name != "c" else 0,
        pinqueue=lambda: 3,
        numpin=lambda: 7,
        on_alert=alerts.append,
    )


async def _until(what: str, cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_peersets_alerts_and_no_spoofing() -> None:
    secret = new_secret()

    async def main() -> None:
        async with P2PService(_settings(secret)) as a, P2PService(_settings(secret)) as b, P2PService(
            _settings(secret)
        ) as c:
            assert a.cluster and b.cluster and c.cluster
            ids = {"a": a.cluster.peer_id, "b": b.cluster.peer_id, "c": c.cluster.peer_id}
            addr = a.peer_info("cluster")["Addresses"][0]
            await b.connect(addr, "cluster")
            await c.connect(addr, "cluster")
            alerts: list[Alert] = []
            infs = {n: _informer(s, n, g, alerts) for (n, s, g) in (("a", a, "eu"), ("b", b, "eu"), ("c", c, "us"))}
            for inf in infs.values():
                await inf.start()
            try:
                everyone = sorted(ids.values())
                await _until("every peer set complete", lambda: all(i.store.peerset(time.time_ns()) == everyone for i in infs.values()))
                store = infs["a"].store
                tags = {ids["a"]: "eu", ids["b"]: "eu", ids["c"]: "us"}
                await _until("every tag on a", lambda: {m.peer: m.value for m in store.latest("tag:group", time.time_ns())} == tags)
                assert all(m.partitionable for m in store.latest("tag:group", time.time_ns()))
                # c offers no space: its freespace metric is invalid and never published
                await _until("b's free space on a", lambda: store.latest_for("freespace", ids["b"], time.time_ns()) is not None)
                assert store.latest_for("freespace", ids["c"], time.time_ns()) is None
                await _until("every queue length on a", lambda: {m.peer for m in store.latest("pinqueue", time.time_ns())} == set(everyone))
                ping = json.loads(store.latest_for("ping", ids["b"], time.time_ns()).value)  # type: ignore[union-attr]
                assert ping["peer_name"] == "b"
                assert store.latest_for("ping", ids["b"], time.time_ns()).received_at > 0  # type: ignore[union-attr]

                # b publishes a metric in c's name: dropped by a and c
                forged = Metric("tag:group", ids["c"], "forged", time.time_ns() + 10**10, partitionable=True)
                dropped = infs["a"].counters["dropped"]
                await b.publish(topic_for("informer-test"), forged.encode())
                await _until("the forgery to be dropped", lambda: infs["a"].counters["dropped"] > dropped)
                assert store.latest_for("tag:group", ids["c"], time.time_ns()).value == "us"  # type: ignore[union-attr]

                # c stops: its metrics expire, a and b raise one alert per metric and drop it from the peer set
                await infs["c"].stop()
                await _until(
                    "c's ping alert",
                    lambda: any(al.metric.peer == ids["c"] and al.metric.name == "ping" for al in alerts),
                )
                await _until("c out of a's peer set", lambda: ids["c"] not in store.peerset(time.time_ns()))
                names = sorted(al.metric.name for al in infs["a"].store.alerts() if al.metric.peer == ids["c"])
                assert names == sorted(set(names))  # one alert per metric
                assert "ping" in names
            finally:
                for inf in infs.values():
                    await inf.stop()

    asyncio.run(main())
