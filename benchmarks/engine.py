"""The engine in process against backtesting.py running the same strategy on the same bars
in the same run: the SMA(10)/SMA(20) crossover of examples/sma_cross.py on backtesting.py's
GOOG daily bars and on a 1,000,000-bar synthetic minute series, trade counts side by side
(they must match); and the memory a running simulation holds per bar."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from benchmarks.report import Figure
from domain.bars import Bar, BarSeries, DataSource, Timeframe
from domain.exchanges import daily_close, exchange_hours
from domain.symbols import AssetClass, Instrument, Symbol
from entrypoints.container import Container
from entrypoints.sdk import BacktestResults, run_backtest
from entrypoints.sdk.loading import load_strategy

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sma_cross.py"
CAPITAL = 10_000
COMMISSION = 0.001
SYNTHETIC_BARS = 1_000_000
PRICE_DECIMALS = 6
RATIO_TARGET = 1.0
GOOG_REPEATS = 5
SYNTHETIC = Instrument(Symbol("SYN-USD", AssetClass.CRYPTO), "Synthetic minute walk", "CRYPTO")
GOOG_INSTRUMENT = Instrument(Symbol("GOOG", AssetClass.STOCK), "Alphabet Inc. Class C", "NASDAQ")


class ReferenceSmaCross(BtStrategy):  # type: ignore[misc]
    def init(self) -> None:
        self.fast = self.I(SMA, self.data.Close, 10)
        self.slow = self.I(SMA, self.data.Close, 20)

    def next(self) -> None:
        if crossover(self.fast, self.slow) and not self.position:
            self.buy()
        elif crossover(self.slow, self.fast) and self.position:
            self.position.close()


@contextmanager
def home() -> Iterator[Container]:
    """A container over a fresh SIMUTRADOR_HOME (run_backtest reads the environment)."""
    previous = os.environ.get("SIMUTRADOR_HOME")
    with tempfile.TemporaryDirectory(prefix="simutrador-engine-") as folder:
        os.environ["SIMUTRADOR_HOME"] = folder
        try:
            yield Container()
        finally:
            if previous is None:
                del os.environ["SIMUTRADOR_HOME"]
            else:
                os.environ["SIMUTRADOR_HOME"] = previous


def goog_series() -> BarSeries:
    hours = exchange_hours("NASDAQ", AssetClass.STOCK)

    def exact(value: float) -> Decimal:
        return Decimal(repr(float(value)))

    bars = [
        Bar(
            daily_close(day.date(), hours),
            exact(row["Open"]),
            exact(row["High"]),
            exact(row["Low"]),
            exact(row["Close"]),
            Decimal(int(row["Volume"])),
        )
        for day, row in GOOG.iterrows()
    ]
    return BarSeries.from_bars("GOOG", Timeframe.D1, bars)


def synthetic_series(bars: int) -> tuple[BarSeries, pd.DataFrame]:
    """A seeded minute random walk, as our store holds it and as backtesting.py reads it.

    Prices carry 6 decimals so that two moving averages are (almost) never exactly equal:
    on such ties exact arithmetic (ours) and floats (backtesting.py) may disagree about a
    crossover, and the trade lists would part for a reason that is not speed."""
    rng = random.Random(7)
    scale = 10**PRICE_DECIMALS
    series = BarSeries.empty("SYN-USD", Timeframe.M1, PRICE_DECIMALS, 0)
    start = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())
    price = 50 * scale
    for i in range(bars):
        opened = price
        price = max(5 * scale, price + int(rng.gauss(0, 0.08 * scale)))
        series.times.append(start + 60 * (i + 1))
        series.opens.append(opened)
        series.highs.append(max(opened, price) + rng.randint(0, scale // 25))
        series.lows.append(min(opened, price) - rng.randint(0, scale // 25))
        series.closes.append(price)
        series.volumes.append(rng.randint(100, 10_000))
    frame = pd.DataFrame(
        {
            "Open": [v / scale for v in series.opens],
            "High": [v / scale for v in series.highs],
            "Low": [v / scale for v in series.lows],
            "Close": [v / scale for v in series.closes],
            "Volume": list(series.volumes),
        },
        index=pd.to_datetime(list(series.times), unit="s"),
    )
    return series, frame


def reference(frame: pd.DataFrame, commission: float) -> tuple[float, int]:
    """(seconds, closed trades) of backtesting.py on `frame`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        stats = Backtest(frame, ReferenceSmaCross, cash=CAPITAL, commission=commission).run()
        return time.perf_counter() - started, int(stats["# Trades"])


def ours(
    symbol: str, first: str, last: str, timeframe: str, commission: float
) -> tuple[float, BacktestResults]:
    strategy = load_strategy(EXAMPLE)
    started = time.perf_counter()
    results = run_backtest(
        strategy, [symbol], first, last, CAPITAL, timeframe, commission_pct=str(commission)
    )
    return time.perf_counter() - started, results


def compare(
    name: str,
    bars: int,
    theirs: Callable[[], tuple[float, int]],
    mine: Callable[[], tuple[float, BacktestResults]],
    repeats: int,
) -> list[Figure]:
    """Best of `repeats` for each, interleaved so both see the same machine load."""
    best_theirs, best_mine = float("inf"), float("inf")
    trades_theirs = trades_mine = 0
    for _ in range(repeats):
        seconds, trades_theirs = theirs()
        best_theirs = min(best_theirs, seconds)
        seconds, results = mine()
        best_mine = min(best_mine, seconds)
        trades_mine = len(results.trades)
    ratio = best_theirs / best_mine
    return [
        Figure(
            f"{name}: backtesting.py", bars / best_theirs, "bars/s", note=f"{trades_theirs} trades"
        ),
        Figure(f"{name}: simutrador", bars / best_mine, "bars/s", note=f"{trades_mine} trades"),
        Figure(
            f"{name}: speed ratio (ours / theirs)",
            ratio,
            "x",
            target=f">= {RATIO_TARGET}",
            ok=ratio >= RATIO_TARGET,
            note="trades match" if trades_mine == trades_theirs else "TRADE COUNTS DIFFER",
        ),
    ]


def simulation_memory(container: Container, symbol: str, first: str, last: str) -> Figure:
    """Bytes a built simulation holds per bar (bars, tick index, calendar flags)."""
    from application.principal import Principal
    from domain.limits import PLAN_DEFAULTS, Plan
    from entrypoints.protocol import messages as m
    from entrypoints.protocol.dispatcher import session_params

    principal = Principal("bench", Plan.ENTERPRISE, PLAN_DEFAULTS[Plan.ENTERPRISE])
    request = m.CreateSessionData(
        symbols=[symbol],
        start_date=first,
        end_date=last,
        initial_capital=Decimal(CAPITAL),
        timeframe="1m",
    )

    async def build() -> tuple[int, int]:
        session = await container.session_service().create(
            principal, session_params(request, principal)
        )
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        simulation = await container.simulation_service().build(session)
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return held, simulation.total_ticks

    held, ticks = asyncio.run(build())
    return Figure("running simulation: memory per bar", held / ticks, "B", note=f"{ticks:,} bars")


def run() -> list[Figure]:
    figures: list[Figure] = []
    with home() as container:
        service = container.market_data_service()
        asyncio.run(service.register_instrument(GOOG_INSTRUMENT))
        asyncio.run(service.import_bars(goog_series(), replace=False))
        first, last = GOOG.index[0].date().isoformat(), GOOG.index[-1].date().isoformat()
        figures += compare(
            "GOOG daily",
            len(GOOG),
            lambda: reference(GOOG, COMMISSION),
            lambda: ours("GOOG", first, last, "1d", COMMISSION),
            GOOG_REPEATS,
        )
        series, frame = synthetic_series(SYNTHETIC_BARS)
        asyncio.run(service.register_instrument(SYNTHETIC))
        container.bar_store().write_sync(series, DataSource.IMPORTED, replace=False)
        start = datetime.fromtimestamp(series.times[0], UTC).date().isoformat()
        end = datetime.fromtimestamp(series.times[-1], UTC).date().isoformat()
        figures += compare(
            f"{SYNTHETIC_BARS:,} synthetic minutes",
            SYNTHETIC_BARS,
            # No commission here: over thousands of trades a random walk would otherwise
            # grind the account to dust, where our cent-rounded commissions and
            # backtesting.py's unrounded ones buy different whole shares.
            lambda: reference(frame, 0.0),
            lambda: ours("SYN-USD", start, end, "1m", 0.0),
            1,
        )
        figures.append(simulation_memory(container, "SYN-USD", start, end))
    return figures
