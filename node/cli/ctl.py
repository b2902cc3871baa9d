"""``pinion ctl``: the cluster CLI, as ``ipfs-cluster-ctl`` (talks to any peer's REST API).

Commands: ``id``, ``peers ls|rm``, ``pin add|rm|ls|update``, ``status``,
``recover``, ``add``, ``allocations``, ``health graph|metrics|alerts``,
``state export|import``. ``--host`` takes a multiaddr or URL (default: the
``cluster_api`` of the local repo's ``endpoints.json``, else
``/ip4/127.0.0.1/tcp/9094``); ``--enc json`` prints the API's JSON (one
object per line for streams). Errors print one ``Error: ...`` line and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from .cluster_client import DEFAULT_API, ClusterClient, ClusterClientError, default_host
from .progress import progress

#: statuses that count as "done" for ``pin add --wait``
FAILED = ("pin_error", "pin_failed", "cluster_error", "unexpectedly_unpinned")


def _client(args: argparse.Namespace) -> ClusterClient:
    return ClusterClient(args.host or default_host(), basic_auth=args.basic_auth, bearer=args.bearer, timeout=args.timeout)


def _out(args: argparse.Namespace, obj: Any) -> None:
    print(json.dumps(obj, separators=(",", ":")) if args.enc == "json" else obj)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _print_table(columns: list[str], rows: Iterable[list[str]]) -> None:
    """A rich table on a terminal; tab-separated lines (CIDs whole, easy to grep) otherwise."""
    if sys.stdout.isatty():
        table = Table()
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*row)
        _console().print(table)
        return
    print("\t".join(columns))
    for row in rows:
        print("\t".join(row))


def pin_query(args: argparse.Namespace) -> dict[str, Any]:
    """The pin options of ``pin add``/``add`` as REST query parameters."""
    q: dict[str, Any] = {}
    if getattr(args, "name", None):
        q["name"] = args.name
    if getattr(args, "replication", None) is not None:
        q["replication"] = args.replication
    if getattr(args, "replication_min", None) is not None:
        q["replication-min"] = args.replication_min
    if getattr(args, "replication_max", None) is not None:
        q["replication-max"] = args.replication_max
    if getattr(args, "allocations", None):
        q["user-allocations"] = args.allocations
    if getattr(args, "expire_in", None):
        q["expire-in"] = args.expire_in
    if getattr(args, "mode", None):
        q["mode"] = args.mode
    for item in getattr(args, "metadata", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClusterClientError(f"--metadata {item!r} must be key=value")
        q[f"meta-{key}"] = value
    return q


# ---------------------------------------------------------------- output
def _status_rows(gpis: Iterable[dict[str, Any]]) -> Iterable[list[str]]:
    for gpi in gpis:
        first = True
        for peer, info in sorted(gpi.get("peer_map", {}).items(), key=lambda kv: kv[1].get("peername", "")):
            yield [
                gpi["cid"] if first else "",
                gpi.get("name", "") if first else "",
                info.get("peername") or peer,
                info.get("status", ""),
                str(info.get("attempt_count", 0)),
                info.get("error", ""),
            ]
            first = False


def _print_status(args: argparse.Namespace, gpis: Iterable[dict[str, Any]]) -> None:
    if args.enc == "json":
        for gpi in gpis:
            _out(args, gpi)
        return
    _print_table(["cid", "name", "peer", "status", "attempts", "error"], _status_rows(gpis))


# ---------------------------------------------------------------- commands
def cmd_id(args: argparse.Namespace) -> int:
    ident = _client(args).id()
    if args.enc == "json":
        _out(args, ident)
    else:
        print(f"{ident['id']} | {ident.get('peername', '')} | Sees {len(ident.get('cluster_peers', [])) - 1} other peers")
        for addr in ident.get("addresses", []):
            print(f"  > Addresses: {addr}")
        print(f"  > IPFS: {ident.get('ipfs', {}).get('id', '')}")
    return 0


def cmd_peers_ls(args: argparse.Namespace) -> int:
    peers = _client(args).peers()
    if args.enc == "json":
        for p in peers:
            _out(args, p)
        return 0
    rows = ([p["id"], p.get("peername", ""), p.get("version", ""), p.get("ipfs", {}).get("id", ""), p.get("error", "")] for p in peers)
    _print_table(["peer", "name", "version", "IPFS", "error"], rows)
    return 0


def cmd_peers_rm(args: argparse.Namespace) -> int:
    _client(args).peer_rm(args.peer)  # silent on success, as ipfs-cluster-ctl
    return 0


def _wait(client: ClusterClient, cid: str, timeout: float, want: str = "pinned") -> dict[str, Any]:
    """Poll the status of ``cid`` until every allocated peer reports ``want`` (or a failure)."""
    from rich.status import Status

    deadline = time.monotonic() + timeout
    with Status(f"waiting for {cid} to be {want}...", console=Console(stderr=True)) as spinner:
        while True:
            gpi = client.status(cid)
            relevant = {p: i for p, i in gpi["peer_map"].items() if i["status"] != "remote"}
            done = sum(1 for i in relevant.values() if i["status"] == want)
            spinner.update(f"{cid}: {done}/{len(relevant)} peers {want}")
            if relevant and done == len(relevant):
                return gpi
            failed = [f"{i.get('peername') or p}: {i['status']} {i.get('error', '')}" for p, i in relevant.items() if i["status"] in FAILED]
            if failed:
                raise ClusterClientError(f"{cid} failed on " + "; ".join(failed))
            if time.monotonic() > deadline:
                raise ClusterClientError(f"{cid} not {want} after {timeout:g} s ({done}/{len(relevant)} peers)")
            time.sleep(0.5)


def cmd_pin_add(args: argparse.Namespace) -> int:
    client = _client(args)
    pin = client.pin(args.cid, pin_query(args))
    cid = pin["cid"]
    if args.wait:
        gpi = _wait(client, cid, args.wait_timeout)
        _print_status(args, [gpi])
    elif args.no_status:
        _out(args, pin if args.enc == "json" else f"{cid}: pin requested, allocations: {','.join(pin['allocations']) or 'everywhere'}")
    else:
        _print_status(args, [client.status(cid)])
    return 0


def cmd_pin_update(args: argparse.Namespace) -> int:
    client = _client(args)
    old = client.allocation(args.old)
    q = pin_query(args)
    q.setdefault("name", old.get("name", ""))
    q["pin-update"] = args.old
    pin = client.pin(args.new, q)
    _out(args, pin if args.enc == "json" else f"{pin['cid']}: pinned as an update of {args.old}")
    return 0


def cmd_pin_rm(args: argparse.Namespace) -> int:
    client = _client(args)
    pin = client.unpin(args.cid)
    if args.wait:
        deadline = time.monotonic() + args.wait_timeout
        while True:
            gpi = client.status(pin["cid"])
            if all(i["status"] in ("unpinned", "remote") for i in gpi["peer_map"].values()):
                break
            if time.monotonic() > deadline:
                raise ClusterClientError(f"{pin['cid']} not unpinned after {args.wait_timeout:g} s")
            time.sleep(0.5)
    _out(args, pin if args.enc == "json" else f"{pin['cid']}: unpinned")
    return 0


def cmd_pin_ls(args: argparse.Namespace) -> int:
    client = _client(args)
    pins = [client.allocation(args.cid)] if args.cid else client.allocations(args.filter)
    if args.enc == "json":
        for p in pins:
            _out(args, p)
        return 0

    def rows() -> Iterable[list[str]]:
        for p in pins:
            rmin = p.get("replication_factor_min", -1)
            rep = "everywhere" if rmin == -1 else f"{rmin}-{p['replication_factor_max']}"
            expire = p.get("expire_at", "")
            yield [p["cid"], p.get("name", ""), rep, ",".join(p.get("allocations") or []), "" if expire.startswith("0001") else expire]

    _print_table(["cid", "name", "replication", "allocations", "expire"], rows())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.cids and len(args.cids) == 1 and not args.filter:
        gpis: Iterable[dict[str, Any]] = [client.status(args.cids[0], local=args.local)]
    else:
        gpis = client.status_all(local=args.local, filter=args.filter or "", cids=args.cids or None)
    _print_status(args, gpis)
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    client = _client(args)
    gpis = [client.recover(args.cid, local=args.local)] if args.cid else client.recover_all(local=args.local)
    _print_status(args, gpis)
    return 0


def cmd_allocations(args: argparse.Namespace) -> int:
    args.filter = "all"
    return cmd_pin_ls(args)


def cmd_add(args: argparse.Namespace) -> int:
    client = _client(args)
    q = pin_query(args)
    q.update({"format": args.format, "local": args.local or None, "cid-version": args.cid_version, "raw-leaves": args.raw_leaves, "hidden": args.hidden or None, "wrap-with-directory": args.wrap_with_directory or None})
    total = 0
    for path in args.paths:
        if os.path.isdir(path):
            for root, _dirs, files in os.walk(path):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files if os.path.isfile(os.path.join(root, f)))
        elif os.path.isfile(path):
            total += os.path.getsize(path)
    with progress(not args.quiet, total or None, "uploading") as advance:
        out = list(client.add(args.paths, q, recursive=args.recursive, progress=advance))
    for item in out:
        if "cid" not in item:
            continue
        if args.enc == "json":
            _out(args, item)
        elif args.quiet:
            print(item["cid"])
        else:
            allocs = ",".join(item.get("allocations") or []) or "everywhere"
            print(f"added {item['cid']} {item.get('name', '')} (allocations: {allocs})")
    return 0


def cmd_health_graph(args: argparse.Namespace) -> int:
    _out(args, _client(args).graph() if args.enc == "json" else json.dumps(_client(args).graph(), indent=2))
    return 0


def cmd_health_metrics(args: argparse.Namespace) -> int:
    client = _client(args)
    if not args.name:
        names = client.metric_names()
        _out(args, names if args.enc == "json" else "\n".join(names))
        return 0
    metrics = client.metrics(args.name)
    if args.enc == "json":
        _out(args, metrics)
        return 0
    for m in metrics:
        left = (m["expire"] - time.time_ns()) / 1e9
        print(f"{m['peer']} | {m['name']}: {m['value']} | expires in {left:.0f}s")
    return 0


def cmd_health_alerts(args: argparse.Namespace) -> int:
    alerts = _client(args).alerts()
    if args.enc == "json":
        _out(args, alerts)
        return 0
    for a in alerts:
        print(f"{a['triggered_at']} | {a['peer']} | {a['name']} expired")
    if not alerts:
        print("no alerts")
    return 0


def cmd_state_export(args: argparse.Namespace) -> int:
    out = open(args.output, "w") if args.output else sys.stdout
    n = 0
    try:
        for pin in _client(args).allocations():
            out.write(json.dumps(pin, separators=(",", ":")) + "\n")
            n += 1
    finally:
        if args.output:
            out.close()
    print(f"exported {n} pins", file=sys.stderr)
    return 0


def cmd_state_import(args: argparse.Namespace) -> int:
    """Pin every pin of an NDJSON export (Pinion's bulk ``POST /pins``: the cluster allocates again)."""
    try:
        fh = open(args.file, "rb")
    except OSError as exc:
        raise ClusterClientError(f"{args.file}: {exc.strerror}") from None
    with fh:
        n = _client(args).pin_bulk(iter(lambda: fh.read(256 * 1024), b""))
    print(f"imported {n} pins")
    return 0


# ---------------------------------------------------------------- parser
def add_parser(sub: Any) -> None:
    """Mount ``ctl`` and its subcommands on the ``pinion`` parser."""
    ctl = sub.add_parser("ctl", help="the cluster: pins, peers, status (like ipfs-cluster-ctl)")
    ctl.add_argument("--host", help=f"REST API multiaddr or URL (default: this repo's daemon, else {DEFAULT_API})")
    ctl.add_argument("--basic-auth", help="user:password")
    ctl.add_argument("--bearer", help="a token from POST /token")
    ctl.add_argument("--enc", choices=["text", "json"], default="text")
    ctl.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    cs = ctl.add_subparsers(dest="ctl_cmd", required=True, metavar="SUB")

    def pin_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", "-n")
        p.add_argument("--replication", type=int, dest="replication", help="replication min and max")
        p.add_argument("--replication-min", "--rmin", type=int)
        p.add_argument("--replication-max", "--rmax", type=int)
        p.add_argument("--allocations", help="comma list of peer IDs to pin on first")
        p.add_argument("--metadata", action="append", help="key=value (repeatable)")
        p.add_argument("--expire-in", help="Go duration, e.g. 24h")

    s = cs.add_parser("id", help="this peer's identity")
    s.set_defaults(func=cmd_id)
    peers = cs.add_parser("peers", help="cluster peers").add_subparsers(dest="peers_cmd", required=True, metavar="SUB")
    s = peers.add_parser("ls", help="list the peer set")
    s.set_defaults(func=cmd_peers_ls)
    s = peers.add_parser("rm", help="remove a peer: from the peer set, the peer book (no more redials), its connections")
    s.add_argument("peer")
    s.set_defaults(func=cmd_peers_rm)

    pin = cs.add_parser("pin", help="cluster pins").add_subparsers(dest="pin_cmd", required=True, metavar="SUB")
    s = pin.add_parser("add", help="pin a CID or /ipfs/ path in the cluster")
    s.add_argument("cid")
    pin_opts(s)
    s.add_argument("--mode", choices=["recursive", "direct"])
    s.add_argument("--no-status", action="store_true", help="do not print the status afterwards")
    s.add_argument("--wait", action="store_true", help="wait until pinned on the allocated peers")
    s.add_argument("--wait-timeout", type=float, default=600.0)
    s.set_defaults(func=cmd_pin_add)
    s = pin.add_parser("rm", help="unpin")
    s.add_argument("cid")
    s.add_argument("--wait", action="store_true")
    s.add_argument("--wait-timeout", type=float, default=600.0)
    s.set_defaults(func=cmd_pin_rm)
    s = pin.add_parser("ls", help="pins of the pinset")
    s.add_argument("cid", nargs="?")
    s.add_argument("--filter", default="all", help="pin types: pin, meta-pin, clusterdag-pin, shard-pin, all")
    s.set_defaults(func=cmd_pin_ls)
    s = pin.add_parser("update", help="pin NEW with OLD's options (OLD stays pinned)")
    s.add_argument("old")
    s.add_argument("new")
    pin_opts(s)
    s.set_defaults(func=cmd_pin_update)

    s = cs.add_parser("status", help="pin status on every peer")
    s.add_argument("cids", nargs="*")
    s.add_argument("--filter", help="statuses, e.g. pinned,error,queued")
    s.add_argument("--local", action="store_true")
    s.set_defaults(func=cmd_status)
    s = cs.add_parser("recover", help="retry failed pins (one CID or all)")
    s.add_argument("cid", nargs="?")
    s.add_argument("--local", action="store_true")
    s.set_defaults(func=cmd_recover)
    s = cs.add_parser("allocations", help="where pins are allocated")
    s.add_argument("cid", nargs="?")
    s.set_defaults(func=cmd_allocations)

    s = cs.add_parser("add", help="upload files, directories or a CAR and pin them in the cluster")
    s.add_argument("paths", nargs="+")
    s.add_argument("-r", "--recursive", action="store_true")
    s.add_argument("--format", choices=["unixfs", "car"], default="unixfs")
    s.add_argument("--local", action="store_true", help="keep a copy on this peer")
    s.add_argument("--cid-version", type=int, choices=[0, 1])
    s.add_argument("--raw-leaves", action="store_true", default=None)
    s.add_argument("--hidden", action="store_true")
    s.add_argument("--wrap-with-directory", "-w", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true", help="print CIDs only, no progress")
    pin_opts(s)
    s.set_defaults(func=cmd_add)

    health = cs.add_parser("health", help="cluster health").add_subparsers(dest="health_cmd", required=True, metavar="SUB")
    s = health.add_parser("graph", help="who is connected to whom")
    s.set_defaults(func=cmd_health_graph)
    s = health.add_parser("metrics", help="metric names, or the latest of one metric")
    s.add_argument("name", nargs="?")
    s.set_defaults(func=cmd_health_metrics)
    s = health.add_parser("alerts", help="recent alerts")
    s.set_defaults(func=cmd_health_alerts)

    state = cs.add_parser("state", help="the pinset through the API").add_subparsers(dest="state_cmd", required=True, metavar="SUB")
    s = state.add_parser("export", help="the pins as NDJSON")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_state_export)
    s = state.add_parser("import", help="pin every pin of an NDJSON export")
    s.add_argument("file")
    s.set_defaults(func=cmd_state_import)
