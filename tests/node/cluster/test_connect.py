"""node/cluster/connect.py: the connector dials every cluster peer it heard of, at once, and keeps
dialling a peer whose pings stopped (pings only cross connections: two peers that knew each
other through a third must still meet when the third goes away)."""

from __future__ import annotations

import asyncio
from typing import Any

from node.cluster import connect
from node.cluster.connect import Connector

ME = "12D3KooWme"
C, D, E = "12D3KooWcc", "12D3KooWdd", "12D3KooWee"


class Members:
    """The peer set and pings, set by the test."""

    peer_id = ME

    def __init__(self) -> None:
        self.pings: dict[str, dict[str, Any]] = {}
        self.removed: set[str] = set()

    def peerset(self) -> list[str]:
        return sorted({ME, *self.pings})

    def ping_info(self, peer: str) -> dict[str, Any]:
        return self.pings.get(peer, {})

    def is_removed(self, peer: str) -> bool:
        return peer in self.removed


class Hosts:
    """The cluster host: which peers are connected and the dials made; an address in
    ``hang`` takes the whole dial timeout, one in ``refuse`` fails at once."""

    def __init__(self) -> None:
        self.connected: set[str] = set()
        self.dials: list[str] = []
        self.hang: set[str] = set()
        self.refuse: set[str] = set()
        self.in_flight = 0
        self.most_in_flight = 0

    async def peers(self, which: str) -> list[dict[str, str]]:
        assert which == "cluster"
        return [{"Peer": p, "Addr": "/ip4/127.0.0.1/tcp/1"} for p in sorted(self.connected)]

    async def connect(self, addr: str, which: str, timeout: float) -> str:
        assert which == "cluster"
        self.dials.append(addr)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            transport, peer = addr.split("/p2p/")
            if transport in self.hang:
                await asyncio.sleep(timeout)
                raise RuntimeError("timed out")
            await asyncio.sleep(0.01)
            if transport in self.refuse:
                raise RuntimeError("connection refused")
            self.connected.add(peer)
            return peer
        finally:
            self.in_flight -= 1


def _ping(*addrs: Any) -> dict[str, Any]:
    return {"cluster_addresses": list(addrs)}


def _connector() -> tuple[Connector, Hosts, Members]:
    hosts, members = Hosts(), Members()
    return Connector(hosts, members, interval=2.0), hosts, members  # type: ignore[arg-type]


def test_a_peer_whose_pings_stopped_is_still_dialled_at_the_address_it_announced() -> None:
    con, hosts, members = _connector()
    members.pings[C] = _ping("/ip4/10.0.0.3/tcp/9096")
    hosts.refuse.add("/ip4/10.0.0.3/tcp/9096")  # not reachable yet (the pings came through a third peer)
    asyncio.run(con.connect_peers())
    assert hosts.dials == [f"/ip4/10.0.0.3/tcp/9096/p2p/{C}"]

    del members.pings[C]  # its pings expired: nobody relays them any more
    hosts.refuse.clear()
    asyncio.run(con.connect_peers())
    assert hosts.connected == {C}

    hosts.dials.clear()
    asyncio.run(con.connect_peers())
    assert hosts.dials == []  # connected: nothing to dial


def test_dials_run_at_once_so_a_dead_peer_does_not_hold_up_a_live_one() -> None:
    con, hosts, members = _connector()
    members.pings = {C: _ping("/ip4/10.0.0.3/tcp/1"), D: _ping("/ip4/10.0.0.4/tcp/1"), E: _ping("/ip4/10.0.0.5/tcp/1")}
    hosts.hang.add("/ip4/10.0.0.3/tcp/1")
    connect_timeout = connect.DIAL_TIMEOUT
    connect.DIAL_TIMEOUT = 0.5
    try:
        asyncio.run(con.connect_peers())
    finally:
        connect.DIAL_TIMEOUT = connect_timeout
    assert hosts.connected == {D, E}
    assert hosts.most_in_flight == 3


def test_the_second_address_is_tried_when_the_first_fails_and_only_two_are_dialled() -> None:
    con, hosts, members = _connector()
    members.pings[C] = _ping("/ip4/10.0.0.3/tcp/1", "/ip4/192.168.0.3/tcp/1", "/ip4/172.16.0.3/tcp/1")
    hosts.refuse.update({"/ip4/10.0.0.3/tcp/1", "/ip4/192.168.0.3/tcp/1"})
    asyncio.run(con.connect_peers())
    assert [d.split("/p2p/")[0] for d in hosts.dials] == ["/ip4/10.0.0.3/tcp/1", "/ip4/192.168.0.3/tcp/1"]
    assert hosts.connected == set()


def test_a_removed_peer_is_forgotten_and_not_redialled() -> None:
    con, hosts, members = _connector()
    members.pings[C] = _ping("/ip4/10.0.0.3/tcp/1")
    hosts.refuse.add("/ip4/10.0.0.3/tcp/1")
    asyncio.run(con.connect_peers())
    del members.pings[C]
    members.removed.add(C)  # pinion ctl peers rm
    hosts.dials.clear()
    asyncio.run(con.connect_peers())
    assert hosts.dials == []
    members.removed.clear()  # removal lasts until it pings again; it has not: still forgotten
    asyncio.run(con.connect_peers())
    assert hosts.dials == []


def test_a_silent_peer_is_forgotten_after_forget_after_seconds() -> None:
    con, hosts, members = _connector()
    members.pings[C] = _ping("/ip4/10.0.0.3/tcp/1")
    con.remember_addresses(now=1000.0)
    del members.pings[C]
    con.remember_addresses(now=1000.0 + connect.FORGET_AFTER - 1)
    assert C in con._addresses
    con.remember_addresses(now=1000.0 + connect.FORGET_AFTER + 1)
    assert C not in con._addresses


def test_a_ping_cannot_make_us_dial_another_peer_or_garbage() -> None:
    con, hosts, members = _connector()
    members.pings[C] = _ping(f"/ip4/10.0.0.9/tcp/1/p2p/{D}", 42, None, "not a multiaddr", f"/ip4/10.0.0.3/tcp/1/p2p/{C}")
    members.pings[E] = {"cluster_addresses": "/ip4/10.0.0.5/tcp/1"}  # not a list
    asyncio.run(con.connect_peers())
    assert hosts.dials == [f"/ip4/10.0.0.3/tcp/1/p2p/{C}"]


def test_the_remembered_peers_are_bounded() -> None:
    con, hosts, members = _connector()
    limit = connect.MAX_REMEMBERED
    connect.MAX_REMEMBERED = 5
    try:
        for i in range(8):
            members.pings = {f"12D3KooWp{i}": _ping(f"/ip4/10.0.1.{i}/tcp/1")}
            con.remember_addresses(now=float(i))
    finally:
        connect.MAX_REMEMBERED = limit
    assert sorted(con._addresses) == [f"12D3KooWp{i}" for i in range(3, 8)]  # the newest kept
