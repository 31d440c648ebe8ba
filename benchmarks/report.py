"""Benchmark figures: one small record each, printed as a table and saved as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from adapters.clock import SystemClock
from domain.dates import format_instant

RESULTS = Path(__file__).with_name("results") / "latest.json"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number. `target` says what good looks like, `ok` whether it was met;
    both stay None for figures that only inform."""

    name: str
    value: float
    unit: str
    target: str | None = None
    ok: bool | None = None
    note: str = ""


def machine() -> dict[str, Any]:
    """Enough about the machine to compare two result files fairly."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
    }


def format_value(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISSED")


def print_table(figures: Sequence[Figure], title: str = "", out: TextIO | None = None) -> None:
    out = out if out is not None else sys.stdout
    rows = [
        (f.name, format_value(f.value), f.unit, f.target or "", _verdict(f.ok), f.note)
        for f in figures
    ]
    headers = ("figure", "value", "unit", "target", "", "note")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}", file=out)
    line = "  ".join(
        h.rjust(w) if i == 1 else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line.rstrip(), file=out)
    print("-" * len(line.rstrip()), file=out)
    for row in rows:
        cells = [
            c.rjust(w) if i == 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)


def write_json(figures: Sequence[Figure], path: Path = RESULTS, suites: Sequence[str] = ()) -> Path:
    """Save the figures with the machine they were measured on; the folder is git-ignored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "generated_at": format_instant(SystemClock().now()),
        "suites": list(suites),
        "machine": machine(),
        "figures": [asdict(f) for f in figures],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
