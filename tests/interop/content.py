"""Deterministic test content on disk: multi-block files and a directory big enough to become a HAMT shard."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

#: entries in the directory that make_hamt_dir writes: with 200-byte names and 36-byte CIDv1s the
#: estimated directory size is 1,120 x 236 = 264,320 bytes, just over the 262,144-byte sharding threshold
HAMT_ENTRIES = 1120
#: length of each entry's name
HAMT_NAME_LENGTH = 200
#: a multi-block file inside the HAMT directory's subfolder
NESTED_FILE_SIZE = 600 * 1024


def make_file(path: Path, size: int, seed: int = 0) -> str:
    """Write ``size`` pseudo-random bytes (same seed, same bytes) to ``path``; return their sha256 hex."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 1 << 20)
            chunk = rng.randbytes(n)
            digest.update(chunk)
            fh.write(chunk)
            left -= n
    return digest.hexdigest()


def hamt_entry_name(i: int) -> str:
    """The name of entry ``i`` of make_hamt_dir: HAMT_NAME_LENGTH bytes, unique per ``i``."""
    stem = f"interop-hamt-entry-{i:06d}-"
    return stem + "x" * (HAMT_NAME_LENGTH - len(stem) - 4) + ".txt"


def make_hamt_dir(root: Path, entries: int = HAMT_ENTRIES) -> dict[str, bytes]:
    """Write a directory of ``entries`` small files plus ``sub/nested.bin`` (multi-block); return path -> bytes.

    Paths are relative to ``root`` with ``/`` separators. With the default
    entry count both kubo's and Helia's importers shard the top directory.
    """
    files: dict[str, bytes] = {}
    root.mkdir(parents=True, exist_ok=True)
    for i in range(entries):
        name = hamt_entry_name(i)
        data = f"entry {i} of the interop HAMT directory\n".encode()
        (root / name).write_bytes(data)
        files[name] = data
    nested = root / "sub" / "nested.bin"
    make_file(nested, NESTED_FILE_SIZE, seed=entries)
    files["sub/nested.bin"] = nested.read_bytes()
    return files
