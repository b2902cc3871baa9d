"""``pinion routing findprovs|findpeer|provide``, ``pinion bootstrap list|add|rm``, ``pinion stats provide``.

``routing`` and ``stats`` talk to the running daemon (kubo RPC ``routing/*``, ``stats/provide``);
``bootstrap`` edits ``Routing.Bootstrap`` in the repo's config file, as kubo's ``ipfs bootstrap``
does (the daemon reads it at its next start).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from .errors import CliError

__all__ = ["add_parser"]


def _repo(args: argparse.Namespace) -> Path:
    from ..repo import repo_path

    return Path(args.repo) if getattr(args, "repo", None) else repo_path()


def _daemon(args: argparse.Namespace) -> Any:
    """An RPC client of the running daemon (CliError when none runs)."""
    from .kubo_client import KuboClient
    from .node_api import api_credentials, repo_or_daemon

    path = _repo(args)
    addr, repo = repo_or_daemon(path)
    if addr is None:
        if repo is not None:
            repo.close()
        raise CliError("this command needs a running daemon (pinion daemon)")
    return KuboClient(addr, auth=api_credentials(path))


def _events(client: Any, command: str, args: list[str], opts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return list(client._lines(client._open(command, args, opts)))


# ---------------------------------------------------------------- routing
def cmd_findprovs(args: argparse.Namespace) -> int:
    client = _daemon(args)
    for ev in _events(client, "routing/findprovs", [args.cid], {"num-providers": args.num_providers}):
        for r in ev.get("Responses") or []:
            print(r["ID"] if not args.verbose else json.dumps(r))
    return 0


def cmd_findpeer(args: argparse.Namespace) -> int:
    client = _daemon(args)
    for ev in _events(client, "routing/findpeer", [args.peer]):
        for r in ev.get("Responses") or []:
            for addr in r.get("Addrs") or []:
                print(addr)
    return 0


def cmd_provide(args: argparse.Namespace) -> int:
    client = _daemon(args)
    for ev in _events(client, "routing/provide", list(args.cids)):
        if args.verbose and ev.get("Extra"):
            print(ev["Extra"])
    return 0


def cmd_stats_provide(args: argparse.Namespace) -> int:
    client = _daemon(args)
    st = client._json("stats/provide")
    if args.enc == "json":
        print(json.dumps(st, indent=2))
        return 0
    now = time.time()

    def ago(t: float | None) -> str:
        return "never" if not t else f"{now - t:.0f} s ago"

    print(f"Strategy:            {st['strategy']} (interval {st['interval']:g} s)")
    print(f"Queued:              {st['queued']} ({st['queued_new']} new, {st['queued_retry']} retries), {st['in_flight']} in flight")
    print(f"Provided:            {st['provided_total']} ({st['provided_per_second']:.1f}/s)")
    print(f"Errors:              {st['errors_total']} batches, {st['failed_total']} keys given up, {st['excluded_total']} excluded")
    print(f"Last full pass:      {ago(st['last_pass_end'])}, {st['last_pass_keys']} keys")
    if st["pass_running"]:
        print(f"Pass running:        {st['pass_provided']} keys since {ago(st['pass_started'])}" + (" (BEHIND)" if st["behind"] else ""))
    return 0


# ---------------------------------------------------------------- bootstrap
def _load(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    repo = _repo(args)
    return repo, cfgmod.load(repo, env=False)


def _save(repo: Path, cfg: dict[str, Any]) -> None:
    cfgmod.validate(cfg)
    cfgmod.save(repo, cfg)


def cmd_bootstrap_list(args: argparse.Namespace) -> int:
    _repo_path, cfg = _load(args)
    for addr in cfg["Routing"]["Bootstrap"]:
        print(addr)
    return 0


def cmd_bootstrap_add(args: argparse.Namespace) -> int:
    repo, cfg = _load(args)
    if args.default:
        new = list(cfgmod.DEFAULT_BOOTSTRAP)
    elif args.addrs:
        new = list(args.addrs)
    else:
        raise CliError("give peer multiaddrs to add, or --default")
    for addr in new:
        problem = cfgmod.bootstrap_addr_problem(addr)
        if problem:
            raise CliError(problem)
    current = cfg["Routing"]["Bootstrap"]
    added = [a for a in new if a not in current]
    cfg["Routing"]["Bootstrap"] = current + added
    _save(repo, cfg)
    for addr in added:
        print(f"added {addr}")
    return 0


def cmd_bootstrap_rm(args: argparse.Namespace) -> int:
    repo, cfg = _load(args)
    current = cfg["Routing"]["Bootstrap"]
    if args.all:
        removed = list(current)
    elif args.addrs:
        missing = [a for a in args.addrs if a not in current]
        if missing:
            raise CliError(f"{missing[0]} is not in Routing.Bootstrap")
        removed = list(args.addrs)
    else:
        raise CliError("give peer multiaddrs to remove, or --all")
    cfg["Routing"]["Bootstrap"] = [a for a in current if a not in removed]
    _save(repo, cfg)
    for addr in removed:
        print(f"removed {addr}")
    return 0


def add_parser(sub: Any) -> None:
    """Mount ``routing``, ``bootstrap`` and ``stats`` on the ``pinion`` parser."""
    rt = sub.add_parser("routing", help="content routing (needs a running daemon)").add_subparsers(dest="routing_cmd", required=True, metavar="SUB")
    s = rt.add_parser("findprovs", help="peers that provide a CID")
    s.add_argument("cid")
    s.add_argument("-n", "--num-providers", type=int, default=20)
    s.add_argument("-v", "--verbose", action="store_true", help="print each provider's record as JSON")
    s.set_defaults(func=cmd_findprovs)
    s = rt.add_parser("findpeer", help="addresses of a peer")
    s.add_argument("peer")
    s.set_defaults(func=cmd_findpeer)
    s = rt.add_parser("provide", help="announce CIDs held here to the DHT now")
    s.add_argument("cids", nargs="+")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_provide)

    bs = sub.add_parser("bootstrap", help="the swarm's bootstrap peers (Routing.Bootstrap)").add_subparsers(dest="bootstrap_cmd", required=True, metavar="SUB")
    s = bs.add_parser("list", help="list the bootstrap peers")
    s.set_defaults(func=cmd_bootstrap_list)
    s = bs.add_parser("add", help="add bootstrap peers")
    s.add_argument("addrs", nargs="*")
    s.add_argument("--default", action="store_true", help="add kubo's default public bootstrap peers")
    s.set_defaults(func=cmd_bootstrap_add)
    s = bs.add_parser("rm", help="remove bootstrap peers")
    s.add_argument("addrs", nargs="*")
    s.add_argument("--all", action="store_true", help="remove every bootstrap peer")
    s.set_defaults(func=cmd_bootstrap_rm)

    st = sub.add_parser("stats", help="node statistics (needs a running daemon)").add_subparsers(dest="stats_cmd", required=True, metavar="SUB")
    s = st.add_parser("provide", help="progress of providing (queue, rate, last reprovide pass)")
    s.add_argument("--enc", choices=["text", "json"], default="text")
    s.set_defaults(func=cmd_stats_provide)
