"""Finding the container's memory limit (cgroup v1 and v2) and the ``Datastore.MemoryBudget`` key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from blockstore.memory import DEFAULT_BUDGET, MemoryPlan
from node import config as cfgmod
from node.memlimit import container_memory_limit, memory_plan, parse_mountinfo, parse_proc_cgroup
from node.repo import Repo

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

V2_MOUNTINFO = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTINFO = (
    "25 24 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
    "31 25 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "35 25 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 25 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)


def _fake_root(tmp_path: Path, mountinfo: str, proc_cgroup: str, limits: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    (tmp_path / "proc/self/cgroup").write_text(proc_cgroup)
    for rel, value in limits.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value + "\n")
    return tmp_path


def test_parsers() -> None:
    mounts = parse_mountinfo(V1_MOUNTINFO)
    assert mounts["v1"].mount_point == "/sys/fs/cgroup/memory" and mounts["v2"].mount_point == "/sys/fs/cgroup/unified"
    paths = parse_proc_cgroup("4:memory:/docker/abc\n3:cpu,cpuacct:/x\n0::/user.slice\n")
    assert paths == {"v1": "/docker/abc", "v2": "/user.slice"}
    assert parse_mountinfo("garbage\n\n") == {} and parse_proc_cgroup("nonsense") == {}


def test_v2_limit_is_the_smallest_up_to_the_root(tmp_path: Path) -> None:
    root = _fake_root(
        tmp_path,
        V2_MOUNTINFO,
        "0::/kubepods/pod1/c1\n",
        {
            "sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max",
            "sys/fs/cgroup/kubepods/pod1/memory.max": str(128 * MiB),
            "sys/fs/cgroup/kubepods/memory.max": str(512 * MiB),
        },
    )
    assert container_memory_limit(root) == 128 * MiB
    assert memory_plan(0, root).budget == 16 * MiB
    assert memory_plan(64 * MiB, root).budget == 64 * MiB  # a configured budget wins


def test_v1_limit_and_unlimited_values(tmp_path: Path) -> None:
    root = _fake_root(
        tmp_path,
        V1_MOUNTINFO,
        "4:memory:/process_api/abc/pinion\n0::/\n",
        {
            "sys/fs/cgroup/memory/process_api/abc/pinion/memory.limit_in_bytes": str(256 * MiB),
            "sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": "9223372036854771712",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",
            "sys/fs/cgroup/unified/memory.max": "max",
        },
    )
    assert container_memory_limit(root) == 256 * MiB
    assert memory_plan(0, root).write_buffer_size == 8 * MiB


def test_no_limit_no_cgroup_or_unreadable_gives_the_default(tmp_path: Path) -> None:
    unlimited = _fake_root(tmp_path / "a", V2_MOUNTINFO, "0::/\n", {"sys/fs/cgroup/memory.max": "max"})
    assert container_memory_limit(unlimited) is None
    assert memory_plan(0, unlimited).budget == DEFAULT_BUDGET
    assert container_memory_limit(tmp_path / "nothing") is None
    garbled = _fake_root(tmp_path / "b", V2_MOUNTINFO, "0::/x\n", {"sys/fs/cgroup/x/memory.max": "lots"})
    assert container_memory_limit(garbled) is None
    # a cgroup path outside the mount's root (another cgroup namespace's view) is not guessed at
    other = _fake_root(
        tmp_path / "c",
        "35 25 0:31 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        "0::/elsewhere\n",
        {"sys/fs/cgroup/memory.max": str(64 * MiB)},
    )
    assert container_memory_limit(other) is None


def test_this_machine_does_not_crash() -> None:
    limit = container_memory_limit()
    assert limit is None or limit > 0
    assert isinstance(memory_plan(0), MemoryPlan)


@pytest.mark.parametrize("bad", [-1, 1, 4 * MiB, 8 * 1024 * MiB, "16MiB", True, 1.5])
def test_config_refuses_a_bad_budget(bad: object) -> None:
    cfg = cfgmod.default_config("test")
    cfg["Datastore"]["MemoryBudget"] = bad
    with pytest.raises(cfgmod.ConfigError, match="Datastore.MemoryBudget"):
        cfgmod.validate(cfg)


def _pinion(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "node.cli", "--repo", str(repo), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip


def test_budget_through_config_set_env_and_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    assert _pinion(repo, "init", "--profile", "test").returncode == 0
    res = _pinion(repo, "config", "set", "Datastore.MemoryBudget", "1000")
    assert res.returncode == 1 and "Datastore.MemoryBudget" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert _pinion(repo, "config", "set", "Datastore.MemoryBudget", str(32 * MiB)).returncode == 0
    assert json.loads((repo / "config.json").read_text())["Datastore"]["MemoryBudget"] == 32 * MiB
    with Repo.open(repo) as r:
        assert r.memory.write_buffer_size == 8 * MiB and r.store.write_batch_bytes == 1 * MiB
    monkeypatch.setenv("PINION_DATASTORE_MEMORYBUDGET", str(16 * MiB))
    with Repo.open(repo) as r:
        assert r.memory.budget == 16 * MiB and r.store.write_batch_bytes == 512 * 1024
    monkeypatch.setenv("PINION_DATASTORE_MEMORYBUDGET", "7")
    with pytest.raises(Exception, match="Datastore.MemoryBudget"):
        Repo.open(repo)
