"""Run every benchmark in this folder in turn: ``python -m benchmarks [--quick]``."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    """Run each ``bench_*`` module in its own process; return non-zero if any failed."""
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *sys.argv[1:]])
        if rc:
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
