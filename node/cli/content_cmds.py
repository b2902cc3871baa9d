"""``pinion add``, ``cat``, ``ls``, ``car import|export`` and ``block get|put|stat|rm``.

Each runs online (the daemon's RPC) or offline (the repo) through :func:`~node.cli.node_api.open_node`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from blockstore.cid import cid_to_str

from .argtypes import parse_bool, parse_cid
from .errors import CliError
from .node_api import open_node
from .progress import progress


def _out() -> BinaryIO:
    return sys.stdout.buffer


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
    with open_node(args) as api, progress(True, _tree_size(paths), "adding") as adv:
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
    with open_node(args) as api:
        for path in args.paths:
            for chunk in api.cat(path, args.offset, args.length):
                out.write(chunk)
    out.flush()
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for path in args.paths:
            for e in api.ls(path):
                suffix = "/" if e.type == "directory" else ""
                print(f"{cid_to_str(e.cid)} {e.size if e.size is not None else '-'} {e.name}{suffix}")
    return 0


def cmd_car_import(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for name in args.files:
            try:
                fh = sys.stdin.buffer if name == "-" else open(name, "rb")
            except OSError as exc:
                raise CliError(f"{name}: {exc.strerror}") from None
            with fh, progress(True, None if name == "-" else os.path.getsize(name), "importing") as adv:
                res = api.car_import(fh, pin_roots=args.pin_roots, progress=adv)
            if args.pin_roots:  # as kubo, the roots are reported when they are pinned
                for root in res.roots:
                    print(f"root {cid_to_str(root)} (pinned)")
            if args.stats:
                print(f"blocks {res.blocks} bytes {res.bytes}")
    return 0


def cmd_car_export(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        if args.output:
            tmp = args.output + ".part"
            try:
                with open(tmp, "wb") as fh, progress(True, None, "exporting") as adv:
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
    with open_node(args) as api:
        _out().write(api.block_get(parse_cid(args.cid)))
    return 0


def cmd_block_put(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for name in args.files or ["-"]:
            try:
                data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            except OSError as exc:
                raise CliError(f"{name}: {exc.strerror}") from None
            cid, _size = api.block_put(data, codec=args.cid_codec, mhtype=args.mhtype, cid_version=args.cid_version, pin=args.pin)
            print(cid_to_str(cid))
    return 0


def cmd_block_stat(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        cid, size = api.block_stat(parse_cid(args.cid))
        print(f"Key: {cid_to_str(cid)}\nSize: {size}")
    return 0


def cmd_block_rm(args: argparse.Namespace) -> int:
    with open_node(args) as api:
        for text in args.cids:
            api.block_rm(parse_cid(text))
            print(f"removed {text}")
    return 0


def add_parser(sub: Any) -> None:
    """The ``add``, ``cat``, ``ls``, ``car`` and ``block`` commands."""
    s = sub.add_parser("add", help="add files or directories (kubo-identical CIDs)")
    s.add_argument("paths", nargs="*", help="files or directories ('-' or none: stdin)")
    s.add_argument("-r", "--recursive", action="store_true", help="add directories recursively")
    s.add_argument("-q", "--quiet", action="store_true", help="print only CIDs")
    s.add_argument("-Q", "--quieter", action="store_true", help="print only the root CID")
    s.add_argument("--profile", choices=["unixfs-v0-2015", "unixfs-v1-2025"], help="import profile (IPIP-499)")
    s.add_argument("--cid-version", type=int, choices=[0, 1], help="CID version")
    s.add_argument("--raw-leaves", type=parse_bool, nargs="?", const=True, help="raw leaves (default: with CIDv1)")
    s.add_argument("-s", "--chunker", help="chunker, e.g. size-262144")
    s.add_argument("-t", "--trickle", action="store_true", help="trickle DAG layout")
    s.add_argument("-w", "--wrap-with-directory", action="store_true", help="wrap in a directory")
    s.add_argument("-H", "--hidden", action="store_true", help="include hidden files")
    s.add_argument("--max-file-links", type=int, help="links per file node")
    s.add_argument("--pin", type=parse_bool, nargs="?", const=True, default=True, help="pin the root (default true)")
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
    s.add_argument("--pin-roots", type=parse_bool, nargs="?", const=True, default=True)
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
    s.add_argument("--pin", type=parse_bool, nargs="?", const=True, default=False)
    s.set_defaults(func=cmd_block_put)
    s = blk.add_parser("stat", help="size of a block")
    s.add_argument("cid")
    s.set_defaults(func=cmd_block_stat)
    s = blk.add_parser("rm", help="remove blocks")
    s.add_argument("cids", nargs="+")
    s.set_defaults(func=cmd_block_rm)
