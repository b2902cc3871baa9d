"""The repo's configuration file (``$PINION_PATH/config.json``).

The layout follows kubo's config where the two overlap (``Addresses``,
``Identity``, ``Datastore``) and adds a ``Cluster`` section for the cluster
peer. Every key has a default here; ``docs``-level descriptions live beside
each default in :data:`DEFAULTS_DOC`.

Why one module of over 500 lines: every key's default, description and check in one place, so
no default is restated anywhere else.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from blockstore.memory import MAX_BUDGET, MIN_BUDGET

from .errors import NodeError

CONFIG_FILE = "config.json"

#: kubo's public bootstrap peers (https://github.com/ipfs/kubo/blob/master/config/bootstrap_peers.go);
#: ``/dnsaddr`` entries are resolved at start (TXT ``_dnsaddr.<host>``), QUIC ones are skipped (TCP swarm)
DEFAULT_BOOTSTRAP = (
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
)

DEFAULTS: dict[str, Any] = {
    "Addresses": {
        "API": "/ip4/127.0.0.1/tcp/5001",
        "Gateway": "/ip4/127.0.0.1/tcp/8080",
        "ClusterAPI": "/ip4/127.0.0.1/tcp/9094",
        "PinSvcAPI": "/ip4/127.0.0.1/tcp/9097",
        "Metrics": "/ip4/127.0.0.1/tcp/8888",
        "Swarm": ["/ip4/0.0.0.0/tcp/4001"],
        "Cluster": ["/ip4/0.0.0.0/tcp/9096"],
    },
    "Identity": {"PeerID": "", "PrivKey": ""},
    "Cluster": {
        "Name": "pinion",
        "Secret": "",
        "PeerID": "",
        "PrivKey": "",
        "Bootstrap": [],
        "TrustedPeers": ["*"],
        "AllocateToUntrustedPeers": False,
        "RebroadcastInterval": 60,
        "BatchMaxSize": 0,
        "BatchMaxAge": 0,
        "SnapshotInterval": 3600,
        "SnapshotMinDeltas": 1000,
        "Peername": "",
        "ReplicationFactorMin": -1,
        "ReplicationFactorMax": -1,
        "DisableRepinning": True,
        "RepinningGrace": 300,
        "StateSyncInterval": 300,
        "MonitorPingInterval": 15,
        "MetricTTL": 30,
        "AllocateBy": ["tag:group", "freespace"],
        "Tags": {"group": "default"},
    },
    "PinTracker": {
        "ConcurrentPins": 10,
        "MaxPinQueueSize": 1_000_000,
        "PriorityPinMaxAge": 86400,
        "PriorityPinMaxRetries": 5,
        "PinTimeout": 120,
        "RecoverInterval": 720,
        "MaxRetries": 10,
        "RetryBackoff": 30,
    },
    "API": {"BasicAuthCredentials": None, "AllowRemoteWithoutAuth": False},
    "ClusterAPI": {
        "BasicAuthCredentials": None,
        "AllowRemoteWithoutAuth": False,
        "JWTExpiry": 86400,
        "CORSAllowedOrigins": ["*"],
        "CORSAllowedMethods": ["GET"],
        "CORSAllowedHeaders": [],
        "CORSExposedHeaders": ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length", "X-Stream-Error"],
        "CORSAllowCredentials": True,
        "CORSMaxAge": 0,
        "TLSCertFile": "",
        "TLSKeyFile": "",
        "Headers": {},
    },
    "Datastore": {
        "StorageMax": 10 * 1024**3,
        "MaxBlockSize": 2 * 1024 * 1024,
        "Compression": "zstd",
        "MaxUploadSize": 0,
        "MemoryBudget": 0,
    },
    "Gateway": {
        "Offline": False,
        "FetchTimeout": 60,
        "MaxURLLength": 8192,
        "MaxRequestsPerClient": 256,
        "ExposeRoutingAPI": False,
    },
    "Routing": {
        "Type": "auto",
        "Bootstrap": list(DEFAULT_BOOTSTRAP),
        "DelegatedRouters": None,
        "AllowPrivateAddrs": False,
    },
    "Reprovider": {"Strategy": "all", "Interval": "22h"},
    "Swarm": {"ConnMgrLowWater": 32, "ConnMgrHighWater": 96, "ConnMgrGracePeriod": 20},
    "HTTP": {"MaxConnections": 1024, "MaxConnectionsPerClient": 256, "HeaderTimeout": 20, "BodyTimeout": 60},
    "Logging": {"Level": "WARNING", "Subsystems": {}},
}

DEFAULTS_DOC: dict[str, str] = {
    "Addresses.API": "kubo RPC subset (/api/v0), multiaddr",
    "Addresses.Gateway": "HTTP gateway (path + trustless), multiaddr",
    "Addresses.ClusterAPI": "IPFS Cluster REST API, multiaddr",
    "Addresses.PinSvcAPI": "IPFS pinning service API, multiaddr",
    "Addresses.Metrics": "Prometheus /metrics, multiaddr",
    "Addresses.Swarm": "public IPFS swarm host listen multiaddrs",
    "Addresses.Cluster": "private cluster host listen multiaddrs",
    "Identity.PeerID": "peer ID of the swarm host",
    "Identity.PrivKey": "base64 libp2p-protobuf Ed25519 private key of the swarm host",
    "Cluster.Name": "cluster name (the pubsub topics derive from it)",
    "Cluster.Secret": "32-byte private network secret, 64 hex characters",
    "Cluster.PeerID": "peer ID of the cluster host",
    "Cluster.PrivKey": "private key of the cluster host",
    "Cluster.Bootstrap": "cluster multiaddrs to join on start",
    "Cluster.TrustedPeers": "cluster peer IDs whose pinset updates, peer RPC calls and metrics count; \"*\" trusts every peer. A peer with the secret outside this list can still read the pinset (a follower, as in IPFS Cluster) but cannot change it, call the peer RPC, or get allocations (see AllocateToUntrustedPeers)",
    "Cluster.AllocateToUntrustedPeers": "let the allocator use the metrics of peers outside TrustedPeers (and user allocations name them), as in a collaborative cluster; off: an untrusted peer never gets a pin allocated, however much free space it announces",
    "Cluster.RebroadcastInterval": "seconds between rebroadcasts of this peer's pinset heads",
    "Cluster.BatchMaxSize": "pins per pinset delta when batching (0: batching off, one delta per change)",
    "Cluster.BatchMaxAge": "seconds a pinset batch stays open at most (0: batching off)",
    "Cluster.SnapshotInterval": "seconds between pinset snapshots; each round compacts to the previous round's snapshot (0: never)",
    "Cluster.SnapshotMinDeltas": "deltas written since the last snapshot below which a round is skipped",
    "Cluster.Peername": "human-readable name of this peer (default: the host name)",
    "Cluster.ReplicationFactorMin": "default minimum copies of a pin (-1 with Max -1: every peer)",
    "Cluster.ReplicationFactorMax": "default maximum copies of a pin (-1 with Min -1: every peer)",
    "Cluster.DisableRepinning": "never re-allocate the pins of a peer that is gone (IPFS Cluster's default)",
    "Cluster.RepinningGrace": "seconds an allocated peer may be gone before its pins are re-allocated (when repinning is on)",
    "Cluster.StateSyncInterval": "seconds between checks for expired pins (expire_at) to unpin",
    "Cluster.MonitorPingInterval": "seconds between this peer's ping metrics (peers without a fresh ping leave the peer list)",
    "Cluster.MetricTTL": "seconds an informer metric (free space, tags, queue, pin count) stays valid",
    "Cluster.AllocateBy": "metrics the balanced allocator sorts peers by, in order (tag:<name>, freespace, pinqueue, numpin)",
    "Cluster.Tags": "this peer's tags (e.g. group, region), published as tag:<name> metrics",
    "PinTracker.ConcurrentPins": "pins fetched at once",
    "PinTracker.MaxPinQueueSize": "most pins queued on this peer: a new pin whose allocation needs a peer with a full queue gets 429 (REST API, pinning service API, kubo RPC pin/add; other peers' queues are read from their pinqueue metric); the last tenth of the queue is kept for content uploaded to this peer (/add), which is also pinned ahead of the queue from a lane of its own",
    "PinTracker.PriorityPinMaxAge": "seconds a fresh pin keeps priority over older ones",
    "PinTracker.PriorityPinMaxRetries": "attempts after which a pin loses priority",
    "PinTracker.PinTimeout": "seconds without a new block before a pin attempt fails",
    "PinTracker.RecoverInterval": "seconds between automatic retries of failed pins and unpins",
    "PinTracker.MaxRetries": "attempts after which a pin is pin_failed (only recover retries it)",
    "PinTracker.RetryBackoff": "seconds before the first retry of a failed pin (doubles each attempt, at most one hour)",
    "API.BasicAuthCredentials": "user -> password map for the kubo RPC API (Basic, or a JWT signed with the password; null: no auth); the pinion CLI on this repo uses the first entry",
    "ClusterAPI.BasicAuthCredentials": "user -> password map for the REST and pinning service APIs (null: no auth)",
    "ClusterAPI.JWTExpiry": "seconds a token from POST /token stays valid (0: no expiry)",
    "API.AllowRemoteWithoutAuth": "let the daemon serve the kubo RPC on a non-loopback address without API.BasicAuthCredentials (only behind your own authenticating proxy)",
    "ClusterAPI.AllowRemoteWithoutAuth": "let the daemon serve the REST and pinning service APIs on a non-loopback address without BasicAuthCredentials (only behind your own authenticating proxy)",
    "ClusterAPI.CORSAllowedOrigins": "origins (scheme://host[:port]) web pages may call the APIs from; \"*\": any, never with credentials",
    "ClusterAPI.CORSAllowedMethods": "methods allowed from another origin; any other cross-origin request gets 403",
    "ClusterAPI.CORSAllowedHeaders": "request headers a preflight may grant (empty: Accept, Content-Type, Origin, X-Requested-With, and Authorization for origins listed by name)",
    "ClusterAPI.CORSExposedHeaders": "response headers cross-origin pages may read",
    "ClusterAPI.CORSAllowCredentials": "send Access-Control-Allow-Credentials to origins listed by name (never to \"*\")",
    "ClusterAPI.CORSMaxAge": "seconds browsers may cache a preflight answer (0: not sent)",
    "ClusterAPI.TLSCertFile": "PEM certificate: serve the REST and pinning service APIs over HTTPS",
    "ClusterAPI.TLSKeyFile": "PEM private key of TLSCertFile",
    "ClusterAPI.Headers": "extra headers added to every REST API response",
    "Datastore.StorageMax": "bytes this peer offers to store (free space = this - used)",
    "Datastore.MaxUploadSize": "largest upload body accepted by add, dag/import and the cluster API's /add, bytes (0: no limit); larger ones get 413 and are rolled back",
    "Datastore.MaxBlockSize": "largest block accepted, in bytes",
    "Datastore.Compression": "zstd or none: compression of blocks at rest",
    "Datastore.MemoryBudget": "bytes for the memory that grows while content is written (0: an eighth of the container's memory limit, at most 128 MiB, or 128 MiB without a limit; else 8 MiB to 4 GiB). Split (blockstore/memory.py): 1/2 LevelDB memtables (write buffer 1/4, two alive at once), 1/16 LevelDB block cache, 1/8 import write batches (batches of 1/32, one written while the next fills), 1/16 upload body buffer. The default gives a 32 MiB write buffer, an 8 MiB cache, 4 MiB batches",
    "Gateway.Offline": "never fetch missing blocks from the network",
    "Gateway.FetchTimeout": "seconds to wait for missing blocks before 504",
    "Gateway.MaxURLLength": "longest URL (path + query) in bytes; longer ones get 414",
    "Gateway.MaxRequestsPerClient": "requests one client address may have in flight; more get 429",
    "Gateway.ExposeRoutingAPI": "serve delegated routing /routing/v1 (providers, peers) on the gateway port, from our blocks and the DHT",
    "Routing.Type": "content routing (kubo's values): auto (DHT client until publicly reachable, then server, plus delegated routers), autoclient, dht, dhtclient, dhtserver, delegated (HTTP routers only), none (no routing)",
    "Routing.Bootstrap": "swarm multiaddrs (ending /p2p/<id>) dialled at start to join the DHT; `pinion bootstrap list|add|rm` edits it",
    "Routing.DelegatedRouters": "delegated routing /routing/v1 base URLs (null: kubo's for Routing.Type: cid.contact in auto, plus delegated-ipfs.dev in delegated)",
    "Routing.AllowPrivateAddrs": "accept private and loopback addresses in the DHT's table and provider records (a LAN or test DHT; off for the public one)",
    "Reprovider.Strategy": "what is announced to the network: all (every block), pinned (every block of pinned DAGs), roots (only pinned CIDs: pick it for millions of pins)",
    "Reprovider.Interval": "time between reprovide passes (\"22h\", \"90m\", seconds as a number; \"0\" announces new content only); at most 48h",
    "Swarm.ConnMgrLowWater": "swarm connections the connection manager trims down to",
    "Swarm.ConnMgrHighWater": "swarm connections above which the connection manager trims",
    "Swarm.ConnMgrGracePeriod": "seconds a new swarm connection is never trimmed",
    "HTTP.MaxConnections": "connections each HTTP server (RPC, gateway, metrics, REST, pinning service) keeps open at most, lowered to fit the open-file limit; more are answered 503 and closed",
    "HTTP.MaxConnectionsPerClient": "connections one client address may keep open to one HTTP server (at most a quarter of the server's); more are answered 503 and closed",
    "HTTP.HeaderTimeout": "seconds a connection has to send a request's complete headers, from its start or from its previous response (idle keep-alive connections close then)",
    "HTTP.BodyTimeout": "seconds an upload (add, dag/import, block/put, the REST /add) may receive no body data before it is aborted with 408 and rolled back",
    "Logging.Level": "default log level: DEBUG, INFO, WARNING, ERROR (one line per event on stderr)",
    "Logging.Subsystems": "levels per subsystem, e.g. {\"pinset\": \"INFO\", \"pintracker\": \"DEBUG\"}; py-libp2p's loggers too (\"libp2p\", \"libp2p.keepalive\"...), which otherwise log warnings only, and nothing for a failed TCP dial",
}

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class ConfigError(NodeError, ValueError):
    """A configuration file or value that cannot be used."""


def default_config(profile: str | None = None) -> dict[str, Any]:
    """A fresh config dict; ``profile="test"`` makes every listen port 0."""
    cfg = copy.deepcopy(DEFAULTS)
    if profile == "test":
        addrs = cfg["Addresses"]
        for key, value in addrs.items():
            if isinstance(value, list):
                addrs[key] = [_port_zero(v, loopback=True) for v in value]
            else:
                addrs[key] = _port_zero(value, loopback=True)
        cfg["Cluster"]["MonitorPingInterval"] = 1
        cfg["Cluster"]["MetricTTL"] = 4
        # never the public network: no routing, no bootstrap peers, no HTTP routers
        cfg["Routing"].update(Type="none", Bootstrap=[], DelegatedRouters=[], AllowPrivateAddrs=True)
    elif profile not in (None, "", "default"):
        raise ConfigError(f"unknown profile {profile!r} (known: test)")
    return cfg


def _port_zero(maddr: str, loopback: bool) -> str:
    host, _port = tcp_host_port(maddr)
    if loopback:
        host = "127.0.0.1"
    return f"/ip4/{host}/tcp/0"


def tcp_host_port(maddr: str) -> tuple[str, int]:
    """Split ``/ip4/H/tcp/P`` (or ``/ip6/..``, ``/dns/..``) into (host, port)."""
    parts = maddr.strip("/").split("/")
    if len(parts) < 4 or parts[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") or parts[2] != "tcp":
        raise ConfigError(f"not a TCP multiaddr: {maddr!r}")
    try:
        port = int(parts[3])
    except ValueError:
        raise ConfigError(f"bad port in multiaddr {maddr!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"bad port in multiaddr {maddr!r}")
    return parts[1], port


def validate(cfg: dict[str, Any]) -> None:
    """Raise ConfigError with one clear line for the first bad value found."""
    for key in ("API", "Gateway", "ClusterAPI", "PinSvcAPI", "Metrics"):
        tcp_host_port(cfg["Addresses"][key])
    for key in ("Swarm", "Cluster"):
        for maddr in cfg["Addresses"][key]:
            tcp_host_port(maddr)
    secret = cfg["Cluster"].get("Secret", "")
    if secret and not _HEX64.match(secret):
        raise ConfigError("Cluster.Secret must be 64 hexadecimal characters (32 bytes)")
    trusted = cfg["Cluster"].get("TrustedPeers")
    if not isinstance(trusted, list) or not all(isinstance(p, str) and p for p in trusted):
        raise ConfigError('Cluster.TrustedPeers must be a list of peer IDs (or ["*"])')
    interval = cfg["Cluster"].get("RebroadcastInterval")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise ConfigError("Cluster.RebroadcastInterval must be a positive number of seconds")
    for key in ("BatchMaxSize", "BatchMaxAge", "SnapshotInterval", "SnapshotMinDeltas"):
        value = cfg["Cluster"].get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"Cluster.{key} must be a number >= 0")
    if not isinstance(cfg["Cluster"]["BatchMaxSize"], int):
        raise ConfigError("Cluster.BatchMaxSize must be an integer")
    ds = cfg["Datastore"]
    if not isinstance(ds.get("MaxBlockSize"), int) or ds["MaxBlockSize"] <= 0:
        raise ConfigError("Datastore.MaxBlockSize must be a positive integer")
    if not isinstance(ds.get("StorageMax"), int) or ds["StorageMax"] <= 0:
        raise ConfigError("Datastore.StorageMax must be a positive integer")
    if not isinstance(ds.get("MaxUploadSize"), int) or isinstance(ds.get("MaxUploadSize"), bool) or ds["MaxUploadSize"] < 0:
        raise ConfigError("Datastore.MaxUploadSize must be an integer >= 0 (0: no limit)")
    budget = ds.get("MemoryBudget")
    if isinstance(budget, bool) or not isinstance(budget, int) or not (budget == 0 or MIN_BUDGET <= budget <= MAX_BUDGET):
        raise ConfigError(
            f"Datastore.MemoryBudget must be 0 (from the container's memory limit) or {MIN_BUDGET} to {MAX_BUDGET} bytes"
        )
    if ds.get("Compression") not in ("zstd", "none"):
        raise ConfigError("Datastore.Compression must be 'zstd' or 'none'")
    _validate_placement(cfg)
    _number(cfg, "Gateway.MaxURLLength", minimum=256, integer=True)
    _number(cfg, "Gateway.MaxRequestsPerClient", minimum=1, integer=True)
    _validate_routing(cfg)
    _number(cfg, "HTTP.MaxConnections", minimum=1, integer=True)
    _number(cfg, "HTTP.MaxConnectionsPerClient", minimum=1, integer=True)
    _number(cfg, "HTTP.HeaderTimeout", minimum=0.1)
    _number(cfg, "HTTP.BodyTimeout", minimum=0.1)
    log = cfg.get("Logging", {})
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    if log.get("Level") not in levels:
        raise ConfigError(f"Logging.Level must be one of {', '.join(levels)}")
    subs = log.get("Subsystems")
    if not isinstance(subs, dict) or not all(isinstance(k, str) and v in levels for k, v in subs.items()):
        raise ConfigError("Logging.Subsystems must map subsystem names to levels")


def _number(cfg: dict[str, Any], dotted: str, *, minimum: float, integer: bool = False) -> None:
    section, key = dotted.split(".")
    value = cfg[section].get(key)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{dotted} must be {what} >= {minimum:g}")


def _validate_placement(cfg: dict[str, Any]) -> None:
    """The cluster placement, pin tracker and cluster API keys."""
    c = cfg["Cluster"]
    for key in ("RepinningGrace", "StateSyncInterval", "MonitorPingInterval", "MetricTTL"):
        _number(cfg, f"Cluster.{key}", minimum=0.001)
    rmin, rmax = c.get("ReplicationFactorMin"), c.get("ReplicationFactorMax")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rmin, rmax)) or not (
        (rmin == -1 and rmax == -1) or (1 <= rmin <= rmax)
    ):
        raise ConfigError("Cluster.ReplicationFactorMin/Max must be both -1 (every peer) or 1 <= min <= max")
    if not isinstance(c.get("DisableRepinning"), bool):
        raise ConfigError("Cluster.DisableRepinning must be true or false")
    if not isinstance(c.get("AllocateToUntrustedPeers"), bool):
        raise ConfigError("Cluster.AllocateToUntrustedPeers must be true or false")
    if not isinstance(c.get("Peername"), str):
        raise ConfigError("Cluster.Peername must be a string")
    allocate_by = c.get("AllocateBy")
    if not isinstance(allocate_by, list) or not all(isinstance(m, str) and m for m in allocate_by):
        raise ConfigError('Cluster.AllocateBy must be a list of metric names, e.g. ["tag:group", "freespace"]')
    tags = c.get("Tags")
    if not isinstance(tags, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in tags.items()):
        raise ConfigError("Cluster.Tags must map tag names to string values")
    for key in ("ConcurrentPins", "MaxPinQueueSize", "PriorityPinMaxRetries", "MaxRetries"):
        _number(cfg, f"PinTracker.{key}", minimum=1, integer=True)
    for key in ("PriorityPinMaxAge", "PinTimeout", "RecoverInterval", "RetryBackoff"):
        _number(cfg, f"PinTracker.{key}", minimum=0.001)
    for section in ("API", "ClusterAPI"):
        creds = cfg[section].get("BasicAuthCredentials")
        if creds is not None and (
            not isinstance(creds, dict) or not creds or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in creds.items())
        ):
            raise ConfigError(f"{section}.BasicAuthCredentials must be null or map users to non-empty passwords")
    api = cfg["ClusterAPI"]
    _number(cfg, "ClusterAPI.JWTExpiry", minimum=0)
    for key in ("CORSAllowedOrigins", "CORSAllowedMethods", "CORSAllowedHeaders", "CORSExposedHeaders"):
        if not isinstance(api.get(key), list) or not all(isinstance(v, str) for v in api[key]):
            raise ConfigError(f"ClusterAPI.{key} must be a list of strings")
    _number(cfg, "ClusterAPI.CORSMaxAge", minimum=0, integer=True)
    for section in ("API", "ClusterAPI"):
        for key in ("AllowRemoteWithoutAuth",) + (("CORSAllowCredentials",) if section == "ClusterAPI" else ()):
            if not isinstance(cfg[section].get(key), bool):
                raise ConfigError(f"{section}.{key} must be true or false")
    if not isinstance(api.get("Headers"), dict):
        raise ConfigError("ClusterAPI.Headers must map header names to values")
    if bool(api.get("TLSCertFile")) != bool(api.get("TLSKeyFile")):
        raise ConfigError("ClusterAPI.TLSCertFile and TLSKeyFile must be set together")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(h|m|s|ms)$")
_DURATION_PARTS = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: Any, dotted: str) -> float:
    """Seconds from a kubo-style duration (``"22h"``, ``"1h30m"``, ``"90s"``, ``"0"``) or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{dotted} must be a duration like \"22h\" or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() == "0":
        seconds = 0.0
    elif isinstance(value, str) and value and _DURATION_PARTS.sub("", value) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PARTS.findall(value))
    else:
        raise ConfigError(f"{dotted} must be a duration like \"22h\", \"90m\" or a number of seconds, not {value!r}")
    if seconds < 0:
        raise ConfigError(f"{dotted} must not be negative")
    return seconds


def _validate_routing(cfg: dict[str, Any]) -> None:
    """The Routing, Reprovider, Swarm connection manager and Gateway.ExposeRoutingAPI keys."""
    from bitswap.routing.dht_config import ROUTING_TYPES
    from bitswap.routing.provide_queue import MAX_INTERVAL, STRATEGIES

    r = cfg["Routing"]
    if r.get("Type") not in ROUTING_TYPES:
        raise ConfigError(f"Routing.Type must be one of {', '.join(ROUTING_TYPES)}, not {r.get('Type')!r}")
    boot = r.get("Bootstrap")
    if not isinstance(boot, list) or not all(isinstance(a, str) for a in boot):
        raise ConfigError("Routing.Bootstrap must be a list of multiaddrs")
    for addr in boot:
        problem = bootstrap_addr_problem(addr)
        if problem:
            raise ConfigError(f"Routing.Bootstrap: {problem}")
    routers = r.get("DelegatedRouters")
    if routers is not None:
        if not isinstance(routers, list) or not all(isinstance(u, str) for u in routers):
            raise ConfigError("Routing.DelegatedRouters must be null or a list of http(s) URLs")
        for url in routers:
            if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
                raise ConfigError(f"Routing.DelegatedRouters: {url!r} is not an http(s) URL")
    for key, section in (("AllowPrivateAddrs", "Routing"), ("ExposeRoutingAPI", "Gateway")):
        if not isinstance(cfg[section].get(key), bool):
            raise ConfigError(f"{section}.{key} must be true or false")
    rp = cfg["Reprovider"]
    if rp.get("Strategy") not in STRATEGIES:
        raise ConfigError(f"Reprovider.Strategy must be one of {', '.join(STRATEGIES)}, not {rp.get('Strategy')!r}")
    if parse_duration(rp.get("Interval"), "Reprovider.Interval") > MAX_INTERVAL:
        raise ConfigError("Reprovider.Interval must be at most 48h (the DHT forgets provider records after 48 h)")
    for key in ("ConnMgrLowWater", "ConnMgrHighWater"):
        _number(cfg, f"Swarm.{key}", minimum=0, integer=True)
    _number(cfg, "Swarm.ConnMgrGracePeriod", minimum=0)
    if cfg["Swarm"]["ConnMgrLowWater"] > cfg["Swarm"]["ConnMgrHighWater"]:
        raise ConfigError("Swarm.ConnMgrLowWater must not exceed Swarm.ConnMgrHighWater")


def bootstrap_addr_problem(addr: str) -> str | None:
    """Why ``addr`` cannot be a bootstrap peer (None when it can): a multiaddr ending ``/p2p/<peer ID>``."""
    import multiaddr as _ma

    if "/p2p/" not in addr and "/ipfs/" not in addr:
        return f"{addr!r} must end with /p2p/<peer ID>"
    try:
        _ma.Multiaddr(addr)
    except Exception as exc:
        return f"{addr!r} is not a valid multiaddr: {exc}"
    return None


def is_loopback(maddr: str) -> bool:
    """Whether a TCP multiaddr listens on loopback only (127.0.0.0/8, ::1, localhost)."""
    host, _port = tcp_host_port(maddr)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name may resolve to anything


def exposure_problem(cfg: dict[str, Any]) -> str | None:
    """One line naming the key when an API that can change data would listen beyond loopback
    without credentials (None when the config is safe to serve). The gateway and the
    metrics are read-only and may listen anywhere."""
    for addr_key, section in (("API", "API"), ("ClusterAPI", "ClusterAPI"), ("PinSvcAPI", "ClusterAPI")):
        maddr = cfg["Addresses"][addr_key]
        sec = cfg[section]
        if is_loopback(maddr) or sec.get("BasicAuthCredentials") or sec.get("AllowRemoteWithoutAuth"):
            continue
        return (
            f"Addresses.{addr_key} {maddr} is not loopback and {section}.BasicAuthCredentials is not set: "
            f"set it (pinion init --api-credentials generates one), listen on 127.0.0.1, or set "
            f"{section}.AllowRemoteWithoutAuth=true behind your own authenticating proxy"
        )
    return None


def generate_credentials(cfg: dict[str, Any], user: str = "admin") -> str:
    """Put a fresh random password for ``user`` in ``API`` and ``ClusterAPI.BasicAuthCredentials``; return it."""
    password = secrets.token_urlsafe(24)
    cfg["API"]["BasicAuthCredentials"] = {user: password}
    cfg["ClusterAPI"]["BasicAuthCredentials"] = {user: password}
    return password


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def env_name(dotted: str) -> str:
    """The environment variable that overrides a config key: ``Cluster.Secret`` -> ``PINION_CLUSTER_SECRET``."""
    return "PINION_" + dotted.replace(".", "_").upper()


def parse_value(dotted: str, text: str, default: Any) -> Any:
    """A config value from text, typed like the key's default: strings as they are, anything
    else as JSON (a list of strings may also be a comma list). ConfigError names the key."""
    if isinstance(default, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        if isinstance(default, list) or default is None:
            return [part.strip() for part in text.split(",") if part.strip()]
        raise ConfigError(f"{dotted}: {text!r} is not valid JSON") from None


def apply_env(cfg: dict[str, Any], environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Override keys from ``PINION_<SECTION>_<KEY>`` variables (containers); the keys overridden."""
    done = []
    for section, keys in DEFAULTS.items():
        for key, default in keys.items():
            dotted = f"{section}.{key}"
            value = environ.get(env_name(dotted))
            if value is None:
                continue
            try:
                cfg[section][key] = parse_value(dotted, value, default)
            except ConfigError as exc:
                raise ConfigError(f"{env_name(dotted)}: {exc}") from None
            done.append(dotted)
    return done


def load(repo: str | os.PathLike[str], *, env: bool = True) -> dict[str, Any]:
    """Read and validate the repo's config, filling in defaults for missing keys.

    With ``env``, ``PINION_<SECTION>_<KEY>`` environment variables override the file
    (see :func:`apply_env`); the merged config is validated either way.
    """
    path = Path(repo) / CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config at {path} (run 'pinion init')") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must hold a JSON object")
    cfg = _merge(DEFAULTS, raw)
    if env:
        apply_env(cfg, os.environ)
    validate(cfg)
    return cfg


def save(repo: str | os.PathLike[str], cfg: dict[str, Any]) -> None:
    """Write the config atomically (temp file + rename), readable by the owner only."""
    path = Path(repo) / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(cfg, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
