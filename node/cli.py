"""The ``pinion`` command line.

Commands work on the repo directly when no daemon runs, and through the
daemon's RPC API (``$PINION_PATH/api``) when one does, as the kubo CLI does.
Every expected error is one line on stderr (``Error: ...``) and exit code 1;
usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from blockstore.cid import CidError, cid_from_str, cid_to_str, make_cid, RAW

from .repo import API_FILE, Repo, RepoError, repo_path

VERSION = "0.1.0"


class CliError(Exception):
    """An error to print as one line before exiting with status 1."""


# --------------------------------------------------------------------------- helpers
def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _cid(text: str) -> bytes:
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise CliError(str(exc)) from None


def _api_credentials(path: Path) -> tuple[str, str] | None:
    """The first ``API.BasicAuthCredentials`` entry of the repo's config (the daemon asks for it)."""
    from . import config as cfgmod

    try:
        creds = cfgmod.load(path).get("API", {}).get("BasicAuthCredentials")
    except (cfgmod.ConfigError, OSError):
        return None
    if not creds:
        return None
    user = next(iter(creds))
    return user, creds[user]


def _repo_or_daemon(path: Path) -> tuple[str | None, Repo | None]:
    """The RPC address of the daemon running on the repo at ``path``, or, when none runs,
    the repo opened here: ``(address, None)`` or ``(None, repo)``.

    As the kubo CLI: a running daemon writes its address to ``$PINION_PATH/api``, and a
    daemon killed with SIGKILL leaves the file behind. When the address does not answer
    and we can open the repo (LevelDB's lock: no other process holds it), the file is
    stale: it is removed (with ``endpoints.json``), one line on stderr says so and the
    command runs offline. A repo held by a process whose API does not answer is an error:
    it is never opened while a live daemon holds it.
    """
    api_file = path / API_FILE
    try:
        addr = api_file.read_text().strip()
    except FileNotFoundError:
        return None, Repo.open(path)
    except OSError as exc:
        raise CliError(f"cannot read {api_file}: {exc.strerror}") from None
    from .rpc_client import api_answers

    if api_answers(addr):
        return addr, None
    try:
        repo = Repo.open(path)
    except RepoError:
        from .repo import locked_by_other_process

        if locked_by_other_process(path):
            raise CliError(
                f"a daemon holds the repo {path} but its API at {addr!r} does not answer "
                "(still starting, or stuck?)"
            ) from None
        raise
    # we hold the repo's lock now: no daemon can be running, the files are its leftovers
    from .repo import ENDPOINTS_FILE

    for name in (API_FILE, ENDPOINTS_FILE):
        try:
            os.unlink(path / name)
        except FileNotFoundError:
            pass
    print(
        f"pinion: the daemon is not running (removed the stale {api_file} left by a daemon "
        "that did not stop cleanly); running offline",
        file=sys.stderr,
    )
    return None, repo


@contextmanager
def _api(args: argparse.Namespace, *, offline_only: bool = False) -> Iterator[Any]:
    """The node to talk to: the running daemon's RPC, or the repo opened directly."""
    path = Path(args.repo) if args.repo else repo_path()
    if offline_only:
        addr, repo = None, Repo.open(path)
    else:
        addr, repo = _repo_or_daemon(path)
    if addr is not None:
        from .rpc_client import RpcClient

        yield RpcClient(addr, auth=_api_credentials(path))
        return
    from .core import CoreAPI

    assert repo is not None
    try:
        yield CoreAPI(repo)
    finally:
        repo.close()


def _out() -> BinaryIO:
    return sys.stdout.buffer


@contextmanager
def _progress(enabled: bool, total: int | None, label: str, unit: str = "bytes") -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal; yields an advance(n) callback or None.

    ``unit``: ``"bytes"`` (sizes and transfer speed) or a word for counted items (``"pins"``, ``"blocks"``).
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[Any] = ["[progress.description]{task.description}"]
    if unit == "bytes":
        columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    elif total is None:
        columns += [SpinnerColumn(), "{task.completed:,} " + unit, TimeElapsedColumn()]
    else:
        columns += [BarColumn(), MofNCompleteColumn(), unit, TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _tree_size(paths: list[str]) -> int:
    total = 0
    for p in paths:
        if os.path.isdir(p):
            for root, _dirs, files in os.walk(p):
                for f in files:
                    try:
                        total += os.lstat(os.path.join(root, f)).st_size
                    except OSError:
                        pass
        elif os.path.exists(p):
            total += os.path.getsize(p)
    return total


# --------------------------------------------------------------------------- commands
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
    from . import daemon

    path = Path(args.repo) if args.repo else repo_path()
    return daemon.main(str(path), offline=args.offline, bootstrap=args.bootstrap)


def _import_params(args: argparse.Namespace) -> Any:
    from blockstore.importer import ImportParams

    try:
        return ImportParams.from_options(
            profile=args.profile,
            cid_version=args.cid_version,
            raw_leaves=args.raw_leaves,
            chunker=args.chunker,
            trickle=args.trickle,
            hidden=args.hidden,
            wrap_with_directory=args.wrap_with_directory,
            max_links=args.max_file_links,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_add(args: argparse.Namespace) -> int:
    params = _import_params(args)
    paths: list[str] = args.paths or ["-"]
    with _api(args) as api, _progress(True, _tree_size(paths), "adding") as adv:
        last = None
        for p in paths:
            if p == "-":
                entries = [api.add_stream(sys.stdin.buffer, "", params, pin=args.pin, progress=adv)]
            else:
                entries = api.add_path(p, params, recursive=args.recursive, pin=args.pin, progress=adv)
            for entry in entries:
                last = entry
                if args.quieter:
                    continue
                if args.quiet:
                    print(cid_to_str(entry.cid))
                else:
                    name = entry.name or cid_to_str(entry.cid)
                    print(f"added {cid_to_str(entry.cid)} {name}")
            if args.quieter and last is not None:
                print(cid_to_str(last.cid))
                last = None
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    out = _out()
    with _api(args) as api:
        for path in args.paths:
            for chunk in api.cat(path, args.offset, args.length):
                out.write(chunk)
    out.flush()
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for path in args.paths:
            for e in api.ls(path):
                suffix = "/" if e.type == "directory" else ""
                print(f"{cid_to_str(e.cid)} {e.size if e.size is not None else '-'} {e.name}{suffix}")
    return 0


def cmd_car_import(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for name in args.files:
            try:
                fh = sys.stdin.buffer if name == "-" else open(name, "rb")
            except OSError as exc:
                raise CliError(f"{name}: {exc.strerror}") from None
            with fh, _progress(True, None if name == "-" else os.path.getsize(name), "importing") as adv:
                res = api.car_import(fh, pin_roots=args.pin_roots, progress=adv)
            if args.pin_roots:  # as kubo, the roots are reported when they are pinned
                for root in res.roots:
                    print(f"root {cid_to_str(root)} (pinned)")
            if args.stats:
                print(f"blocks {res.blocks} bytes {res.bytes}")
    return 0


def cmd_car_export(args: argparse.Namespace) -> int:
    with _api(args) as api:
        if args.output:
            tmp = args.output + ".part"
            try:
                with open(tmp, "wb") as fh, _progress(True, None, "exporting") as adv:
                    for chunk in api.car_export(args.path):
                        fh.write(chunk)
                        if adv:
                            adv(len(chunk))
                os.replace(tmp, args.output)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            if sys.stdout.isatty():
                raise CliError("refusing to write a CAR to a terminal; redirect stdout or use -o FILE")
            out = _out()
            for chunk in api.car_export(args.path):
                out.write(chunk)
            out.flush()
    return 0


def cmd_block_get(args: argparse.Namespace) -> int:
    with _api(args) as api:
        _out().write(api.block_get(_cid(args.cid)))
    return 0


def cmd_block_put(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for name in args.files or ["-"]:
            try:
                data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            except OSError as exc:
                raise CliError(f"{name}: {exc.strerror}") from None
            cid, _size = api.block_put(data, codec=args.cid_codec, mhtype=args.mhtype, cid_version=args.cid_version, pin=args.pin)
            print(cid_to_str(cid))
    return 0


def cmd_block_stat(args: argparse.Namespace) -> int:
    with _api(args) as api:
        cid, size = api.block_stat(_cid(args.cid))
        print(f"Key: {cid_to_str(cid)}\nSize: {size}")
    return 0


def cmd_block_rm(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for text in args.cids:
            api.block_rm(_cid(text))
            print(f"removed {text}")
    return 0


def cmd_pin_add(args: argparse.Namespace) -> int:
    from .rpc_client import RpcClient

    with _api(args) as api:
        for path in args.paths:
            with _progress(True, None, f"fetching {path}", "blocks") as adv:
                if adv is not None and isinstance(api, RpcClient):
                    cid = api.pin_add(path, recursive=args.recursive, progress=adv, name=args.name)
                else:
                    cid = api.pin_add(path, recursive=args.recursive, name=args.name)
            print(f"pinned {cid_to_str(cid)} {'recursively' if args.recursive else 'directly'}")
    return 0


def cmd_pin_rm(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for path in args.paths:
            cid = api.pin_rm(path)
            print(f"unpinned {cid_to_str(cid)}")
    return 0


def cmd_pin_ls(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for cid, kind in api.pin_ls(args.type):
            print(cid_to_str(cid) if args.quiet else f"{cid_to_str(cid)} {kind}")
    return 0


def cmd_repo_stat(args: argparse.Namespace) -> int:
    with _api(args) as api:
        st = api.repo_stat()
    if args.enc == "json":
        print(json.dumps(st))
    else:
        for key in ("NumObjects", "RepoSize", "DataSize", "StorageMax", "RepoPath", "Version"):
            print(f"{key + ':':<12} {st[key]}")
    return 0


def cmd_repo_gc(args: argparse.Namespace) -> int:
    with _api(args) as api, _progress(args.quiet, None, "collecting garbage", "blocks removed") as adv:
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


def cmd_id(args: argparse.Namespace) -> int:
    with _api(args) as api:
        ident = api.id()
    if args.format:
        print(args.format.replace("<id>", ident["ID"]).replace("<aver>", ident.get("AgentVersion", "")))
    else:
        print(json.dumps(ident, indent=2))
    return 0


def cmd_swarm_peers(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for p in api.swarm_peers():
            print(f"{p['Addr']}/p2p/{p['Peer']}")
    return 0


def cmd_swarm_connect(args: argparse.Namespace) -> int:
    with _api(args) as api:
        for addr in args.addrs:
            print(api.swarm_connect(addr))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"pinion version {VERSION}")
    return 0


# --------------------------------------------------------------------------- state (offline)
@contextmanager
def _offline_replica(args: argparse.Namespace) -> Iterator[Any]:
    """The CRDT replica of a repo whose daemon is not running."""
    from .cluster.pinset import open_replica

    repo = _stopped_repo(args)
    try:
        yield repo, open_replica(repo)
    finally:
        repo.close()


def _stopped_repo(args: argparse.Namespace) -> Repo:
    """The repo opened here for a command that needs the daemon stopped (CliError while it runs)."""
    path = Path(args.repo) if args.repo else repo_path()
    _addr, repo = _repo_or_daemon(path)
    if repo is None:
        raise CliError("the daemon is running on this repo; stop it before using 'pinion state'")
    return repo


def _open_text(name: str, mode: str, zst: bool) -> Any:
    """A text file for mode ``"r"`` or ``"w"``, zstd-(de)compressed when ``zst``."""
    import io

    try:
        raw = open(name, mode + "b")
    except OSError as exc:
        raise CliError(f"{name}: {exc.strerror}") from None
    if not zst:
        return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
    import zstandard

    if mode == "w":
        stream: Any = zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=True)
    else:
        stream = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    return io.TextIOWrapper(stream, encoding="utf-8", newline="\n")


def cmd_state_export(args: argparse.Namespace) -> int:
    from cluster.crdt.state_io import export_pins

    with _offline_replica(args) as (_repo, replica):
        if args.output:
            tmp = args.output + ".part"
            try:
                total = replica.stats()["pins"]
                with _open_text(tmp, "w", args.output.endswith(".zst")) as fh, _progress(
                    True, total, "exporting", "pins"
                ) as adv:
                    n = export_pins(replica, fh, progress=adv)
                os.replace(tmp, args.output)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            print(f"exported {n} pins to {args.output}", file=sys.stderr)
        else:
            export_pins(replica, sys.stdout)
            sys.stdout.flush()
    return 0


def cmd_state_import(args: argparse.Namespace) -> int:
    from cluster.crdt.state_io import import_pins
    from cluster.pin import PinError

    with _offline_replica(args) as (_repo, replica):
        if args.file == "-":
            fh = sys.stdin
        else:
            fh = _open_text(args.file, "r", args.file.endswith(".zst"))
        try:
            with fh, _progress(True, None, "importing", "pins") as adv:
                n = import_pins(replica, fh, progress=adv)
        except PinError as exc:
            raise CliError(f"{args.file}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise CliError(f"{args.file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except Exception as exc:  # zstandard raises its own error type for corrupt frames
            if type(exc).__module__.startswith("zstandard"):
                raise CliError(f"{args.file}: bad zstd data: {exc}") from None
            raise
    print(f"imported {n} pins")
    return 0


def cmd_state_cleanup(args: argparse.Namespace) -> int:
    from cluster.crdt.state_io import clear_state

    if not args.force:
        raise CliError("this deletes the whole cluster pinset of this peer; run again with --force to confirm")
    with _stopped_repo(args) as repo:
        n = clear_state(repo.db)
    print(f"removed {n} CRDT keys; run 'pinion repo gc' to free the delta blocks")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every ``pinion`` command."""
    p = argparse.ArgumentParser(prog="pinion", description="An IPFS Cluster peer with its own IPFS node.")
    p.add_argument("--repo", help="repo path (default $PINION_PATH or ~/.pinion)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    s = sub.add_parser("add", help="add files or directories (kubo-identical CIDs)")
    s.add_argument("paths", nargs="*", help="files or directories ('-' or none: stdin)")
    s.add_argument("-r", "--recursive", action="store_true", help="add directories recursively")
    s.add_argument("-q", "--quiet", action="store_true", help="print only CIDs")
    s.add_argument("-Q", "--quieter", action="store_true", help="print only the root CID")
    s.add_argument("--profile", choices=["unixfs-v0-2015", "unixfs-v1-2025"], help="import profile (IPIP-499)")
    s.add_argument("--cid-version", type=int, choices=[0, 1], help="CID version")
    s.add_argument("--raw-leaves", type=_bool, nargs="?", const=True, help="raw leaves (default: with CIDv1)")
    s.add_argument("-s", "--chunker", help="chunker, e.g. size-262144")
    s.add_argument("-t", "--trickle", action="store_true", help="trickle DAG layout")
    s.add_argument("-w", "--wrap-with-directory", action="store_true", help="wrap in a directory")
    s.add_argument("-H", "--hidden", action="store_true", help="include hidden files")
    s.add_argument("--max-file-links", type=int, help="links per file node")
    s.add_argument("--pin", type=_bool, nargs="?", const=True, default=True, help="pin the root (default true)")
    s.set_defaults(func=cmd_add)

    s = sub.add_parser("cat", help="print a file's bytes")
    s.add_argument("paths", nargs="+", metavar="CID[/path]")
    s.add_argument("-o", "--offset", type=int, default=0)
    s.add_argument("-l", "--length", type=int)
    s.set_defaults(func=cmd_cat)

    s = sub.add_parser("ls", help="list a directory")
    s.add_argument("paths", nargs="+", metavar="CID[/path]")
    s.set_defaults(func=cmd_ls)

    car = sub.add_parser("car", help="CAR import and export").add_subparsers(dest="car_cmd", required=True, metavar="SUB")
    s = car.add_parser("import", help="import CAR files (v1, v2); prints the roots")
    s.add_argument("files", nargs="+", help="CAR files ('-' for stdin)")
    s.add_argument("--pin-roots", type=_bool, nargs="?", const=True, default=True)
    s.add_argument("--stats", action="store_true", help="print block and byte counts")
    s.set_defaults(func=cmd_car_import)
    s = car.add_parser("export", help="write a CARv1 of a DAG to stdout")
    s.add_argument("path", metavar="CID[/path]")
    s.add_argument("-o", "--output", help="write to this file instead of stdout")
    s.set_defaults(func=cmd_car_export)

    blk = sub.add_parser("block", help="raw blocks").add_subparsers(dest="block_cmd", required=True, metavar="SUB")
    s = blk.add_parser("get", help="write a raw block to stdout")
    s.add_argument("cid")
    s.set_defaults(func=cmd_block_get)
    s = blk.add_parser("put", help="store raw blocks from files or stdin")
    s.add_argument("files", nargs="*")
    s.add_argument("--cid-codec", default="raw", choices=["raw", "dag-pb", "dag-cbor"])
    s.add_argument("--mhtype", default="sha2-256", choices=["sha2-256", "blake2b-256"])
    s.add_argument("--cid-version", type=int, default=1, choices=[0, 1])
    s.add_argument("--pin", type=_bool, nargs="?", const=True, default=False)
    s.set_defaults(func=cmd_block_put)
    s = blk.add_parser("stat", help="size of a block")
    s.add_argument("cid")
    s.set_defaults(func=cmd_block_stat)
    s = blk.add_parser("rm", help="remove blocks")
    s.add_argument("cids", nargs="+")
    s.set_defaults(func=cmd_block_rm)

    pin = sub.add_parser("pin", help="local pins").add_subparsers(dest="pin_cmd", required=True, metavar="SUB")
    s = pin.add_parser("add", help="pin (the DAG must be present)")
    s.add_argument("paths", nargs="+")
    s.add_argument("-r", "--recursive", type=_bool, nargs="?", const=True, default=True)
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

    st = sub.add_parser("state", help="the cluster pinset (offline: the daemon must be stopped)").add_subparsers(
        dest="state_cmd", required=True, metavar="SUB"
    )
    s = st.add_parser("export", help="write the pinset as NDJSON (IPFS Cluster pin objects)")
    s.add_argument("-o", "--output", help="write to this file (zstd-compressed when it ends in .zst)")
    s.set_defaults(func=cmd_state_export)
    s = st.add_parser("import", help="add the pins of an NDJSON export to the pinset")
    s.add_argument("file", help="NDJSON file ('.zst': zstd-compressed; '-': stdin)")
    s.set_defaults(func=cmd_state_import)
    s = st.add_parser("cleanup", help="delete this peer's copy of the pinset")
    s.add_argument("-f", "--force", action="store_true", help="do it (required)")
    s.set_defaults(func=cmd_state_cleanup)
    from . import config_cli, ctl, top

    ctl.add_parser(sub)
    top.add_parser(sub)
    config_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pinion`` console script."""
    from .cluster_client import ClusterClientError
    from .config import ConfigError
    from .config_cli import ConfigCliError
    from .core import CoreError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, RepoError, CoreError, ClusterClientError, ConfigError, ConfigCliError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except (ValueError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
