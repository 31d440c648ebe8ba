"""The bar store read path against a bare `sqlite3` `SELECT … fetchall()` of the same rows
in the same run: 10 years of daily bars for 50 symbols, and a year of minute bars (98,280)
for one symbol; plus the bytes each bar takes in memory once read."""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from adapters.bars.sqlite_store import SqliteBarStore
from benchmarks.report import Figure
from domain.bars import BarSeries, DataSource, Timeframe

DAILY_SYMBOLS = 50
DAILY_BARS = 2_520  # ten years of trading days
MINUTE_BARS = 252 * 390  # a year of regular-hours minutes
RATIO_TARGET = 1.5
BYTES_TARGET = 64
REPEATS = 7


def random_walk(symbol: str, timeframe: Timeframe, bars: int, seed: int) -> BarSeries:
    rng = random.Random(seed)
    series = BarSeries.empty(symbol, timeframe, 2, 0)
    start = int(datetime(2015, 1, 2, 21, tzinfo=UTC).timestamp())
    step = timeframe.seconds
    price = 10_000
    for i in range(bars):
        opened = price
        price = max(100, price + int(rng.gauss(0, 150)))
        series.times.append(start + i * step)
        series.opens.append(opened)
        series.highs.append(max(opened, price) + rng.randint(0, 60))
        series.lows.append(min(opened, price) - rng.randint(0, 60))
        series.closes.append(price)
        series.volumes.append(rng.randint(1_000, 5_000_000))
    return series


def best_of(action: Callable[[], object], repeats: int = REPEATS) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def baseline_table(path: Path, series: list[BarSeries]) -> sqlite3.Connection:
    """The same bars as plain rows, the shape a straightforward store would use."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE bars (symbol TEXT, t INTEGER, o INTEGER, h INTEGER, l INTEGER, "
        "c INTEGER, v INTEGER, PRIMARY KEY (symbol, t)) WITHOUT ROWID"
    )
    for s in series:
        db.executemany(
            "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((s.symbol, *row) for row in zip(*s.columns, strict=True)),
        )
    db.commit()
    return db


def bytes_per_bar(series: dict[str, BarSeries]) -> float:
    """Column storage plus each array object's own header, per bar held."""
    held = sum(sys.getsizeof(c) for s in series.values() for c in s.columns)
    return held / sum(len(s) for s in series.values())


def measure(
    name: str, store: SqliteBarStore, db: sqlite3.Connection, series: list[BarSeries]
) -> list[Figure]:
    symbols = [s.symbol for s in series]
    timeframe = series[0].timeframe
    first = min(s.times[0] for s in series)
    last = max(s.times[-1] for s in series)
    marks = ",".join("?" * len(symbols))
    query = (
        f"SELECT t, o, h, l, c, v FROM bars WHERE symbol IN ({marks}) "
        "AND t BETWEEN ? AND ? ORDER BY symbol, t"
    )
    rows = len(db.execute(query, (*symbols, first, last)).fetchall())
    read = store.read_sync(symbols, timeframe, first, last)
    assert sum(len(s) for s in read.values()) == rows, "both paths must return the same bars"
    baseline = best_of(lambda: db.execute(query, (*symbols, first, last)).fetchall())
    ours = best_of(lambda: store.read_sync(symbols, timeframe, first, last))
    ratio = ours / baseline
    return [
        Figure(f"{name}: fetchall baseline", baseline * 1000, "ms", note=f"{rows:,} rows"),
        Figure(f"{name}: bar store read", ours * 1000, "ms", note="columnar arrays"),
        Figure(
            f"{name}: read / baseline",
            ratio,
            "x",
            target=f"<= {RATIO_TARGET}",
            ok=ratio <= RATIO_TARGET,
        ),
        Figure(
            f"{name}: bytes per bar held",
            bytes_per_bar(read),
            "B",
            target=f"<= {BYTES_TARGET}",
            ok=bytes_per_bar(read) <= BYTES_TARGET,
        ),
    ]


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="simutrador-bench-") as folder:
        home = Path(folder)
        store = SqliteBarStore(home / "bars.db")
        daily = [
            random_walk(f"S{i:02d}", Timeframe.D1, DAILY_BARS, seed=i) for i in range(DAILY_SYMBOLS)
        ]
        minutes = [random_walk("MIN", Timeframe.M1, MINUTE_BARS, seed=99)]
        started = time.perf_counter()
        for s in [*daily, *minutes]:
            store.write_sync(s, DataSource.IMPORTED, replace=False)
        write_rate = (DAILY_SYMBOLS * DAILY_BARS + MINUTE_BARS) / (time.perf_counter() - started)
        figures = [Figure("bar store write", write_rate, "bars/s")]
        db = baseline_table(home / "baseline.db", [*daily, *minutes])
        figures += measure(f"{DAILY_SYMBOLS} symbols x 10y daily", store, db, daily)
        figures += measure("1 symbol x 1y minutes", store, db, minutes)
        db.close()
        store.close()
    return figures
