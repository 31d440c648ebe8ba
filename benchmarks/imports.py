"""Importing a user's bars: our CSV parser against `csv.reader` merely iterating the same
1,000,000-row generic file (minute bars), best of 3 each, in the same run."""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from adapters.bars.csv_import import read_bar_files
from benchmarks.report import Figure
from domain.bars import Timeframe
from domain.exchanges import ExchangeHours, exchange_hours
from domain.symbols import AssetClass

ROWS = 1_000_000
RUNS = 3
RATIO_TARGET = 3.0
MINUTES_A_DAY = 390  # 09:30 to 16:00 New York, as a US stock's minute bars come
HOURS: ExchangeHours = exchange_hours("NASDAQ", AssetClass.STOCK)


def write_minute_bars(path: Path, rows: int = ROWS, seed: int = 20240115) -> None:
    """A generic CSV of `rows` one-minute bars: naive New York times, 2-dp prices."""
    rng = random.Random(seed)
    clocks = [f" {9 + (30 + m) // 60:02d}:{(30 + m) % 60:02d}:00," for m in range(MINUTES_A_DAY)]
    day, cents, written = date(2015, 1, 2), 10_000, 0
    with path.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        while written < rows:
            if day.weekday() < 5:
                stamp = day.isoformat()
                lines = []
                for clock in clocks[: rows - written]:
                    close = max(500, cents + rng.randint(-20, 20))
                    high = max(cents, close) + rng.randint(0, 9)
                    low = min(cents, close) - rng.randint(0, 9)
                    lines.append(
                        f"{stamp}{clock}{cents // 100}.{cents % 100:02d},"
                        f"{high // 100}.{high % 100:02d},{low // 100}.{low % 100:02d},"
                        f"{close // 100}.{close % 100:02d},{rng.randint(100, 99_999)}\n"
                    )
                    cents = close
                out.writelines(lines)
                written += len(lines)
            day += timedelta(days=1)


def best_of(action: Callable[[], object], runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def iterate_rows(path: Path) -> int:
    count = 0
    with path.open(newline="") as handle:
        for _ in csv.reader(handle):
            count += 1
    return count


def run() -> list[Figure]:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "minute_bars.csv"
        write_minute_bars(path)
        baseline = best_of(lambda: iterate_rows(path))
        ours = best_of(lambda: read_bar_files([path], "BENCH", Timeframe.M1, hours=HOURS))
    ratio = ours / baseline
    return [
        Figure("csv.reader iterating 1M rows", ROWS / baseline, "rows/s", note=f"{baseline:.2f} s"),
        Figure("import parser, 1M rows", ROWS / ours, "rows/s", note=f"{ours:.2f} s"),
        Figure(
            "import parser vs csv.reader",
            ratio,
            "x slower",
            target=f"<= {RATIO_TARGET:g}",
            ok=ratio <= RATIO_TARGET,
        ),
    ]
