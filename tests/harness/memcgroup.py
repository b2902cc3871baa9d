"""A child memory cgroup with a limit, for running a process as a container would (tests, benchmarks).

Made under this process's own memory cgroup (v2 when its memory controller is
delegated, else v1). :func:`make_memory_cgroup` raises :class:`CgroupUnavailable`
with the reason when the machine does not allow it (no memory controller, not
writable, not root).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from node.memlimit import parse_mountinfo, parse_proc_cgroup


class CgroupUnavailable(RuntimeError):
    """No writable memory cgroup here; the message says why."""


class MemoryCgroup:
    """One cgroup directory with a memory limit; :meth:`prefix` runs a command inside it."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    def prefix(self) -> list[str]:
        """Words to put before a command so that it runs in this cgroup (it moves itself in, then execs)."""
        return ["sh", "-c", f'echo $$ > "{self.path}/cgroup.procs" && exec "$@"', "sh"]

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer killed in this cgroup."""
        name, key = ("memory.events", "oom_kill") if self.version == 2 else ("memory.oom_control", "oom_kill")
        for line in (self.path / name).read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
        return 0

    def peak_bytes(self) -> int | None:
        """Highest charge of the cgroup (anonymous memory and page cache), when the kernel keeps it."""
        f = self.path / ("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes")
        try:
            return int(f.read_text())
        except (OSError, ValueError):
            return None

    def anon_bytes(self) -> int:
        """Anonymous memory charged now (``anon`` in v2's memory.stat, ``rss`` in v1's)."""
        key = "anon" if self.version == 2 else "rss"
        for line in (self.path / "memory.stat").read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
        return 0

    def remove(self, timeout: float = 60.0) -> None:
        """Remove the cgroup once its processes are gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def make_memory_cgroup(limit_bytes: int) -> MemoryCgroup:
    """A new child of this process's memory cgroup limited to ``limit_bytes`` (no swap)."""
    if os.geteuid() != 0:
        raise CgroupUnavailable("creating a memory cgroup needs root")
    try:
        mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
        paths = parse_proc_cgroup(Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read /proc/self: {exc}") from None
    errors = []
    for key, version in (("v2", 2), ("v1", 1)):
        if key not in mounts or key not in paths:
            continue
        mount = mounts[key]
        relative = paths[key][len(mount.root.rstrip("/")) :].strip("/")
        parent = Path(mount.mount_point) / relative
        if version == 2 and "memory" not in (parent / "cgroup.subtree_control").read_text(errors="replace").split():
            errors.append(f"cgroup v2 at {parent}: the memory controller is not delegated to children")
            continue
        path = parent / f"pinion-test-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
        except OSError as exc:
            errors.append(f"cgroup v{version} at {parent} is not writable: {exc.strerror}")
            continue
        try:
            if version == 2:
                (path / "memory.max").write_text(str(limit_bytes))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
            else:
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        except OSError as exc:
            path.rmdir()
            errors.append(f"cannot set a memory limit in {path}: {exc.strerror}")
            continue
        return MemoryCgroup(path, version)
    raise CgroupUnavailable("; ".join(errors) or "no memory cgroup hierarchy is mounted")
