"""The ``pinion`` command line: the argument parser of every command group and the entry point.

Commands work on the repo directly when no daemon runs, and through the
daemon's RPC API (``$PINION_PATH/api``) when one does, as the kubo CLI does
(:mod:`node.cli.node_api`). Every expected error is one line on stderr
(``Error: ...``) and exit code 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every ``pinion`` command."""
    # imported here, so that ``python -m node.cli.config_cli`` runs its module once
    from . import config_cli, content_cmds, ctl, node_cmds, pin_cmds, routing_cmds, state_cmds, top

    p = argparse.ArgumentParser(prog="pinion", description="An IPFS Cluster peer with its own IPFS node.")
    p.add_argument("--repo", help="repo path (default $PINION_PATH or ~/.pinion)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (node_cmds, content_cmds, pin_cmds, state_cmds, ctl, top, config_cli, routing_cmds):
        group.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pinion`` console script."""
    from ..config import ConfigError
    from ..errors import CoreError
    from ..repo import RepoError
    from .cluster_client import ClusterClientError
    from .config_cli import ConfigCliError
    from .errors import CliError

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
