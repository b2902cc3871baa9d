"""Shared reporting for benchmarks: one rich table on stdout, one JSON file per benchmark."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def report(name: str, rows: list[dict[str, Any]], notes: dict[str, Any] | None = None) -> Path:
    """Print ``rows`` as a table titled ``name`` and write them to ``results/<name>.json``."""
    table = Table(title=f"benchmark: {name}")
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[_fmt(row.get(c, "")) for c in columns])
    console = Console()
    console.print(table)
    if notes:
        for key, value in notes.items():
            console.print(f"  {key}: {value}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": rows,
        "notes": notes or {},
    }
    out.write_text(json.dumps(payload, indent=2))
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)
