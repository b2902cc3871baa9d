"""The node a ``pinion`` command talks to: the running daemon's kubo RPC, or the repo opened here.

As the kubo CLI: a running daemon writes its RPC address to ``$PINION_PATH/api``;
when it answers, commands go through :class:`~node.cli.kubo_client.KuboClient`,
otherwise the repo is opened directly and used through :class:`node.core.CoreAPI`
(both have the same methods, return types and exceptions).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..repo import API_FILE, Repo, RepoError, repo_path
from .errors import CliError


def api_credentials(path: Path) -> tuple[str, str] | None:
    """The first ``API.BasicAuthCredentials`` entry of the repo's config (the daemon asks for it)."""
    from .. import config as cfgmod

    try:
        creds = cfgmod.load(path).get("API", {}).get("BasicAuthCredentials")
    except (cfgmod.ConfigError, OSError):
        return None
    if not creds:
        return None
    user = next(iter(creds))
    return user, creds[user]


def repo_or_daemon(path: Path) -> tuple[str | None, Repo | None]:
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
    from .kubo_client import api_answers

    if api_answers(addr):
        return addr, None
    try:
        repo = Repo.open(path)
    except RepoError:
        from ..repo import locked_by_other_process

        if locked_by_other_process(path):
            raise CliError(
                f"a daemon holds the repo {path} but its API at {addr!r} does not answer "
                "(still starting, or stuck?)"
            ) from None
        raise
    # we hold the repo's lock now: no daemon can be running, the files are its leftovers
    from ..repo import ENDPOINTS_FILE

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
def open_node(args: argparse.Namespace, *, offline_only: bool = False) -> Iterator[Any]:
    """The node to talk to: the running daemon's RPC, or the repo opened directly."""
    path = Path(args.repo) if args.repo else repo_path()
    if offline_only:
        addr, repo = None, Repo.open(path)
    else:
        addr, repo = repo_or_daemon(path)
    if addr is not None:
        from .kubo_client import KuboClient

        yield KuboClient(addr, auth=api_credentials(path))
        return
    from ..core import CoreAPI

    assert repo is not None
    try:
        yield CoreAPI(repo)
    finally:
        repo.close()


def stopped_repo(args: argparse.Namespace) -> Repo:
    """The repo opened here for a command that needs the daemon stopped (CliError while it runs)."""
    path = Path(args.repo) if args.repo else repo_path()
    _addr, repo = repo_or_daemon(path)
    if repo is None:
        raise CliError("the daemon is running on this repo; stop it before using 'pinion state'")
    return repo
