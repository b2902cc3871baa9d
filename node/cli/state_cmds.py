"""``pinion state export|import|cleanup``: the cluster pinset of a stopped peer (NDJSON, optionally zstd)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import CliError
from .node_api import stopped_repo
from .progress import progress


@contextmanager
def _offline_replica(args: argparse.Namespace) -> Iterator[Any]:
    """The CRDT replica of a repo whose daemon is not running."""
    from ..pinset import open_replica

    repo = stopped_repo(args)
    try:
        yield repo, open_replica(repo)
    finally:
        repo.close()


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
                with _open_text(tmp, "w", args.output.endswith(".zst")) as fh, progress(
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
            with fh, progress(True, None, "importing", "pins") as adv:
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
    with stopped_repo(args) as repo:
        n = clear_state(repo.db)
    print(f"removed {n} CRDT keys; run 'pinion repo gc' to free the delta blocks")
    return 0


def add_parser(sub: Any) -> None:
    """The ``state`` commands."""
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
