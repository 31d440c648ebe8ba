"""The engine in process against backtesting.py running the same strategy on the same bars
in the same run: the SMA(10)/SMA(20) crossover on backtesting.py's GOOG daily bars and on a
1,000,000-bar synthetic minute series, twice: with indicators (examples/sma_cross.py, fed
backtesting.py's own SMA, as its strategy precomputes them with `self.I`) and in pure Python
(examples/sma_cross_pure.py: exact running sums each bar). Bars/s, the ratio, and the trades
compared one by one ("trades match" or the first difference); the setup a run pays first in
a process against a later run; and the memory a running simulation holds per bar."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
import tracemalloc
import warnings
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
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
from entrypoints.sdk import BacktestResults, Strategy, run_backtest
from entrypoints.sdk.loading import load_strategy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INDICATORS = EXAMPLES / "sma_cross.py"
PURE = EXAMPLES / "sma_cross_pure.py"
CAPITAL = 10_000
COMMISSION = 0.001
SYNTHETIC_BARS = 1_000_000
PRICE_DECIMALS = 6
INDICATOR_TARGET = 2.0
PURE_TARGET = 1.5
GOOG_REPEATS = 5
SYNTHETIC_REPEATS = 2
"""Best of 2 for the million bars (each side interleaved): one run alone swings by ~5 %
on a shared machine."""
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


Trade = tuple[int, int, int]
"""(entry bar, exit bar, size): where a closed trade opened and closed, as bar indices."""


def reference(frame: pd.DataFrame, commission: float) -> tuple[float, list[Trade]]:
    """(seconds, closed trades) of backtesting.py on `frame`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        stats = Backtest(frame, ReferenceSmaCross, cash=CAPITAL, commission=commission).run()
        seconds = time.perf_counter() - started
    trades = stats["_trades"]
    return seconds, [
        (int(e), int(x), abs(int(q)))
        for e, x, q in zip(trades["EntryBar"], trades["ExitBar"], trades["Size"], strict=True)
    ]


def load(path: Path) -> type[Strategy]:
    strategy = load_strategy(path)
    if path == INDICATORS:
        # backtesting.py's own SMA (a pandas rolling mean), as its strategy uses: the same
        # floats, hence the same crossings.
        return type("ReferenceAverages", (strategy,), {"average": staticmethod(SMA)})
    return strategy


def ours(
    path: Path, symbol: str, first: str, last: str, timeframe: str, commission: float
) -> tuple[float, BacktestResults]:
    strategy = load(path)
    started = time.perf_counter()
    results = run_backtest(
        strategy, [symbol], first, last, CAPITAL, timeframe, commission_pct=str(commission)
    )
    return time.perf_counter() - started, results


def our_trades(results: BacktestResults, times: array[int]) -> list[Trade]:
    def bar(when: datetime) -> int:
        return bisect_left(times, int(when.timestamp()))

    return [(bar(t.entry_time), bar(t.exit_time), int(t.quantity)) for t in results.trades]


def trade_note(mine: list[Trade], theirs: list[Trade]) -> str:
    if mine == theirs:
        return f"trades match ({len(mine)})"
    for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if a != b:
            return f"TRADES DIFFER at #{i}: ours {a}, theirs {b} (entry bar, exit bar, size)"
    return f"TRADE COUNTS DIFFER: ours {len(mine)}, theirs {len(theirs)}"


def compare(
    name: str,
    bars: int,
    times: array[int],
    theirs: Callable[[], tuple[float, list[Trade]]],
    mine: Mapping[str, Callable[[], tuple[float, BacktestResults]]],
    repeats: int,
) -> list[Figure]:
    """Best of `repeats` for each, interleaved so all see the same machine load."""
    best_theirs = float("inf")
    best = dict.fromkeys(mine, float("inf"))
    trades_theirs: list[Trade] = []
    trades: dict[str, list[Trade]] = {}
    for _ in range(repeats):
        seconds, trades_theirs = theirs()
        best_theirs = min(best_theirs, seconds)
        for label, run in mine.items():
            seconds, results = run()
            best[label] = min(best[label], seconds)
            trades[label] = our_trades(results, times)
    figures = [
        Figure(
            f"{name}: backtesting.py",
            bars / best_theirs,
            "bars/s",
            note=f"{len(trades_theirs)} trades",
        )
    ]
    for label, seconds in best.items():
        ratio = best_theirs / seconds
        target = INDICATOR_TARGET if label == "indicators" else PURE_TARGET
        figures += [
            Figure(f"{name}: simutrador, {label}", bars / seconds, "bars/s"),
            Figure(
                f"{name}: speed ratio, {label} (ours / theirs)",
                ratio,
                "x",
                target=f">= {target}",
                ok=ratio >= target,
                note=trade_note(trades[label], trades_theirs),
            ),
        ]
    return figures


def setup_cost(first: float, later: Callable[[], tuple[float, BacktestResults]]) -> list[Figure]:
    """The first run in a process (container, catalog, bar store, calendars) against the best
    of later ones, which reuse all of it."""
    best = min(later()[0] for _ in range(GOOG_REPEATS))
    return [
        Figure("GOOG daily: first run in a process", first * 1000, "ms"),
        Figure(
            "GOOG daily: a later run in the same process",
            best * 1000,
            "ms",
            note=f"setup paid once: {max(0.0, first - best) * 1000:.0f} ms",
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
        goog = goog_series()
        asyncio.run(service.import_bars(goog, replace=False))
        first, last = GOOG.index[0].date().isoformat(), GOOG.index[-1].date().isoformat()

        def goog_run(path: Path) -> Callable[[], tuple[float, BacktestResults]]:
            return lambda: ours(path, "GOOG", first, last, "1d", COMMISSION)

        first_run, _ = goog_run(INDICATORS)()  # the first run_backtest of this process
        figures += compare(
            "GOOG daily",
            len(GOOG),
            goog.times,
            lambda: reference(GOOG, COMMISSION),
            {"indicators": goog_run(INDICATORS), "pure Python": goog_run(PURE)},
            GOOG_REPEATS,
        )
        figures += setup_cost(first_run, goog_run(INDICATORS))
        series, frame = synthetic_series(SYNTHETIC_BARS)
        asyncio.run(service.register_instrument(SYNTHETIC))
        container.bar_store().write_sync(series, DataSource.IMPORTED, replace=False)
        start = datetime.fromtimestamp(series.times[0], UTC).date().isoformat()
        end = datetime.fromtimestamp(series.times[-1], UTC).date().isoformat()
        figures += compare(
            f"{SYNTHETIC_BARS:,} synthetic minutes",
            SYNTHETIC_BARS,
            series.times,
            # No commission here: over thousands of trades a random walk would otherwise
            # grind the account to dust, where our cent-rounded commissions and
            # backtesting.py's unrounded ones buy different whole shares.
            lambda: reference(frame, 0.0),
            {
                "indicators": lambda: ours(INDICATORS, "SYN-USD", start, end, "1m", 0.0),
                "pure Python": lambda: ours(PURE, "SYN-USD", start, end, "1m", 0.0),
            },
            SYNTHETIC_REPEATS,
        )
        figures.append(simulation_memory(container, "SYN-USD", start, end))
    return figures
