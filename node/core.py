"""The node's operations on an open repo, shared by the offline CLI and the daemon.

Every method is synchronous and streams where the data can be large. The
daemon calls them from worker threads; the CLI calls them directly when no
daemon runs. CIDs are bytes; paths are strings (``CID[/a/b]`` or
``/ipfs/CID/a/b``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

from blockstore import car, carimport, exporter, importer
from blockstore.cid import (
    DAG_CBOR,
    DAG_PB,
    RAW,
    SHA2_256,
    BLAKE2B_256,
    CidError,
    HashMismatch,
    cid_for,
    cid_from_str,
)
from blockstore.dagwalk import walk_dag
from blockstore.links import LinksError, iter_links
from blockstore.pins import DIRECT, RECURSIVE, PinError, collect_garbage
from blockstore.store import BlockTooLarge

from .repo import Repo

Progress = Callable[[int], None] | None

_CODECS = {"raw": RAW, "dag-pb": DAG_PB, "dag-cbor": DAG_CBOR}
_MHTYPES = {"sha2-256": SHA2_256, "blake2b-256": BLAKE2B_256}


class CoreError(Exception):
    """An operation that cannot be done; the message is one clear line."""


class NotFound(CoreError):
    """A CID, path or block that is not there."""


class BadRequest(CoreError):
    """Malformed input: a bad CID, path, option or file."""


class _GcLock:
    """Many writers (imports) at once, or one garbage collection."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._writers = 0
        self._gc = False

    @contextmanager
    def writer(self) -> Iterator[None]:
        with self._cond:
            while self._gc:
                self._cond.wait()
            self._writers += 1
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._cond.notify_all()

    @contextmanager
    def collector(self) -> Iterator[None]:
        with self._cond:
            while self._gc or self._writers:
                self._cond.wait()
            self._gc = True
        try:
            yield
        finally:
            with self._cond:
                self._gc = False
                self._cond.notify_all()


def parse_path(path: str) -> tuple[bytes, list[str]]:
    """Split ``/ipfs/CID/a/b`` or ``CID/a/b`` into (root CID, [segments])."""
    text = path.strip()
    if text.startswith("/ipfs/"):
        text = text[len("/ipfs/") :]
    elif text.startswith("/"):
        raise BadRequest(f"unsupported path {path!r} (expected /ipfs/CID/...)")
    head, _, rest = text.partition("/")
    try:
        root = cid_from_str(head)
    except CidError as exc:
        raise BadRequest(str(exc)) from None
    segments = [s for s in rest.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise BadRequest(f"path {path!r} may not contain '.' or '..'")
    return root, segments


class FetchNeeded(Exception):
    """A block (with ``dag``: the DAG under it) is not in the store and must come from the network.

    Raised by the daemon's :class:`Network` from a worker thread instead of waiting there: the
    caller fetches it on its event loop (node/fetching.py), then calls the operation again, so
    no thread ever waits for the network.
    """

    def __init__(self, cid: bytes, *, dag: bool = False, max_depth: int | None = None) -> None:
        super().__init__(cid.hex())
        self.cid = cid
        self.dag = dag
        self.max_depth = max_depth


class Network(Protocol):
    """What CoreAPI needs of the network when the daemon runs online (see node/content.py).

    ``get_block_blocking`` answers a block it can give at once (or None: not to be had);
    ``fetch_dag_blocking`` returns when the DAG is known to be fetched. Either may raise
    :class:`FetchNeeded` instead of waiting: the operation then ends with it, and the caller
    fetches and calls again.
    """

    def get_block_blocking(self, cid: bytes) -> bytes | None: ...

    def fetch_dag_blocking(self, root: bytes, *, max_depth: int | None = None) -> None: ...

    def notify(self, cids: Iterable[bytes]) -> None: ...


class CoreAPI:
    """The node's operations on one open repo (see module docstring).

    With ``network`` (the daemon, online), missing blocks are fetched over
    bitswap and new local blocks are announced to peers that want them.
    """

    def __init__(self, repo: Repo, network: Network | None = None) -> None:
        self.repo = repo
        self.store = repo.store
        self.pins = repo.pins
        self.network = network
        #: the daemon's CRDT replica (node/pinset.py); None: GC opens the repo's own
        self.replica: Any | None = None
        self._gc = _GcLock()

    def import_guard(self) -> Any:
        """A context manager held by any write that GC must not interleave with (imports, uploads)."""
        return self._gc.writer()

    # ------------------------------------------------------------- helpers
    def _get_block(self, cid: bytes) -> bytes | None:
        data = self.store.get(cid)
        if data is None and self.network is not None:
            data = self.network.get_block_blocking(cid)
        return data

    def resolve(self, path: str) -> bytes:
        """The CID a path points to."""
        root, segments = parse_path(path)
        if not segments:
            return root
        try:
            return exporter.resolve_path(self._get_block, root, segments)
        except exporter.BlockNotFound as exc:
            raise NotFound(f"block not found locally: {exc}") from None
        except exporter.ExportError as exc:
            raise NotFound(str(exc)) from None

    # ------------------------------------------------------------- add
    def add_path(
        self,
        path: str,
        params: importer.ImportParams,
        *,
        recursive: bool = False,
        pin: bool = True,
        progress: Progress = None,
    ) -> Iterator[importer.AddedEntry]:
        """Import a file or (with ``recursive``) a directory; yield kubo's ``added`` entries.

        The last entry is the root. It is pinned recursively when ``pin``.
        """
        import os

        if not os.path.lexists(path):
            raise BadRequest(f"{path}: no such file or directory")
        if os.path.isdir(path) and not recursive:
            raise BadRequest(f"{path} is a directory, use -r to add directories")
        with self._gc.writer():
            journal = self.store.new_journal()
            sink = _JournalSink(self.store, journal, self.network)
            last: importer.AddedEntry | None = None
            try:
                for entry in importer.import_path(path, sink, params, progress=progress):
                    last = entry
                    yield entry
                if last is not None and pin:
                    self.pins.add(last.cid, RECURSIVE)
            except BaseException:
                self.store.rollback(journal)
                raise
            self.store.commit(journal)

    def add_stream(
        self,
        stream: IO[bytes],
        name: str,
        params: importer.ImportParams,
        *,
        pin: bool = True,
        progress: Progress = None,
    ) -> importer.AddedEntry:
        """Import one file read from ``stream``; return its entry (pinned when ``pin``)."""
        with self._gc.writer():
            journal = self.store.new_journal()
            sink = _JournalSink(self.store, journal, self.network)
            try:
                res = importer.import_file(stream, sink, params, progress=progress)
                if pin:
                    self.pins.add(res.cid, RECURSIVE)
            except BaseException:
                self.store.rollback(journal)
                raise
            self.store.commit(journal)
        return importer.AddedEntry(name=name or "", cid=res.cid, size=res.size)

    # ------------------------------------------------------------- read
    def cat(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a file's bytes from ``offset`` (``length`` bytes, or to the end)."""
        if offset < 0 or (length is not None and length < 0):
            raise BadRequest("offset and length must not be negative")
        cid = self.resolve(path)
        try:
            yield from exporter.read_file(self._get_block, cid, offset, length)
        except exporter.BlockNotFound as exc:
            raise NotFound(f"block not found locally: {exc}") from None
        except exporter.ExportError as exc:
            raise BadRequest(str(exc)) from None

    def ls(self, path: str) -> list[exporter.DirEntry]:
        """The entries of a directory (plain or HAMT)."""
        cid = self.resolve(path)
        try:
            return list(exporter.list_dir(self._get_block, cid))
        except exporter.BlockNotFound as exc:
            raise NotFound(f"block not found locally: {exc}") from None
        except exporter.ExportError as exc:
            raise BadRequest(str(exc)) from None

    # ------------------------------------------------------------- CAR
    def car_import(self, stream: IO[bytes], *, pin_roots: bool = True, progress: Progress = None) -> carimport.CarImportResult:
        """Import a CAR (v1 or v2), verifying every block; pin its roots when asked.

        A CAR that fails anywhere leaves nothing stored.
        """
        with self._gc.writer():
            try:
                result = carimport.import_car(stream, self.store, progress=progress)
            except car.CarError as exc:
                raise BadRequest(f"malformed CAR: {exc}") from None
            except (HashMismatch, BlockTooLarge, CidError) as exc:
                raise BadRequest(f"rejected CAR: {exc}") from None
            if pin_roots and result.roots:
                self.pins.add_many(result.roots, RECURSIVE)
        if self.network is not None:
            self.network.notify(result.roots)
        return result

    def car_export(self, path: str) -> Iterator[bytes]:
        """Stream a CARv1 of the whole DAG under ``path`` (DFS, no duplicates)."""
        root = self.resolve(path)
        if not self.store.has(root):
            raise NotFound(f"block not found locally: {root.hex()}")
        try:
            yield from car.write_car([root], walk_dag(root, self._get_block))
        except exporter.BlockNotFound as exc:
            raise NotFound(f"DAG incomplete, block not found locally: {exc}") from None

    # ------------------------------------------------------------- blocks
    def block_get(self, cid: bytes) -> bytes:
        """One raw block."""
        data = self.store.get(cid)
        if data is None:
            raise NotFound("block not found locally")
        return data

    def block_put(
        self, data: bytes, *, codec: str = "raw", mhtype: str = "sha2-256", cid_version: int = 1, pin: bool = False
    ) -> tuple[bytes, int]:
        """Store ``data`` as a block; return (cid, size)."""
        if codec not in _CODECS:
            raise BadRequest(f"unsupported codec {codec!r} (raw, dag-pb, dag-cbor)")
        if mhtype not in _MHTYPES:
            raise BadRequest(f"unsupported hash {mhtype!r} (sha2-256, blake2b-256)")
        try:
            cid = cid_for(data, codec=_CODECS[codec], version=cid_version, mh_code=_MHTYPES[mhtype])
            if _CODECS[codec] != RAW:
                iter_links(cid, data)  # refuse blocks that do not decode as their codec
            with self._gc.writer():
                self.store.put(cid, data, verify=False)
                if self.network is not None:
                    self.network.notify([cid])
                if pin:
                    self.pins.add(cid, RECURSIVE)
        except (CidError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        return cid, len(data)

    def block_stat(self, cid: bytes) -> tuple[bytes, int]:
        """(cid, size) of a stored block."""
        size = self.store.size(cid)
        if size is None:
            raise NotFound("block not found locally")
        return cid, size

    def block_rm(self, cid: bytes) -> None:
        """Remove a block (refused while it is pinned directly or as a root)."""
        if self.pins.get(cid) is not None:
            raise BadRequest("block is pinned; unpin it first")
        if not self.store.delete(cid):
            raise NotFound("block not found locally")

    # ------------------------------------------------------------- pins
    def pin_add(self, path: str, *, recursive: bool = True, progress: Callable[[int], None] | None = None) -> bytes:
        """Pin what ``path`` points to; a recursive pin needs the whole DAG present.

        ``progress(blocks)``: told the number of blocks fetched so far while the DAG is fetched."""
        cid = self.resolve(path)
        if self.network is not None:
            try:
                if recursive:
                    report = (lambda blocks, _bytes: progress(blocks)) if progress is not None else None
                    self.network.fetch_dag_blocking(cid, progress=report)
                elif not self.store.has(cid):
                    self.network.get_block_blocking(cid)
            except LookupError as exc:
                raise NotFound(f"cannot pin, DAG could not be fetched: {exc}") from None
        if recursive:
            try:
                for _cid, _data in walk_dag(cid, self._get_block):
                    pass
            except exporter.BlockNotFound as exc:
                raise NotFound(f"cannot pin, DAG incomplete: block {exc} not found locally") from None
        elif not self.store.has(cid):
            raise NotFound("cannot pin, block not found locally")
        self.pins.add(cid, RECURSIVE if recursive else DIRECT)
        return cid

    def pin_rm(self, path: str) -> bytes:
        """Unpin what ``path`` points to."""
        cid = self.resolve(path)
        try:
            self.pins.remove(cid)
        except PinError:
            raise NotFound("not pinned") from None
        return cid

    def pin_ls(self, kind: str = "all") -> Iterator[tuple[bytes, str]]:
        """(cid, type) of every local pin, or of one type."""
        if kind not in ("all", RECURSIVE, DIRECT):
            raise BadRequest(f"invalid pin type {kind!r} (all, recursive, direct)")
        for cid, k in self.pins:
            if kind == "all" or kind == k:
                yield cid, k

    # ------------------------------------------------------------- identity and swarm
    def id(self) -> dict[str, Any]:
        """This node's identity as kubo's ``id`` shows it (offline: no addresses)."""
        from .p2p.compat import AGENT_VERSION
        from .p2p.identity import public_key_b64

        ident = self.repo.config["Identity"]
        return {
            "ID": ident["PeerID"],
            "PublicKey": public_key_b64(ident["PrivKey"]),
            "Addresses": [],
            "AgentVersion": AGENT_VERSION,
            "Protocols": [],
        }

    def swarm_peers(self) -> list[dict[str, str]]:
        """Connected peers: needs a running daemon."""
        raise CoreError("this command must be run in online mode: start 'pinion daemon' first")

    def swarm_connect(self, addr: str) -> str:
        """Connect to a peer: needs a running daemon."""
        raise CoreError("this command must be run in online mode: start 'pinion daemon' first")

    # ------------------------------------------------------------- repo
    def repo_stat(self) -> dict[str, Any]:
        """Blocks, sizes and limits, in kubo's ``repo stat`` terms."""
        st = self.store.stats()
        return {
            "NumObjects": st["blocks"],
            "RepoSize": st["stored_bytes"],
            "DataSize": st["bytes"],
            "StorageMax": self.repo.config["Datastore"]["StorageMax"],
            "RepoPath": str(self.repo.path),
            "Version": "pinion-repo@1",
        }

    def repo_gc(self) -> Iterator[bytes]:
        """Remove every unpinned block; yield each removed block's multihash.

        The store keys blocks by multihash, so the codec of a removed block is
        no longer known; callers show it as a CIDv1 raw or as the multihash.
        Blocks of the cluster pinset (CRDT deltas, snapshots) are kept.
        """
        with self._gc.collector():
            replica = self.replica
            if replica is None:
                from .pinset import open_replica

                replica = open_replica(self.repo)
            # the CRDT's deltas and snapshot blocks are roots: GC never removes the pinset
            yield from collect_garbage(self.store, self.pins, _links_or_none, extra_roots=replica.block_cids())


def _links_or_none(cid: bytes, data: bytes) -> list[bytes]:
    """Links of a block for GC; a block of a codec we cannot read links to nothing."""
    try:
        return iter_links(cid, data)
    except LinksError:
        return []


class _JournalSink:
    """An importer sink that records new blocks in an import journal (and tells the network)."""

    def __init__(self, store: Any, journal: bytes, network: Network | None = None) -> None:
        self._store = store
        self._journal = journal
        self._network = network

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        new = self._store.put_many(blocks, verify=verify, journal=self._journal)
        if self._network is not None:
            self._network.notify(cid for cid, _ in blocks)
        return new


