"""Results as CSV files anyone can open: trades.csv, executions.csv, equity.csv (one row per
day) and stats.csv. The standard library's csv module only (no pandas). Each writer returns
the file's text, so the CLI writes files and a web page can serve the same text.

Amounts are the exact decimals of the protocol, instants ISO 8601 in UTC, undefined values
empty cells."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Protocol

from entrypoints.protocol.messages import ExecutionReportData, MetricsData, TradeData
from entrypoints.sdk.plots import Reportable
from entrypoints.stats import METRIC_LABELS

Cell = str | int | float | Decimal | date | datetime | None

TRADE_COLUMNS = (
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "return_pct",
    "commission",
    "duration_days",
)
EXECUTION_COLUMNS = (
    "sim_time",
    "sequence_id",
    "execution_id",
    "order_id",
    "symbol",
    "side",
    "status",
    "quantity",
    "fill_quantity",
    "filled_quantity",
    "remaining_quantity",
    "price",
    "commission",
    "slippage",
    "fill_reason",
    "reason",
)
EQUITY_COLUMNS = ("date", "equity", "drawdown_pct")
STATS_COLUMNS = ("metric", "value", "label", "unit")


def cell(value: Cell) -> str:
    """One value as a CSV cell: instants in UTC (`Z`), decimals exactly, None empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _table(columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell(value) for value in row] for row in rows)
    return buffer.getvalue()


DAY_SECONDS = 86_400
TIMEFRAME_SECONDS = {"1d": 86_400, "1h": 3_600, "5m": 300, "1m": 60}


def bar_seconds(results: Reportable) -> int:
    """The bar length: from the run's timeframe, else the smallest gap between bars."""
    if results.run is not None and results.run.timeframe in TIMEFRAME_SECONDS:
        return TIMEFRAME_SECONDS[results.run.timeframe]
    gaps = [b - a for track in results.prices.values() for a, b in pairwise(track.times)]
    return min(min(gaps, default=DAY_SECONDS), DAY_SECONDS)


def trade_days(trade: TradeData, bar_seconds: int = DAY_SECONDS) -> float:
    """How long a trade was open, in days, to the nearest bar length (a day at most: daily
    closes are whole days apart but for a daylight-saving hour), as §7.12 measures it."""
    step = min(bar_seconds, DAY_SECONDS)
    seconds = (trade.exit_time - trade.entry_time).total_seconds()
    return round(seconds / step) * step / DAY_SECONDS


def trades_csv(trades: Sequence[TradeData], bar_seconds: int = DAY_SECONDS) -> str:
    return _table(
        TRADE_COLUMNS,
        (
            (
                t.symbol,
                t.side,
                t.quantity,
                t.entry_time,
                t.entry_price,
                t.exit_time,
                t.exit_price,
                t.pnl,
                t.return_pct,
                t.commission,
                round(trade_days(t, bar_seconds), 6),
            )
            for t in trades
        ),
    )


def executions_csv(executions: Sequence[ExecutionReportData]) -> str:
    return _table(
        EXECUTION_COLUMNS,
        ([getattr(report, column) for column in EXECUTION_COLUMNS] for report in executions),
    )


def drawdown_pct(equity: Sequence[Decimal]) -> list[float]:
    """(E / running max(E) - 1) * 100 at each point (<= 0)."""
    peak: Decimal | None = None
    shown = []
    for value in equity:
        peak = value if peak is None or value > peak else peak
        shown.append(float((value / peak - 1) * 100) if peak > 0 else 0.0)
    return shown


def equity_csv(equity_curve: Sequence[tuple[date, Decimal]]) -> str:
    drawdowns = drawdown_pct([value for _, value in equity_curve])
    return _table(
        EQUITY_COLUMNS,
        (
            (day, value, round(dd, 6))
            for (day, value), dd in zip(equity_curve, drawdowns, strict=True)
        ),
    )


def stats_csv(metrics: MetricsData) -> str:
    return _table(
        STATS_COLUMNS,
        (
            (name, getattr(metrics, name), label, unit)
            for name, (label, unit) in METRIC_LABELS.items()
        ),
    )


class ResultsTables(Protocol):
    """What the CSV files are made of (a `BacktestResults` has all of it)."""

    @property
    def metrics(self) -> MetricsData: ...
    @property
    def trades(self) -> Sequence[TradeData]: ...
    @property
    def equity_curve(self) -> Sequence[tuple[date, Decimal]]: ...
    @property
    def executions(self) -> Sequence[ExecutionReportData]: ...


def csv_files(results: ResultsTables, bar_seconds: int = DAY_SECONDS) -> dict[str, str]:
    """File name → CSV text, for all four files (trade durations to the nearest bar)."""
    return {
        "trades.csv": trades_csv(results.trades, bar_seconds),
        "executions.csv": executions_csv(results.executions),
        "equity.csv": equity_csv(results.equity_curve),
        "stats.csv": stats_csv(results.metrics),
    }


def write_csv_files(
    results: ResultsTables, directory: Path, bar_seconds: int = DAY_SECONDS
) -> list[Path]:
    """Write the four files into `directory` (made if missing, its parent must exist), each
    replaced whole or not at all. Returns their paths."""
    directory.mkdir(exist_ok=True)
    written = []
    for name, text in csv_files(results, bar_seconds).items():
        target = directory / name
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                stream.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
