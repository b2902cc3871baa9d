"""The node's operations on an open repo, shared by the offline CLI and the daemon.

Every method is synchronous and streams where the data can be large. The
daemon calls them from worker threads; the CLI calls them directly when no
daemon runs. CIDs are bytes; paths are strings (``CID[/a/b]`` or
``/ipfs/CID/a/b``).

Why one module of over 500 lines: :class:`CoreAPI` is the one facade both the offline CLI and
the daemon's APIs call, a thin method per command over the block store, pins and walks that live
in ``blockstore/``; splitting it would scatter the commands a reader looks up by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
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
    cid_to_str,
    codec_of,
    make_cid,
)
from blockstore.dagwalk import BlockNotFound, inline_data, walk_dag
from blockstore.gc import record_pin
from blockstore.kv import KVStore
from blockstore.links import LinksError, iter_links
from blockstore.pins import DIRECT, RECURSIVE, LocalPinError, check_pin_name, collect_garbage
from blockstore.store import BlockTooLarge
from blockstore.uploads import Uploads
from blockstore.visited import VisitedSet

from .errors import BadRequest, Busy, CoreError, NodeError, NotFound
from .repo import Repo

Progress = Callable[[int], None] | None

#: pin types ``pin ls`` lists
PIN_TYPES = ("all", RECURSIVE, DIRECT, "indirect")

_CODECS = {"raw": RAW, "dag-pb": DAG_PB, "dag-cbor": DAG_CBOR}
_MHTYPES = {"sha2-256": SHA2_256, "blake2b-256": BLAKE2B_256}


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


class FetchNeeded(NodeError):
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


@dataclass
class CarImportReport:
    """What :meth:`CoreAPI.import_cars` stored: the CARs' roots (each once, in order), blocks
    and bytes read, and why each root left unpinned could not be pinned."""

    roots: list[bytes]
    blocks: int
    bytes: int
    pin_errors: dict[bytes, str] = field(default_factory=dict)


class CoreAPI:
    """The node's operations on one open repo (see module docstring).

    With ``network`` (the daemon, online), missing blocks are fetched over
    bitswap and new local blocks are announced to peers that want them.
    """

    def __init__(
        self, repo: Repo, network: Network | None = None, *, admit_pin: Callable[[], None] | None = None
    ) -> None:
        self.repo = repo
        self.store = repo.store
        self.pins = repo.pins
        self.network = network
        #: the daemon's CRDT replica (node/cluster/pinset.py); None: GC opens the repo's own
        self.replica: Any | None = None
        #: the daemon's admission check for a new pin (the cluster peer's pin queue): raises
        #: cluster.tracker.QueueFull when the peer's pin queue is full
        self._admit_pin = admit_pin

    def import_guard(self) -> Any:
        """Held by an import while it writes blocks and the pin or journal that keeps them: a
        garbage collection that begins meanwhile waits for it (see ``blockstore/gc.py``)."""
        return self.store.writer()

    def announce(self, cids: Iterable[bytes]) -> None:
        """New blocks were stored here: tell the network, so peers that want them are served at
        once (bitswap); nothing when offline. Every write path of the node calls it: UnixFS adds
        (through :meth:`import_sink`), CAR imports (each batch), ``block put`` and ``dag put``."""
        if self.network is not None:
            self.network.notify(cids)

    def import_sink(self, journal: bytes) -> JournalSink:
        """The importer sink of a UnixFS add written under ``journal``: each batch it writes is
        announced (:meth:`announce`)."""
        return JournalSink(self.store, journal, self.announce)

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
            raise NotFound(self.missing_block_message(exc.cid)) from None
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
        with self.store.writer():
            journal = self.store.new_journal()
            sink = self.import_sink(journal)
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
        with self.store.writer():
            journal = self.store.new_journal()
            sink = self.import_sink(journal)
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
            raise NotFound(self.missing_block_message(exc.cid)) from None
        except exporter.ExportError as exc:
            raise BadRequest(str(exc)) from None

    def ls(self, path: str) -> list[exporter.DirEntry]:
        """The entries of a directory (plain or HAMT)."""
        cid = self.resolve(path)
        try:
            return list(exporter.list_dir(self._get_block, cid))
        except exporter.BlockNotFound as exc:
            raise NotFound(self.missing_block_message(exc.cid)) from None
        except exporter.ExportError as exc:
            raise BadRequest(str(exc)) from None

    # ------------------------------------------------------------- CAR
    def car_import(self, stream: IO[bytes], *, pin_roots: bool = True, progress: Progress = None) -> carimport.CarImportResult:
        """Import a CAR (v1 or v2) read from ``stream``, verifying every block; pin its roots when asked.

        A CAR that fails anywhere leaves nothing stored (see :meth:`import_cars`).
        """
        chunks = iter(lambda: stream.read(carimport.READ_SIZE), b"")
        report = self.import_cars([chunks], pin_roots=pin_roots, progress=progress)
        if report.pin_errors:  # the blocks stay imported, as kubo's; the root is reported like kubo's CLI does
            root, error = next(iter(report.pin_errors.items()))
            raise CoreError(f"pinning root {cid_to_str(root)!r} FAILED: {error}")
        return carimport.CarImportResult(report.roots, report.blocks, report.bytes)

    def import_cars(
        self,
        cars: Iterable[Iterable[bytes]],
        *,
        pin_roots: bool = True,
        keep_roots: bool = False,
        progress: Progress = None,
    ) -> CarImportReport:
        """Import CARs (v1 or v2), each given as its byte chunks: the one CAR import of the node
        (CLI ``car import``, RPC ``dag/import``, REST ``/add?format=car``).

        Under the GC guard, each CAR is verified and written under its own import journal: a
        CAR that fails anywhere leaves nothing of it stored (BadRequest ``malformed CAR: ...``
        or ``rejected CAR: ...``); the CARs before it stay. Each written batch of blocks is
        announced to the network at once (peers waiting for them are served). With
        ``pin_roots``, after the last CAR, every root whose DAG is complete is pinned, as
        kubo's ``dag import``; the others are in ``pin_errors``. ``keep_roots``: each CAR's roots
        become upload markers in its commit (kept from GC until their cluster pin is settled,
        :mod:`blockstore.uploads`). Bytes after a CAR's data (a CARv2 index) are not read.
        """
        roots: list[bytes] = []
        blocks = nbytes = 0
        with self.store.writer():
            for chunks in cars:
                imp = carimport.CarImporter(self.store, progress=progress, on_stored=self.announce)
                try:
                    for chunk in chunks:
                        imp.feed(chunk)
                        if imp.done:
                            break
                    result = imp.finish(keep_roots=keep_roots)
                except car.CarError as exc:
                    raise BadRequest(f"malformed CAR: {exc}") from None
                except (HashMismatch, BlockTooLarge, CidError) as exc:
                    raise BadRequest(f"rejected CAR: {exc}") from None
                finally:
                    imp.abort()  # a no-op after finish(); rolls back otherwise
                roots.extend(r for r in result.roots if r not in roots)
                blocks += result.blocks
                nbytes += result.bytes
            failed = self.pin_complete_roots(roots) if pin_roots else []
        return CarImportReport(roots, blocks, nbytes, dict(failed))

    def pin_complete_roots(self, roots: list[bytes]) -> list[tuple[bytes, str]]:
        """Pin each root whose whole DAG is stored, as kubo's ``dag import`` does; return
        ``(root, error)`` for the others (left unpinned, their blocks kept)."""
        complete, failed = [], []
        for root in roots:
            missing = self.first_missing_block(root)
            if missing is None:
                complete.append(root)
            else:
                failed.append((root, missing))
        if complete:
            self.pins.add_many(complete, RECURSIVE)
        return failed

    def first_missing_block(self, root: bytes) -> str | None:
        """Why the DAG under ``root`` is not complete in the store (kubo's words), or None.

        Raw blocks have no links: only their presence is checked (nothing is
        decoded), and they are most of a file's DAG. Blocks are read through
        the garbage collection's read barrier (``BlockStore.keep``/``get_kept``):
        a root pinned after this check keeps what the check found, even when a
        collection runs meanwhile (callers hold :meth:`import_guard`)."""
        stack = [root]
        with VisitedSet(self.store.db) as seen:
            while stack:
                cid = stack.pop()
                if not seen.visit(cid):
                    continue
                if codec_of(cid) == RAW:
                    if not self.store.keep(cid):
                        return self.missing_block_message(cid)
                    continue
                data = inline_data(cid)
                if data is None:
                    data = self.store.get_kept(cid)
                if data is None:
                    return self.missing_block_message(cid)
                try:
                    stack.extend(iter_links(cid, data))
                except LinksError:
                    continue  # a codec whose links we cannot read: kept as a leaf, as GC treats it
        return None

    def car_export(self, path: str, *, local_only: bool = False) -> Iterator[bytes]:
        """Stream a CARv1 of the whole DAG under ``path`` (DFS, no duplicates).

        ``local_only`` (kubo's ``dag export --local-only``): a best-effort CAR of
        the blocks stored here; missing blocks and what is below them are skipped
        and nothing is fetched."""
        root = self.resolve(path)
        if not self.store.has(root):
            raise NotFound(self.missing_block_message(root))
        get = self.store.get if local_only else self._get_block
        try:
            with VisitedSet(self.store.db) as seen:
                yield from car.write_car([root], walk_dag(root, get, skip_missing=local_only, seen=seen))
        except exporter.BlockNotFound as exc:
            raise NotFound(self.missing_block_message(exc.cid)) from None

    # ------------------------------------------------------------- DAG commands (kubo's dag/refs/get)
    def missing_block_message(self, cid: bytes) -> str:
        """kubo's words for a block that is not there (offline: not fetched either)."""
        text = f"ipld: could not find {cid_to_str(cid)}"
        return f"block was not found locally (offline): {text}" if self.network is None else text

    def refs(
        self, roots: list[bytes], *, max_depth: int = -1, unique: bool = False, local: bool = False
    ) -> Iterator[tuple[tuple[bytes, bytes, str] | None, str | None]]:
        """``(edge, None)`` for each edge under ``roots`` in kubo's ``refs`` order, or ``(None, error)``
        when a root's walk fails (the walk goes on with the next root, as kubo's). ``unique`` keeps
        its seen set in a :class:`~blockstore.visited.VisitedSet` (bounded memory). ``local``:
        the store only, a block not stored is missing (nothing asked of the network)."""
        from blockstore.refs import RefWalker

        get = self.store.get if local else self._get_block
        walker = RefWalker(get, max_depth=max_depth, unique=unique, seen=VisitedSet(self.store.db) if unique else None)
        try:
            for root in roots:
                try:
                    for edge in walker.walk(root):
                        yield edge, None
                except BlockNotFound as exc:
                    yield None, self.missing_block_message(exc.cid)
                except LinksError as exc:
                    yield None, str(exc)
        finally:
            walker.close()

    def refs_local(self) -> Iterator[bytes]:
        """Every stored block as a CIDv1 raw (the store keys blocks by multihash, as kubo's)."""
        for mh in self.store.iter_multihashes():
            yield make_cid(1, RAW, mh)

    def dag_put(
        self, data: bytes, *, input_codec: str = "dag-json", store_codec: str = "dag-cbor", hash_fn: str = "sha2-256",
        pin: bool = False, allow_big_block: bool = False,
    ) -> bytes:
        """Decode ``data`` as ``input_codec``, store it encoded as ``store_codec``; return its CIDv1."""
        from blockstore import dagcodecs

        try:
            block, codec = dagcodecs.transcode(data, input_codec, store_codec)
        except dagcodecs.CodecError as exc:
            raise BadRequest(str(exc)) from None
        if hash_fn not in _MHTYPES:
            raise BadRequest(f"unsupported hash function {hash_fn!r} (sha2-256, blake2b-256)")
        if len(block) > 2 * 1024 * 1024 and not allow_big_block:
            raise BadRequest(
                "produced block is over 2MiB: big blocks can't be exchanged with other peers. consider using "
                "UnixFS for automatic chunking of bigger files, or pass --allow-big-block to override"
            )
        cid = cid_for(block, codec=codec, version=1, mh_code=_MHTYPES[hash_fn])
        with self.store.writer():
            try:
                self.store.put(cid, block, verify=False)
            except BlockTooLarge as exc:
                raise BadRequest(str(exc)) from None
            if pin:
                self.pins.add(cid, RECURSIVE, name="")
        self.announce([cid])
        return cid

    def dag_resolve(self, path: str) -> tuple[bytes, list[str]]:
        """(CID of the last block ``path`` reaches, segments left inside it), as ``dag resolve``."""
        from blockstore.dagpath import NoLink, resolve_to_last

        root, segments = parse_path(path)
        try:
            return resolve_to_last(self._get_block, root, segments)
        except NoLink as exc:
            raise NotFound(str(exc)) from None
        except BlockNotFound as exc:
            raise NotFound(self.missing_block_message(exc.cid)) from None
        except exporter.ExportError as exc:
            raise BadRequest(str(exc)) from None

    def dag_blocks(self, root: bytes, seen: Any, *, local: bool = False) -> Iterator[tuple[bytes, int]]:
        """(cid, size) of each block of the DAG under ``root`` once, depth first (``dag stat``);
        ``local``: the store only, as :meth:`refs`."""
        get = self.store.get if local else self._get_block
        try:
            for cid, data in walk_dag(root, get, seen=seen):
                yield cid, len(data)
        except BlockNotFound as exc:
            raise NotFound(f"error traversing DAG: {self.missing_block_message(exc.cid)}") from None
        except LinksError as exc:
            raise BadRequest(f"error traversing DAG: {exc}") from None

    def get_tar(self, path: str, *, archive: bool = False, level: int = 0) -> tuple[int, Iterator[bytes]]:
        """(size, byte stream) of ``ipfs get``: a tar of the node at ``path`` named after its last
        segment (``level`` 1-9: gzip-compressed; a file without ``archive``: its bytes, gzipped)."""
        import posixpath

        from blockstore import tarexport

        text = path.strip()
        if not text.startswith("/"):
            text = "/ipfs/" + text
        name = posixpath.basename(posixpath.normpath(text))
        cid = self.resolve(path)
        try:
            size = tarexport.node_size(self._get_block, cid)
            st = exporter.stat(self._get_block, cid)
        except exporter.BlockNotFound as exc:
            raise NotFound(self.missing_block_message(exc.cid)) from None
        except exporter.ExportError as exc:
            raise BadRequest(str(exc)) from None
        if st.type not in ("file", "directory", "symlink"):
            raise BadRequest(f"{path}: a {st.type} node is not UnixFS (get works on files and directories)")
        if level and not archive:
            if st.type != "file":
                raise BadRequest("file is not regular")
            raw = exporter.read_file(self._get_block, cid)
            return size, self._export_errors(tarexport.gzip_stream(raw, level))
        stream = tarexport.tar_stream(self._get_block, cid, name, pax=not archive)
        if level:
            stream = tarexport.gzip_stream(stream, level)
        return size, self._export_errors(stream)

    def _export_errors(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks`` with block-store errors turned into CoreErrors."""
        from blockstore.tarexport import TarExportError

        try:
            yield from chunks
        except exporter.BlockNotFound as exc:
            raise NotFound(self.missing_block_message(exc.cid)) from None
        except (exporter.ExportError, TarExportError) as exc:
            raise BadRequest(str(exc)) from None

    # ------------------------------------------------------------- blocks
    def block_get(self, cid: bytes) -> bytes:
        """One raw block."""
        data = self.store.get(cid)
        if data is None:
            raise NotFound(self.missing_block_message(cid))
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
            with self.store.writer():
                self.store.put(cid, data, verify=False)
                self.announce([cid])
                if pin:
                    self.pins.add(cid, RECURSIVE)
        except (CidError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        return cid, len(data)

    def block_stat(self, cid: bytes) -> tuple[bytes, int]:
        """(cid, size) of a stored block."""
        size = self.store.size(cid)
        if size is None:
            raise NotFound(self.missing_block_message(cid))
        return cid, size

    def block_rm(self, cid: bytes, *, force: bool = False) -> None:
        """Remove a block, as kubo's ``block rm``: refused while pinned in any way
        (``pinned: recursive``, ``pinned: direct``, ``pinned via <root>``);
        a missing block is an error unless ``force``."""
        with self.store.writer():
            kind = self.pins.get(cid)
            if kind is not None:
                raise CoreError(f"pinned: {kind}")
            # a block that is not stored cannot be inside a (complete) pinned DAG: skip the walk
            if self.store.has(cid):
                via = self.find_indirect([cid]).get(cid)
                if via is not None:
                    raise CoreError(f"pinned via {cid_to_str(via)}")
            if not self.store.delete(cid) and not force:
                raise NotFound(f"ipld: could not find {cid_to_str(cid)}")

    # ------------------------------------------------------------- pins
    def pin_add(
        self, path: str, *, recursive: bool = True, progress: Callable[[int], None] | None = None, name: str = ""
    ) -> bytes:
        """Pin what ``path`` points to, with kubo's rules; a recursive pin needs the whole DAG present.

        ``name`` is the pin's name (``""`` clears it: re-pinning renames, as
        kubo's ``pin add --name``). A direct pin of a CID pinned recursively
        is refused; a recursive pin replaces a direct one.
        ``progress(blocks)``: told the number of blocks fetched so far while the DAG is fetched.
        The pin is recorded with :func:`blockstore.gc.record_pin`, so a garbage collection
        running meanwhile cannot remove a block of it (one it removed is fetched again)."""
        cid = self.resolve(path)
        before = self.check_pin_add(cid, recursive=recursive, name=name)
        depth = None if recursive else 0
        kind = RECURSIVE if recursive else DIRECT
        for attempt in range(3):
            since = None  # the GC epoch before a fetch that walked the whole DAG
            if self.network is not None:
                try:
                    if recursive:
                        report = (lambda blocks, _bytes: progress(blocks)) if progress is not None else None
                        epoch = self.store.gc_epoch
                        self.network.fetch_dag_blocking(cid, progress=report)
                        since = epoch
                    elif not self.store.has(cid):
                        self.network.get_block_blocking(cid)
                except LookupError as exc:
                    raise NotFound(f"cannot pin, DAG could not be fetched: {exc}") from None
            try:
                record_pin(self.store, cid, lambda: self.pins.add(cid, kind, name=name), max_depth=depth, checked_since=since)
                return cid
            except BlockNotFound as exc:
                if self.pins.get(cid) is not None and before is None:
                    self.pins.remove(cid)  # a collection removed a block after the check: not pinned
                if self.network is None or attempt == 2:
                    if recursive:
                        raise NotFound(f"cannot pin, DAG incomplete: block {exc} not found locally") from None
                    raise NotFound("cannot pin, block not found locally") from None
        raise AssertionError("unreachable")

    def check_pin_add(self, cid: bytes, *, recursive: bool, name: str) -> str | None:
        """Refuse a pin before anything is fetched for it: a bad name (BadRequest), a direct pin of
        a CID pinned recursively (CoreError, as kubo), a new pin the full pin queue cannot take (Busy).
        Returns the CID's pin type now (None: not pinned)."""
        try:
            check_pin_name(name)
        except LocalPinError as exc:
            raise BadRequest(str(exc)) from None
        before = self.pins.get(cid)
        if not recursive and before == RECURSIVE:
            raise CoreError(f"pin: {cid_to_str(cid)} already pinned recursively")
        if before is None:
            self.admit_new_pin()
        return before

    def admit_new_pin(self) -> None:
        """Raise Busy when the daemon's pin queue cannot take a new pin (``PinTracker.MaxPinQueueSize``)."""
        if self._admit_pin is None:
            return
        try:
            self._admit_pin()
        except ValueError as exc:  # cluster.tracker.QueueFull
            raise Busy(str(exc)) from None

    def pin_rm(self, path: str, *, recursive: bool = True) -> bytes:
        """Unpin what ``path`` points to (kubo: a recursive pin needs ``recursive``)."""
        cid = self.resolve(path)
        kind = self.pins.get(cid)
        if kind is None:
            raise NotFound("not pinned or pinned indirectly")
        if kind == RECURSIVE and not recursive:
            raise CoreError(f"{cid_to_str(cid)} is pinned recursively")
        try:
            self.pins.remove(cid)
        except LocalPinError:
            raise NotFound("not pinned or pinned indirectly") from None
        return cid

    def pin_ls(self, kind: str = "all") -> Iterator[tuple[bytes, str]]:
        """(cid, type) of every local pin, or of one type (``indirect``: blocks under recursive pins)."""
        for cid, k, _name in self.pin_list(kind):
            yield cid, k

    def pin_list(self, kind: str = "all", name: str = "") -> Iterator[tuple[bytes, str, str]]:
        """(cid, type, name) of the pins of ``kind``, as kubo lists them: recursive pins, then direct
        ones, then (for ``all`` and ``indirect``) every block under a recursive pin that is not
        itself pinned. ``name``: only pins whose name contains it (indirect pins have none)."""
        if kind not in PIN_TYPES:
            raise BadRequest(f"invalid type '{kind}', must be one of {{direct, indirect, recursive, all}}")
        for wanted in (RECURSIVE, DIRECT):
            if kind in ("all", wanted):
                for cid, rec in self.pins.records():
                    if rec.kind == wanted and (not name or name in rec.name):
                        yield cid, wanted, rec.name
        if kind in ("all", "indirect") and not name:
            from blockstore.indirect import iter_indirect

            for cid in iter_indirect(self.pins, self.store.get, self.store.db):
                yield cid, "indirect", ""

    def find_indirect(self, cids: Iterable[bytes]) -> dict[bytes, bytes]:
        """``{cid: recursive root}`` for those of ``cids`` inside a recursively pinned DAG."""
        from blockstore.indirect import find_indirect

        return find_indirect(self.pins, self.store.get, cids, self.store.db)

    def pin_check(self, cids: list[bytes], kind: str = "all") -> list[tuple[str, str] | None]:
        """(type, name) of how each CID is pinned, or None; an indirect pin's type is
        ``indirect through <root>`` (kubo's ``pin ls <cid>``)."""
        if kind not in PIN_TYPES:
            raise BadRequest(f"invalid type '{kind}', must be one of {{direct, indirect, recursive, all}}")
        out: list[tuple[str, str] | None] = []
        todo = []
        for cid in cids:
            rec = self.pins.record(cid)
            if rec is not None and kind in ("all", rec.kind):
                out.append((rec.kind, rec.name))
                continue
            out.append(None)
            if kind == "all" and rec is None or kind == "indirect" and (rec is None or rec.kind == DIRECT):
                if self.store.has(cid):  # a block not stored is in no (complete) pinned DAG
                    todo.append(cid)
        if todo:
            via = self.find_indirect(todo)
            for i, cid in enumerate(cids):
                if out[i] is None and cid in via:
                    out[i] = (f"indirect through {cid_to_str(via[cid])}", "")
        return out

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
        """Remove every block nothing keeps; yield each removed block's multihash.

        Kept: local pins, uploads whose cluster pin is not settled yet, every pin the
        cluster pinset allocates to this peer and the pin tracker's pins (queued,
        pinning, failed or pinned: what is present of their DAGs), imports in flight
        and the pinset's own blocks (CRDT deltas, snapshots). Offline, the pinset and
        the tracker are read from the repo's LevelDB. Imports and fetches go on
        meanwhile (``blockstore/gc.py``). The store keys blocks by multihash, so the
        codec of a removed block is no longer known; callers show it as a CIDv1 raw
        or as the multihash.
        """
        replica = self.replica
        if replica is None:
            from .cluster.pinset import open_replica

            replica = open_replica(self.repo)
        peer = str(self.repo.config["Cluster"]["PeerID"])
        uploads = Uploads(self.repo.db)
        sources = [
            lambda: ((cid, True) for cid, _ts in uploads),
            lambda: _allocated_pins(replica, peer),
            lambda: _tracker_pins(self.repo.db),
        ]
        # the CRDT's deltas and snapshot blocks are roots: GC never removes the pinset
        yield from collect_garbage(self.store, self.pins, _links_or_none, sources=sources, extra_roots=replica.block_cids)


def _allocated_pins(replica: Any, peer: str) -> Iterator[tuple[bytes, bool]]:
    """(CID, recursive) of every pin of the cluster pinset allocated to ``peer`` (or to every peer)."""
    from cluster.pin import Pin, PinError

    for cid, value in replica.set.items():
        try:
            pin = Pin.from_cbor(value)
        except PinError:
            continue
        if not pin.allocations or peer in pin.allocations:
            yield cid, pin.max_depth != 0


def _tracker_pins(db: KVStore) -> Iterator[tuple[bytes, bool]]:
    """(CID, recursive) of every pin the pin tracker holds (cluster/tracker.py), whatever its status."""
    from cluster.tracker import pin_roots

    yield from pin_roots(db)


def _links_or_none(cid: bytes, data: bytes) -> list[bytes]:
    """Links of a block for GC; a block of a codec we cannot read links to nothing."""
    try:
        return iter_links(cid, data)
    except LinksError:
        return []


class JournalSink:
    """An importer sink (:class:`blockstore.importer.BlockSink`) writing under an import journal.

    Counts the blocks that were not stored before (``new_blocks``) and hands the CIDs of each
    written batch to ``on_stored`` (:meth:`CoreAPI.announce`: peers waiting for them are served).
    Made by :meth:`CoreAPI.import_sink`.
    """

    def __init__(self, store: Any, journal: bytes, on_stored: Callable[[list[bytes]], None] | None = None) -> None:
        self._store = store
        self._journal = journal
        self._on_stored = on_stored
        #: blocks written that were not in the store before
        self.new_blocks = 0
        #: the importer's write batch size (the store's, from Datastore.MemoryBudget)
        self.write_batch_bytes: int | None = getattr(store, "write_batch_bytes", None)

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        """Write one batch under the journal; return how many of its blocks are new."""
        new = self._store.put_many(blocks, verify=verify, journal=self._journal)
        self.new_blocks += new
        if self._on_stored is not None:
            self._on_stored([cid for cid, _ in blocks])
        return new
