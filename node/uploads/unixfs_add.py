"""The worker side of an ``add`` upload (kubo RPC ``/api/v0/add``, cluster REST ``/add``):
multipart files and directories into UnixFS.

Runs in a worker thread and reads the parsed multipart events from an
:class:`~node.uploads.pipe.ItemPipe`. Each file part streams through the
importer as it arrives; directory parts (``application/x-directory``) and
the parent directories of file paths are collected into a tree whose
directory nodes are built when the body ends (children first, names sorted,
as kubo outputs them). Everything is written under one import journal: an
error or an aborted body rolls back every block the request added, and the
roots are pinned only once all of it is stored. The worker returns an
:class:`AddResult` (CIDs as bytes); each server formats its own output lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from blockstore import importer
from blockstore.cid import cid_to_str

from .errors import UploadError
from .multipart import DIRECTORY_TYPE, SYMLINK_TYPE, MultipartError, PartStart, part_path
from .pipe import ItemPipe, PartReader, UploadAborted

#: a progress line is written each time a file grows by this many bytes
PROGRESS_STEP = 1024 * 1024


@dataclass
class AddOptions:
    """The ``add`` options that shape the output and pinning (the rest are ImportParams)."""

    params: Any
    pin: bool = True
    pin_name: str | None = None
    wrap: bool = False
    progress: bool = False
    quieter: bool = False
    only_hash: bool = False
    #: the name of an unnamed file part: its CID as a string (kubo: in the request's ``cid-base``)
    name_of_cid: Callable[[bytes], str] = cid_to_str
    #: keep the roots as uploads until their cluster pin is settled (the REST API's /add)
    keep_roots: bool = False


@dataclass(frozen=True)
class Added:
    """One added file or directory: its path in the upload (``""``: the wrapping directory),
    CID and cumulative DAG size (kubo's ``Size``)."""

    name: str
    cid: bytes
    size: int


@dataclass(frozen=True)
class Progress:
    """A progress report: ``bytes`` of file ``name`` imported so far."""

    name: str
    bytes: int


@dataclass
class AddResult:
    """What an add upload produced, in kubo's output order; the last :class:`Added` is the root."""

    items: list[Added | Progress]
    #: blocks the upload stored that were not in the store before
    new_blocks: int = 0

    def root(self) -> Added | None:
        """The last added item (the root kubo reports last), or None when nothing was added."""
        for item in reversed(self.items):
            if isinstance(item, Added):
                return item
        return None


@dataclass
class _Dir:
    children: dict[str, "_Dir | tuple[bytes, int]"] = field(default_factory=dict)


class _Sink:
    """An importer sink writing under an import journal and counting new blocks."""

    def __init__(self, store: Any, journal: bytes | None) -> None:
        self._store = store
        self._journal = journal
        self.new_blocks = 0
        self.write_batch_bytes: int | None = getattr(store, "write_batch_bytes", None)

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        if self._journal is None:  # only-hash: compute CIDs, store nothing
            return 0
        n = self._store.put_many(blocks, verify=verify, journal=self._journal)
        self.new_blocks += n
        return n


class AddWorker:
    """Consumes one ``add`` request body; :meth:`__call__` returns its :class:`AddResult`."""

    def __init__(self, core: Any, opts: AddOptions, writer_lock: Callable[[], Any]) -> None:
        self._core = core
        self._opts = opts
        self._writer_lock = writer_lock
        self.out: list[Added | Progress] = []

    def __call__(self, pipe: ItemPipe) -> AddResult:
        store = self._core.store
        if self._opts.only_hash:
            return self._consume(pipe, _Sink(store, None))
        with self._writer_lock():
            journal = store.new_journal()
            sink = _Sink(store, journal)
            try:
                roots = self._consume_and_build(pipe, sink)
                if self._opts.pin and roots:
                    self._core.pins.add_many(roots, name=self._opts.pin_name)
            except BaseException:
                store.rollback(journal)
                raise
            store.commit(journal, uploads=roots if self._opts.keep_roots else ())
        return AddResult(self.out, sink.new_blocks)

    def _consume(self, pipe: ItemPipe, sink: _Sink) -> AddResult:
        self._consume_and_build(pipe, sink)
        return AddResult(self.out, 0)

    # ------------------------------------------------------------ parts
    def _consume_and_build(self, pipe: ItemPipe, sink: _Sink) -> list[bytes]:
        root = _Dir()
        seen_any = False
        while True:
            ev = pipe.get()
            if ev is None:
                break
            if not isinstance(ev, PartStart):
                raise UploadAborted("multipart data outside a part")
            seen_any = True
            self._part(ev, PartReader(pipe), root, sink)
        if not seen_any:
            raise UploadError("no file was sent (expected a multipart part named 'file')")
        roots = self._finish(root, sink)
        if self._opts.quieter and self.out:
            self.out = [self.out[-1]]
        return roots

    def _part(self, ev: PartStart, reader: PartReader, root: _Dir, sink: _Sink) -> None:
        try:
            path = part_path(ev.headers)
        except MultipartError as exc:
            reader.drain()
            raise UploadError(str(exc)) from None
        ctype = ev.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
        if ctype == DIRECTORY_TYPE:
            reader.drain()
            if not path:
                raise UploadError("a directory part needs a file name")
            self._dir_at(root, path.split("/"), create=True)
            return
        if ctype == SYMLINK_TYPE:
            target = reader.read(4097)
            reader.drain()
            if len(target) > 4096:
                raise UploadError(f"symlink target of {path!r} is longer than 4096 bytes")
            res = importer.import_symlink(target.decode("utf-8", "surrogateescape"), sink, self._opts.params)
            self._place(root, path, res.cid, res.size)
            self._emit(path, res.cid, res.size)
            return
        progress = self._progress_fn(path) if self._opts.progress else None
        res = importer.import_file(reader, sink, self._opts.params, progress=progress)
        if not reader.ended:
            reader.drain()
        if progress is not None:
            progress(0, final=True)
        name = path or self._opts.name_of_cid(res.cid)
        self._place(root, path or name, res.cid, res.size)
        self._emit(name, res.cid, res.size)

    def _progress_fn(self, name: str) -> Any:
        state = {"total": 0, "reported": 0}

        def advance(n: int, final: bool = False) -> None:
            state["total"] += n
            if final or state["total"] - state["reported"] >= PROGRESS_STEP:
                if final and state["total"] == state["reported"] and state["total"]:
                    return
                state["reported"] = state["total"]
                if not self._opts.quieter:
                    self.out.append(Progress(name, state["total"]))

        return advance

    # ------------------------------------------------------------ tree
    def _dir_at(self, root: _Dir, segments: list[str], create: bool) -> _Dir:
        node = root
        for i, seg in enumerate(segments):
            child = node.children.get(seg)
            if child is None:
                child = _Dir()
                node.children[seg] = child
            elif not isinstance(child, _Dir):
                raise UploadError(f"{'/'.join(segments[: i + 1])!r} is both a file and a directory in this upload")
            node = child
        return node

    def _place(self, root: _Dir, path: str, cid: bytes, size: int) -> None:
        segments = path.split("/")
        parent = self._dir_at(root, segments[:-1], create=True)
        existing = parent.children.get(segments[-1])
        if existing == (cid, size):
            return  # the same content sent twice under one name (e.g. two unnamed parts)
        if existing is not None:
            raise UploadError(f"{path!r} appears twice in this upload")
        parent.children[segments[-1]] = (cid, size)

    def _finish(self, root: _Dir, sink: _Sink) -> list[bytes]:
        """Build the directories bottom-up; return the roots to pin."""
        def build(d: _Dir, path: str) -> tuple[bytes, int]:
            builder = importer.DirectoryBuilder(self._opts.params)
            for name in sorted(d.children, key=lambda s: s.encode("utf-8", "surrogateescape")):
                child = d.children[name]
                if isinstance(child, _Dir):
                    cpath = f"{path}/{name}" if path else name
                    ccid, csize = build(child, cpath)
                    self._emit(cpath, ccid, csize)
                else:
                    ccid, csize = child
                builder.add_entry(name, ccid, csize)
            res = builder.finish(sink)
            return res.cid, res.size

        if self._opts.wrap:
            cid, size = build(root, "")
            self._emit("", cid, size)
            return [cid]
        roots: list[bytes] = []
        for name in sorted(root.children, key=lambda s: s.encode("utf-8", "surrogateescape")):
            child = root.children[name]
            if isinstance(child, _Dir):
                cid, size = build(child, name)
                self._emit(name, cid, size)
                roots.append(cid)
            else:
                roots.append(child[0])
        return roots

    def _emit(self, name: str, cid: bytes, size: int) -> None:
        self.out.append(Added(name, cid, size))
