"""The Pinion repo on disk: config file, identities and the LevelDB database.

Location: ``$PINION_PATH``, default ``~/.pinion`` (like kubo's ``$IPFS_PATH``).
Layout::

    config.json      configuration and identities (mode 0600)
    datastore/       the one LevelDB database (blocks, pins, crdt, tracker, ...)
    api              RPC multiaddr, written by a running daemon
    endpoints.json   every listening address, written by a running daemon
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import plyvel

from blockstore.db import RepoLockedError, disk_full_message, open_db
from blockstore.memory import MemoryPlan
from blockstore.visited import clear_scratch
from blockstore.pins import Pins
from blockstore.store import BlockStore

from . import config as cfgmod
from .memlimit import memory_plan
from .errors import NodeError

DATASTORE_DIR = "datastore"
API_FILE = "api"
ENDPOINTS_FILE = "endpoints.json"


class RepoError(NodeError, RuntimeError):
    """The repo is missing, locked or unusable; the message is one clear line."""


def repo_path() -> Path:
    """``$PINION_PATH`` or ``~/.pinion``."""
    env = os.environ.get("PINION_PATH")
    return Path(env).expanduser() if env else Path.home() / ".pinion"


def is_initialized(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` holds a Pinion config."""
    return (Path(path) / cfgmod.CONFIG_FILE).is_file()


class Repo:
    """An open repo: config, database, block store and local pins."""

    def __init__(self, path: Path, config: dict[str, Any], db: plyvel.DB, memory: MemoryPlan | None = None) -> None:
        self.path = path
        self.config = config
        self.db = db
        ds = config["Datastore"]
        #: how Datastore.MemoryBudget is split (LevelDB buffers, import batches, upload buffer)
        self.memory = memory or memory_plan(ds["MemoryBudget"])
        self.store = BlockStore(
            db,
            max_block_size=ds["MaxBlockSize"],
            compress=ds["Compression"] == "zstd",
            write_batch_bytes=self.memory.write_batch_bytes,
        )
        self.pins = Pins(db)
        clear_scratch(db)  # visited sets of walks interrupted by a crash (blockstore/visited.py)

    @staticmethod
    def init(
        path: str | os.PathLike[str], profile: str | None = None, secret: str | None = None, api_credentials: bool = False
    ) -> dict[str, Any]:
        """Create a repo at ``path``: config with fresh identities and the database.

        ``secret`` is the cluster's 64-hex-character shared secret; a random one
        is made when absent. ``api_credentials``: a random password for the APIs
        (:func:`node.config.generate_credentials`), kept in the config (mode 0600).
        Raises RepoError if a repo already exists there.
        """
        from .p2p.identity import generate_identity

        p = Path(path).expanduser()
        if is_initialized(p):
            raise RepoError(f"repo already exists at {p}")
        try:
            cfg = cfgmod.default_config(profile)
        except cfgmod.ConfigError as exc:
            raise RepoError(str(exc)) from None
        cfg["Identity"]["PeerID"], cfg["Identity"]["PrivKey"] = generate_identity()
        cfg["Cluster"]["PeerID"], cfg["Cluster"]["PrivKey"] = generate_identity()
        cfg["Cluster"]["Secret"] = secret if secret is not None else secrets.token_hex(32)
        if api_credentials:
            cfgmod.generate_credentials(cfg)
        try:
            cfgmod.validate(cfg)
        except cfgmod.ConfigError as exc:
            raise RepoError(str(exc)) from None
        p.mkdir(parents=True, exist_ok=True)
        db = _open_db(p)
        db.close()
        cfgmod.save(p, cfg)
        return cfg

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> "Repo":
        """Open the repo (default location if ``path`` is None)."""
        p = Path(path).expanduser() if path is not None else repo_path()
        if not is_initialized(p):
            raise RepoError(f"no Pinion repo at {p} (run 'pinion init')")
        try:
            cfg = cfgmod.load(p)
        except cfgmod.ConfigError as exc:
            raise RepoError(str(exc)) from None
        memory = memory_plan(cfg["Datastore"]["MemoryBudget"])
        return cls(p, cfg, _open_db(p, memory), memory)

    def save_config(self) -> None:
        """Write the in-memory config back to disk."""
        cfgmod.save(self.path, self.config)

    def close(self) -> None:
        """Close the database (idempotent)."""
        if not self.db.closed:
            self.db.close()

    def __enter__(self) -> "Repo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def locked_by_other_process(path: str | os.PathLike[str]) -> bool:
    """Whether another process holds the LevelDB lock of the repo at ``path`` (a daemon runs on it).

    LevelDB locks ``datastore/LOCK`` with a POSIX record lock (fcntl) for as long as the
    database is open, and the kernel drops it when the process dies, even by SIGKILL
    (kubo's ``fsrepo.LockedByOtherProcess`` asks the same of its repo lock). Call it only
    while this process has no database of that repo open: closing our probe releases
    this process's own locks on the file too.
    """
    import fcntl

    lock = Path(path).expanduser() / DATASTORE_DIR / "LOCK"
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EACCES or EAGAIN: another process holds it
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _open_db(p: Path, memory: MemoryPlan | None = None) -> plyvel.DB:
    try:
        return open_db(p / DATASTORE_DIR, memory=memory)
    except RepoLockedError as exc:
        raise RepoError(str(exc)) from None
    except (plyvel.Error, RuntimeError) as exc:
        full = disk_full_message(exc)
        raise RepoError(f"cannot open the datastore of {p}: {full or exc}") from None
