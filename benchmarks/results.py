"""What a run's results cost to keep and to take away: examples/sma_cross.py in process on
GOOG, as it is and drawing two lines with `ctx.plot` on every bar, interleaved
in the same run; then rendering the HTML report and writing the CSV files of a
100,000-bar run."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from benchmarks.engine import CAPITAL, COMMISSION, EXAMPLES, GOOG_INSTRUMENT, goog_series, home
from benchmarks.report import Figure
from entrypoints.export import write_csv_files
from entrypoints.protocol.messages import MetricsData, TradeData
from entrypoints.report import render_report
from entrypoints.sdk import BacktestResults, Bar, Context, Strategy, run_backtest
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.plots import PlotSeries, PriceTrack

REPEATS = 5
REPORT_BARS = 100_000
REPORT_TRADES = 2_000


def plotted(base: type[Strategy]) -> type[Strategy]:
    """`base`, drawing two lines on every bar as well (the bar's close and open: values at
    hand, so only `ctx.plot` is measured)."""

    class Plotted(base):  # type: ignore[valid-type,misc]
        def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
            super().on_bar(ctx, bars)
            for s in bars:
                bar = bars[s]
                ctx.plot(f"{s} close", bar.close, s)
                ctx.plot(f"{s} open", bar.open, s)

    return Plotted


def loop_cost() -> list[Figure]:
    with home() as container:
        market = container.market_data_service()
        asyncio.run(market.register_instrument(GOOG_INSTRUMENT))
        asyncio.run(market.import_bars(goog_series(), replace=False))
        plain = load_strategy(EXAMPLES / "sma_cross.py")
        drawing = plotted(plain)

        def once(strategy: type[Strategy]) -> tuple[float, int]:
            started = time.perf_counter()
            results = run_backtest(
                strategy,
                ["GOOG"],
                "2004-08-19",
                "2013-03-01",
                CAPITAL,
                commission_pct=str(COMMISSION),
            )
            return time.perf_counter() - started, results.total_ticks

        best_plain = best_drawing = float("inf")
        bars = 0
        for _ in range(REPEATS):
            seconds, bars = once(plain)
            best_plain = min(best_plain, seconds)
            seconds, bars = once(drawing)
            best_drawing = min(best_drawing, seconds)
    per_bar = (best_drawing - best_plain) / bars * 1e6
    return [
        Figure("GOOG sma_cross in process", bars / best_plain, "bars/s"),
        Figure("GOOG sma_cross drawing 2 ctx.plot lines", bars / best_drawing, "bars/s"),
        Figure(
            "ctx.plot cost (drawing / not)",
            best_drawing / best_plain,
            "x",
            note=f"{per_bar:.1f} µs a bar for 2 lines",
        ),
    ]


def big_results() -> BacktestResults:
    start = datetime(2020, 1, 2, 14, 31, tzinfo=UTC)
    prices = PriceTrack()
    sma = PlotSeries("SYN")
    for i in range(REPORT_BARS):
        close = int((start + timedelta(minutes=i)).timestamp())
        level = 100.0 + (i % 977) / 10
        prices.times.append(close)
        prices.opens.append(level)
        prices.highs.append(level + 0.5)
        prices.lows.append(level - 0.5)
        prices.closes.append(level + 0.1)
        prices.volumes.append(1000.0)
        sma.add(close, level)
    step = REPORT_BARS // REPORT_TRADES
    trades = [
        TradeData(
            symbol="SYN",
            side="long",
            quantity=Decimal(10),
            entry_time=start + timedelta(minutes=k * step),
            entry_price=Decimal("100.25"),
            exit_time=start + timedelta(minutes=k * step + step // 2),
            exit_price=Decimal("100.75") if k % 3 else Decimal("99.5"),
            pnl=Decimal("5.00") if k % 3 else Decimal("-7.50"),
            return_pct=0.5 if k % 3 else -0.75,
            commission=Decimal(0),
        )
        for k in range(REPORT_TRADES)
    ]
    days = REPORT_BARS // 390 + 1
    curve = [(date(2020, 1, 2) + timedelta(days=d), Decimal(10_000 + d)) for d in range(days)]
    metrics = MetricsData(
        total_return_pct=1.0,
        annual_return_pct=1.0,
        annual_volatility_pct=1.0,
        sharpe_ratio=1.0,
        sortino_ratio=1.0,
        max_drawdown_pct=-1.0,
        calmar_ratio=1.0,
        final_equity=curve[-1][1],
        total_trades=len(trades),
        winning_trades=sum(1 for t in trades if t.pnl > 0),
        win_rate_pct=66.7,
        profit_factor=1.3,
        avg_trade_pct=0.1,
        best_trade_pct=0.5,
        worst_trade_pct=-0.75,
        exposure_pct=50.0,
        total_commission=Decimal(0),
        total_slippage=Decimal(0),
    )
    return BacktestResults(
        session_id="bench",
        metrics=metrics,
        trades=trades,
        equity_curve=curve,
        executions=[],
        total_ticks=REPORT_BARS,
        wall_time_ms=0,
        prices={"SYN": prices},
        plots={"sma": sma},
    )


def timed(action: Callable[[], object]) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        value = action()
        best = min(best, time.perf_counter() - started)
    return best, value


def take_away() -> list[Figure]:
    results = big_results()
    seconds, page = timed(lambda: render_report(results))
    size = len(str(page).encode()) / 1e6
    with tempfile.TemporaryDirectory(prefix="simutrador-csv-") as folder:
        written, _ = timed(lambda: write_csv_files(results, Path(folder) / "out", 60))
    return [
        Figure(
            f"HTML report of {REPORT_BARS:,} bars, {REPORT_TRADES:,} trades",
            seconds * 1000,
            "ms",
            note=f"{size:.1f} MB (plotly.js inlined: 4.8 MB of it); candles merged to 5,000",
        ),
        Figure(f"CSV files of {REPORT_TRADES:,} trades", written * 1000, "ms"),
    ]


def run() -> list[Figure]:
    return loop_cost() + take_away()
