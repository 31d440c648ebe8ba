"""`python -m benchmarks [--only core]`: run the suites, print their figures, save them."""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.report import RESULTS, Figure, print_table, write_json

# Each suite is a module with `run() -> list[Figure]`; adding one is one line here.
SUITES: dict[str, str] = {
    "core": "benchmarks.core",
    "server": "benchmarks.server",
    "market": "benchmarks.market",
    "engine": "benchmarks.engine",
    "imports": "benchmarks.imports",
    "remote": "benchmarks.remote",
    "latency": "benchmarks.latency",
    "client": "benchmarks.client",
    "storage": "benchmarks.storage",
    "results": "benchmarks.results",
    "operating": "benchmarks.operating",
    "dashboard": "benchmarks.dashboard",
    "sweep": "benchmarks.sweep",
}


def load(name: str) -> Callable[[], list[Figure]]:
    module = importlib.import_module(SUITES[name])
    run: Callable[[], list[Figure]] = module.run
    return run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SUITE",
        help=f"run only these suites (repeatable or comma-separated): {', '.join(SUITES)}",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to save the figures")
    parser.add_argument("--no-json", action="store_true", help="print only, save nothing")
    args = parser.parse_args(argv)
    chosen = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    args.suites = chosen or list(SUITES)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    figures: list[Figure] = []
    for name in args.suites:
        started = time.perf_counter()
        suite_figures = load(name)()
        elapsed = time.perf_counter() - started
        print_table(suite_figures, title=f"[{name}] ({elapsed:.1f} s)")
        figures.extend(suite_figures)
    if not args.no_json:
        path = write_json(figures, args.json, args.suites)
        print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
