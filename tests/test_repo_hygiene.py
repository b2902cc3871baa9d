"""The repository stands on its own: no tracked file names a folder outside it.

A user clones Pinion from its public home with nothing beside it, so a test, a
benchmark or a comment that points at a sibling folder of the clone (the build machine's notes and
fixtures) or at an absolute path of a build machine would fail or mislead there.
Fixtures live in ``tests/fixtures/``; comments cite public specs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Built from pieces so that this file does not match itself.
FORBIDDEN = re.compile(
    "|".join(
        [
            re.escape("../" + "shared"),
            r"\bshared/" + "(?:specs|fixtures)",
            r"(?<![\w.])/" + r"work/",
            r"(?<![\w.])/" + r"home/\w",
            r"(?<![\w.])/" + r"Users/\w",
        ]
    )
)
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".hypothesis", ".pytest_cache", "build"}


def _tracked_files() -> list[Path]:
    """Files under version control, or every file of the tree when git is not there."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
        return [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        return [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
        ]


def test_no_tracked_file_names_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary fixture
        for n, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)


def test_fixtures_are_in_the_repository() -> None:
    fixtures = ROOT / "tests" / "fixtures"
    assert (fixtures / "README.md").is_file()
    cars = list(fixtures.rglob("*.car"))
    assert len(cars) >= 30, cars
