"""DHT settings, and kubo's ``Routing.Type`` values mapped to what the DHT does.

kubo's values (https://github.com/ipfs/kubo/blob/master/docs/config.md#routingtype):

| Routing.Type | DHT                      | delegated HTTP routers |
|--------------|--------------------------|------------------------|
| auto         | auto (client until reachable from the public internet, then server) | yes |
| autoclient   | client                   | yes |
| dht          | auto                     | no  |
| dhtclient    | client                   | no  |
| dhtserver    | server                   | no  |
| delegated    | none                     | yes |
| none         | none                     | no  |

kubo decides "reachable" with AutoNAT. Pinion has no AutoNAT yet, so
:func:`resolve_mode` takes that answer from the caller: the daemon passes
whether the swarm host announces a public address (``has_public_address``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = [
    "ROUTING_TYPES",
    "CLIENT",
    "SERVER",
    "AUTO",
    "RoutingPlan",
    "routing_plan",
    "resolve_mode",
    "DHTConfig",
    "is_public_ip",
]

CLIENT = "client"  #: asks the DHT, answers nobody (no /ipfs/kad/1.0.0 handler, not in others' tables)
SERVER = "server"  #: asks and answers, stores provider records
AUTO = "auto"  #: client until the node is reachable from the public internet, then server

ROUTING_TYPES = ("auto", "autoclient", "dht", "dhtclient", "dhtserver", "delegated", "none")


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """What one ``Routing.Type`` value turns on."""

    dht: str | None  #: CLIENT, SERVER, AUTO, or None for no DHT
    delegated: bool  #: use the delegated HTTP routers too


_PLANS = {
    "auto": RoutingPlan(AUTO, True),
    "autoclient": RoutingPlan(CLIENT, True),
    "dht": RoutingPlan(AUTO, False),
    "dhtclient": RoutingPlan(CLIENT, False),
    "dhtserver": RoutingPlan(SERVER, False),
    "delegated": RoutingPlan(None, True),
    "none": RoutingPlan(None, False),
}


def routing_plan(routing_type: str) -> RoutingPlan:
    """The plan of a ``Routing.Type`` value; ValueError naming the valid ones for anything else."""
    try:
        return _PLANS[routing_type]
    except (KeyError, TypeError):
        raise ValueError(f"Routing.Type {routing_type!r} is not one of {', '.join(ROUTING_TYPES)}") from None


def resolve_mode(dht_mode: str, publicly_reachable: bool) -> str:
    """CLIENT or SERVER for a plan's ``dht`` value (AUTO becomes SERVER only when reachable)."""
    if dht_mode == AUTO:
        return SERVER if publicly_reachable else CLIENT
    if dht_mode not in (CLIENT, SERVER):
        raise ValueError(f"DHT mode {dht_mode!r} is not one of {CLIENT}, {SERVER}, {AUTO}")
    return dht_mode


def is_public_ip(text: str) -> bool:
    """True for a globally routable IPv4/IPv6 address (not private, loopback, link-local, ...)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return ip.is_global


@dataclass(slots=True)
class DHTConfig:
    """Settings of one DHT instance (the defaults are kubo's where kubo has one)."""

    mode: str = CLIENT  #: CLIENT or SERVER (resolve AUTO with resolve_mode first)
    k: int = 20  #: bucket size, replication factor, peers returned
    alpha: int = 10  #: requests in flight per lookup (go-libp2p-kad-dht's default)
    #: accept peers and provider addresses on private and loopback IPs (a LAN or test DHT);
    #: False is the public (Amino) DHT: only public addresses enter the table and records
    allow_private_addrs: bool = False
    request_timeout: float = 10.0  #: one request: open the stream, write, read the answer
    inbound_idle_timeout: float = 60.0  #: an inbound stream with no new request for this long is closed
    max_request_size: int = 128 * 1024  #: largest request frame read (responses may be up to 4 MiB)
    max_inbound_streams: int = 256  #: inbound DHT streams open at once, all peers
    max_inbound_streams_per_peer: int = 16  #: ... from one peer
    refresh_interval: float = 600.0  #: a bucket not looked up for this long is refreshed (kubo: 10 min)
    refresh_check_interval: float = 60.0  #: how often the refresher looks for due buckets and stale peers
    probe_concurrency: int = 16  #: new connections probed at once (FIND_NODE: is it a DHT server?)
    provide_validity: float = 48 * 3600.0  #: provider record lifetime
    sweep_interval: float = 3600.0  #: how often expired provider records are deleted
    max_records: int = 5_000_000  #: provider records stored in all (~215 bytes each on disk: ~1 GB)
    max_records_per_key: int = 200  #: providers stored for one multihash
    max_records_per_peer: int = 500_000  #: records stored for one announcing peer
    max_addrs_per_peer: int = 16  #: addresses kept per provider / closer peer
    provide_lookups_parallel: int = 8  #: lookups running at once in provide_many
    provide_batch_frames: int = 256  #: ADD_PROVIDER frames per stream write in provide_many

    def __post_init__(self) -> None:
        if self.mode not in (CLIENT, SERVER):
            raise ValueError(f"DHT mode {self.mode!r} must be {CLIENT!r} or {SERVER!r} (resolve {AUTO!r} first)")
        if self.k < 1 or self.alpha < 1:
            raise ValueError("DHT k and alpha must be at least 1")
