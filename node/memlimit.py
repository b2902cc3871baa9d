"""The memory limit of the container this process runs in, and the memory plan it implies.

A container's memory limit is the memory cgroup's: ``memory.max`` under
cgroup v2, ``memory.limit_in_bytes`` under cgroup v1
(https://docs.kernel.org/admin-guide/cgroup-v2.html#memory-interface-files,
https://docs.kernel.org/admin-guide/cgroup-v1/memory.html). The process's
cgroup is named in ``/proc/self/cgroup`` and the hierarchy is mounted where
``/proc/self/mountinfo`` says (https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html);
a limit set on any ancestor cgroup applies too, so the smallest one up to the
mount point counts. ``Datastore.MemoryBudget`` = 0 sizes the budget from it
(:func:`blockstore.memory.budget_for_limit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from blockstore.memory import MemoryPlan, budget_for_limit

#: a cgroup v1 limit at or above this is "no limit" (the kernel writes 2**63 - page size)
_V1_UNLIMITED = 1 << 62


class Mount(NamedTuple):
    """One cgroup hierarchy mount: the cgroup path at its root, where it is mounted, v1 or v2."""

    root: str
    mount_point: str
    version: int


def parse_mountinfo(text: str) -> dict[str, Mount]:
    """The memory cgroup mounts of a mountinfo text: ``{"v2": Mount, "v1": Mount}`` (those present)."""
    found: dict[str, Mount] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup2" and "v2" not in found:
            found["v2"] = Mount(root, mount_point, 2)
        elif fstype == "cgroup" and "memory" in options and "v1" not in found:
            found["v1"] = Mount(root, mount_point, 1)
    return found


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """The cgroup paths of ``/proc/self/cgroup``: ``{"v2": path, "v1": path}`` (memory controller for v1)."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            paths["v2"] = path
        elif "memory" in controllers.split(","):
            paths["v1"] = path
    return paths


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _read_limit(path: Path, version: int) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    if version == 1 and value >= _V1_UNLIMITED:
        return None
    return value if value > 0 else None


def cgroup_memory_limit(mount: Mount, cgroup_path: str, fs_root: Path = Path("/")) -> int | None:
    """The smallest memory limit from the cgroup at ``cgroup_path`` up to the mount's root, or None."""
    name = "memory.max" if mount.version == 2 else "memory.limit_in_bytes"
    root = mount.root.rstrip("/")
    if root and cgroup_path != root and not cgroup_path.startswith(root + "/"):
        return None  # our cgroup is not under this mount (another namespace's view)
    relative = cgroup_path[len(root) :].strip("/")
    base = fs_root / mount.mount_point.lstrip("/")
    parts = relative.split("/") if relative else []
    limits = []
    for depth in range(len(parts), -1, -1):
        limit = _read_limit(base.joinpath(*parts[:depth], name), mount.version)
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def container_memory_limit(fs_root: Path = Path("/")) -> int | None:
    """This process's memory cgroup limit in bytes (v2 first, then v1), or None when there is none.

    ``fs_root`` is for tests (a directory laid out like ``/``).
    """
    try:
        mounts = parse_mountinfo((fs_root / "proc/self/mountinfo").read_text())
        paths = parse_proc_cgroup((fs_root / "proc/self/cgroup").read_text())
    except OSError:
        return None
    for key in ("v2", "v1"):
        if key in mounts and key in paths:
            limit = cgroup_memory_limit(mounts[key], paths[key], fs_root)
            if limit is not None:
                return limit
    return None


def memory_plan(budget: int, fs_root: Path = Path("/")) -> MemoryPlan:
    """The plan for a ``Datastore.MemoryBudget`` value: 0 derives the budget from the container's limit."""
    if budget == 0:
        budget = budget_for_limit(container_memory_limit(fs_root))
    return MemoryPlan.from_budget(budget)
