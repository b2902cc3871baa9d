"""``pinion init``, ``daemon``, ``id``, ``swarm peers|connect`` and ``version``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..repo import Repo, repo_path
from .node_api import open_node

VERSION = "0.1.0"


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.repo) if args.repo else repo_path()
    secret = args.secret or os.environ.get("PINION_CLUSTER_SECRET")
    cfg = Repo.init(path, profile=args.profile, secret=secret, api_credentials=args.api_credentials)
    print(f"initialized Pinion repo at {path}")
    print(f"peer identity: {cfg['Identity']['PeerID']}")
    if args.api_credentials:
        user = next(iter(cfg["ClusterAPI"]["BasicAuthCredentials"]))
        print(
            f"API credentials generated: user {user}, password in {path / 'config.json'} "
            "(API.BasicAuthCredentials, ClusterAPI.BasicAuthCredentials; 'pinion config show --show-secrets')"
        )
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from .. import daemon

    path = Path(args.repo) if args.repo else repo_path()
    status = daemon.main(str(path), offline=args.offline, bootstrap=args.bootstrap)
    # daemon.main has closed the servers, joined the worker pools and closed LevelDB. What is left
    # is the interpreter tearing down the ~1,600 modules py-libp2p and aiohttp load: ~0.4 s that
    # every stop and restart would wait for. Flush the log handlers and output, and leave.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def cmd_id(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        ident = api.id()
    if args.format:
        print(args.format.replace("<id>", ident["ID"]).replace("<aver>", ident.get("AgentVersion", "")))
    else:
        print(json.dumps(ident, indent=2))
    return 0


def cmd_swarm_peers(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for p in api.swarm_peers():
            print(f"{p['Addr']}/p2p/{p['Peer']}")
    return 0


def cmd_swarm_connect(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for addr in args.addrs:
            print(api.swarm_connect(addr))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"pinion version {VERSION}")
    return 0


def add_parser(sub: Any) -> None:
    """The ``init``, ``daemon``, ``id``, ``swarm`` and ``version`` commands."""
    s = sub.add_parser("init", help="create a repo")
    s.add_argument("--profile", choices=["test"], help="'test': every listen port 0, loopback only")
    s.add_argument("--secret", help="cluster secret, 64 hex characters (default: random)")
    s.add_argument(
        "--api-credentials",
        action="store_true",
        help="generate a random password for the kubo RPC, REST and pinning service APIs (needed to serve them beyond loopback)",
    )
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("daemon", help="run the node")
    s.add_argument("--offline", action="store_true", help="start without networking")
    s.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="cluster peer to join (/ip4/.../tcp/9096/p2p/<id>; repeatable; added to Cluster.Bootstrap for this run)",
    )
    s.set_defaults(func=cmd_daemon)

    s = sub.add_parser("id", help="this node's identity")
    s.add_argument("-f", "--format", help="output format, e.g. '<id>'")
    s.set_defaults(func=cmd_id)

    sw = sub.add_parser("swarm", help="swarm peers (needs a running daemon)").add_subparsers(
        dest="swarm_cmd", required=True, metavar="SUB"
    )
    s = sw.add_parser("peers", help="list connected peers")
    s.set_defaults(func=cmd_swarm_peers)
    s = sw.add_parser("connect", help="connect to peers")
    s.add_argument("addrs", nargs="+", metavar="MULTIADDR")
    s.set_defaults(func=cmd_swarm_connect)

    s = sub.add_parser("version", help="print the version")
    s.set_defaults(func=cmd_version)
