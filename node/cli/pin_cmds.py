"""``pinion pin add|rm|ls`` (the node's local pins) and ``repo stat|gc``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from blockstore.cid import RAW, cid_to_str, make_cid

from .argtypes import parse_bool
from .kubo_client import KuboClient
from .node_api import open_node
from .progress import progress


def cmd_pin_add(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for path in args.paths:
            with progress(True, None, f"fetching {path}", "blocks") as adv:
                if adv is not None and isinstance(api, KuboClient):
                    cid = api.pin_add(path, recursive=args.recursive, progress=adv, name=args.name)
                else:
                    cid = api.pin_add(path, recursive=args.recursive, name=args.name)
            print(f"pinned {cid_to_str(cid)} {'recursively' if args.recursive else 'directly'}")
    return 0


def cmd_pin_rm(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for path in args.paths:
            cid = api.pin_rm(path)
            print(f"unpinned {cid_to_str(cid)}")
    return 0


def cmd_pin_ls(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for cid, kind in api.pin_ls(args.type):
            print(cid_to_str(cid) if args.quiet else f"{cid_to_str(cid)} {kind}")
    return 0


def cmd_repo_stat(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        st = api.repo_stat()
    if args.enc == "json":
        print(json.dumps(st))
    else:
        for key in ("NumObjects", "RepoSize", "DataSize", "StorageMax", "RepoPath", "Version"):
            print(f"{key + ':':<12} {st[key]}")
    return 0


def cmd_repo_gc(args: argparse.Namespace) -> int:
    with open_node(args) as api, progress(args.quiet, None, "collecting garbage", "blocks removed") as adv:
        n = 0
        for mh in api.repo_gc():
            n += 1
            if adv:
                adv(1)
            if not args.quiet:
                print(f"removed {cid_to_str(make_cid(1, RAW, mh))}")
    if args.quiet:
        print(f"removed {n} blocks")
    return 0


def add_parser(sub: Any) -> None:
    """The ``pin`` and ``repo`` commands."""
    pin = sub.add_parser("pin", help="local pins").add_subparsers(dest="pin_cmd", required=True, metavar="SUB")
    s = pin.add_parser("add", help="pin (the DAG must be present)")
    s.add_argument("paths", nargs="+")
    s.add_argument("-r", "--recursive", type=parse_bool, nargs="?", const=True, default=True)
    s.add_argument("-n", "--name", default="", help="a name for the pin (at most 255 bytes)")
    s.set_defaults(func=cmd_pin_add)
    s = pin.add_parser("rm", help="unpin")
    s.add_argument("paths", nargs="+")
    s.set_defaults(func=cmd_pin_rm)
    s = pin.add_parser("ls", help="list pins")
    s.add_argument("-t", "--type", default="all", choices=["all", "recursive", "direct", "indirect"])
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_pin_ls)

    rp = sub.add_parser("repo", help="repo maintenance").add_subparsers(dest="repo_cmd", required=True, metavar="SUB")
    s = rp.add_parser("stat", help="blocks and sizes")
    s.add_argument("--enc", choices=["text", "json"], default="text")
    s.set_defaults(func=cmd_repo_stat)
    s = rp.add_parser("gc", help="remove unpinned blocks")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_repo_gc)
