"""Remote runs over a slow link: what windows of bars (PROTOCOL §7.14) save against one bar
at a time. A real server on loopback, reached through a `DelayProxy` (each chunk delayed by
10 ms each way: a 20 ms round trip), and directly (no delay), in the same run:

- the SMA crossover (examples/sma_cross_pure.py) on backtesting.py's 2,148 GOOG daily bars:
  wall time and round trips, per bar and windowed (targets: <= 3 s windowed through the
  proxy; round trips <= decisions + bars / window + 3);
- a strategy trading twice a day on a year of synthetic 1-minute bars (about 98,000):
  bars per second windowed, and per bar over the first 1,000 bars only (a whole year one
  bar at a time would take over half an hour through the proxy);
- on loopback without delay, windowed against per bar (target: not slower).

Round trips are the SDK's stepping requests (start, acks, resumes), counted by the driver.

The server (`simutrador serve`) and the proxy run in processes of their own and this one
holds only the client, as in a deployment: as threads of the client's interpreter they would
share its GIL, and every message could wait for a thread switch. (Measured on 2026-12-05 on
the 2-core machine, the two layouts came out within noise of each other: ~3.0 s windowed
through the proxy either way. What a windowed run costs beyond its round trips is the
server stepping and encoding bars, the void ones included, and the client running the
strategy; `windowed` below is the best of a few runs, since the machine is shared.)"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from backtesting.test import GOOG
from dependency_injector import providers

from benchmarks.engine import GOOG_INSTRUMENT, goog_series
from benchmarks.processes import ProxyProcess, ProxyStats, ServeProcess
from benchmarks.report import Figure
from domain.bars import Bar, BarSeries, DataSource, Timeframe
from domain.calendar import TradingCalendar, is_trading_day
from domain.limits import Plan
from domain.symbols import AssetClass, Instrument, Symbol
from entrypoints.container import Container
from entrypoints.sdk import BacktestResults, Context, Strategy
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.backtest import drive
from entrypoints.sdk.driver import DEFAULT_WINDOW
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.remote import RemoteDriver
from entrypoints.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sma_cross_pure.py"
"""The pure-Python SMA crossover: the indicator variant (sma_cross.py) runs its indicators'
NumPy functions over all bars received once a window when run against a server, which
would measure that too, not only the link."""
DELAY_MS = 10.0
GOOG_SPAN = (GOOG.index[0].date().isoformat(), GOOG.index[-1].date().isoformat())
MINUTE_YEAR = ("2023-01-03", "2023-12-29")
MINUTE_SHORT = ("2023-01-03", "2023-01-05")
"""The span of the per-bar minute run through the proxy (1,170 bars)."""
WALL_TARGET_S = 3.0
LOOPBACK_REPEATS = 3
WINDOWED_REPEATS = 3
"""The windowed GOOG run through the proxy: best of these (the machine may be shared)."""
MINUTE = Instrument(Symbol("SYNM", AssetClass.STOCK), "Synthetic minute stock", "NASDAQ")
NEW_YORK = ZoneInfo("America/New_York")


def minute_series(first: date, last: date) -> BarSeries:
    """A seeded random walk of 1-minute bars over the NYSE sessions (09:31-16:00)."""
    rng = random.Random(11)
    bars = []
    price = 100.0
    day = first
    while day <= last:
        if is_trading_day(day, TradingCalendar.EQUITY_US):
            opening = datetime(day.year, day.month, day.day, 9, 30, tzinfo=NEW_YORK)
            for i in range(1, 391):
                opened = price
                price = max(5.0, price * (1 + rng.gauss(0, 0.0008)))
                high = max(opened, price) * (1 + rng.uniform(0, 0.0004))
                low = min(opened, price) * (1 - rng.uniform(0, 0.0004))
                when = (opening + timedelta(minutes=i)).astimezone(UTC)
                o, h, lo, c = (Decimal(f"{x:.2f}") for x in (opened, high, low, price))
                bars.append(Bar(when, o, h, lo, c, Decimal(rng.randint(100, 10_000))))
        day += timedelta(days=1)
    return BarSeries.from_bars("SYNM", Timeframe.M1, bars)


class TwiceADay(Strategy):
    """Buys 10 shares an hour into each session and sells them two hours before the close:
    two decisions a day."""

    def on_start(self, ctx: Context) -> None:
        self.day: date | None = None
        self.bar = 0

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        assert ctx.time is not None
        today = ctx.time.date()
        if today != self.day:
            self.day, self.bar = today, 0
        self.bar += 1
        if self.bar == 60:
            ctx.buy("SYNM", 10)
        elif self.bar == 270 and ctx.position("SYNM"):
            ctx.close("SYNM")


@dataclass
class Measured:
    seconds: float
    results: BacktestResults
    round_trips: int
    decisions: int


@dataclass(frozen=True)
class Served:
    """A `simutrador serve` process and an API key for it."""

    port: int
    key: str


def prepare(home: Path) -> str:
    """GOOG's daily bars and a year of minutes in `home`, and an enterprise API key (what
    `simutrador data import` and `simutrador keys create` would leave there)."""
    container = Container()
    container.settings.override(providers.Object(Settings.from_env({"SIMUTRADOR_HOME": str(home)})))
    try:
        service = container.market_data_service()
        asyncio.run(service.register_instrument(GOOG_INSTRUMENT))
        asyncio.run(service.import_bars(goog_series(), replace=False))
        asyncio.run(service.register_instrument(MINUTE))
        first, last = (date.fromisoformat(d) for d in MINUTE_YEAR)
        container.bar_store().write_sync(
            minute_series(first, last), DataSource.IMPORTED, replace=False
        )
        created = asyncio.run(container.auth_service().create_api_key("latency", Plan.ENTERPRISE))
    finally:
        container.bar_store().close()
    return created.secret


@contextmanager
def serving() -> Iterator[Served]:
    """`simutrador serve` in a process of its own (see `benchmarks.processes` for why) over
    a temporary home holding GOOG's daily bars and a year of minutes."""
    with tempfile.TemporaryDirectory(prefix="simutrador-latency-") as root:
        home = Path(root) / "home"
        home.mkdir()
        key = prepare(home)
        with ServeProcess(home) as server:
            yield Served(server.port, key)


def measure(
    port: int,
    key: str,
    strategy: Strategy,
    symbol: str,
    span: tuple[str, str],
    timeframe: str,
    window: int,
    params: Mapping[str, int] | None = None,
) -> Measured:
    async def go() -> Measured:
        auth = AuthClient(f"http://127.0.0.1:{port}", key)
        await auth.access_token()  # the token is not part of the run
        driver = RemoteDriver(
            auth,
            [symbol],
            *span,
            Decimal(10_000),
            timeframe,
            engine_settings={"commission_pct": "0.001"},
            window=window,
        )
        started = time.perf_counter()
        try:
            results = await drive(strategy, driver, params=params)
        finally:
            await driver.close()
        seconds = time.perf_counter() - started
        return Measured(seconds, results, driver.round_trips, driver.decisions)

    return asyncio.run(go())


def same(a: BacktestResults, b: BacktestResults) -> bool:
    return (a.trades, a.equity_curve, a.metrics) == (b.trades, b.equity_curve, b.metrics)


def goog(port: int, key: str, window: int) -> Measured:
    sma = load_strategy(EXAMPLE)
    return measure(port, key, sma(), "GOOG", GOOG_SPAN, "1d", window, {"fast": 10, "slow": 20})


def minutes(port: int, key: str, span: tuple[str, str], window: int) -> Measured:
    return measure(port, key, TwiceADay(), "SYNM", span, "1m", window)


def run() -> list[Figure]:
    figures: list[Figure] = []
    print(
        f"server: `simutrador serve` in its own process, own home (GOOG daily, "
        f"{MINUTE.symbol.ticker} minutes); clients: the SDK, alone in this process; proxy: "
        f"its own process on 127.0.0.1, each chunk +{DELAY_MS:g} ms each way; "
        f"window asked: {DEFAULT_WINDOW} (the frame holds fewer)"
    )
    with serving() as server, ProxyProcess(server.port, DELAY_MS) as proxy:
        key = server.key
        # SMA on GOOG daily, through the proxy.
        per_bar = goog(proxy.port, key, 1)
        runs: list[tuple[Measured, ProxyStats]] = []
        for _ in range(WINDOWED_REPEATS):
            before = proxy.stats()
            run = goog(proxy.port, key, DEFAULT_WINDOW)
            runs.append((run, proxy.stats().minus(before)))
        windowed, lag = min(runs, key=lambda r: r[0].seconds)
        slowest = max(r.seconds for r, _ in runs)
        bars = windowed.results.total_ticks
        identical = all(same(per_bar.results, r.results) for r, _ in runs)
        windows = windowed.round_trips - windowed.decisions
        figures += [
            Figure(
                f"GOOG SMA, +{DELAY_MS:g} ms each way: per bar",
                per_bar.seconds,
                "s",
                note=f"{bars:,} bars, {per_bar.round_trips:,} round trips",
            ),
            Figure(
                f"GOOG SMA, +{DELAY_MS:g} ms each way: windowed",
                windowed.seconds,
                "s",
                target=f"<= {WALL_TARGET_S:g}",
                ok=windowed.seconds <= WALL_TARGET_S and identical,
                note=(
                    f"best of {WINDOWED_REPEATS} (slowest {slowest:.2f} s); "
                    f"{per_bar.seconds / windowed.seconds:.0f}x faster; "
                    + ("same results" if identical else "RESULTS DIFFER")
                    + f"; the proxy's chunks went out {lag.mean_late_ms():.2f} ms late on "
                    f"average ({sum(lag.chunks.values())} chunks)"
                ),
            ),
        ]
        # bars per window the frame held: bars / windows without a decision at most
        held = bars / max(windows, 1)
        bound = windowed.decisions + math.ceil(bars / DEFAULT_WINDOW) + 3
        figures.append(
            Figure(
                "GOOG SMA: round trips windowed",
                windowed.round_trips,
                "",
                target=f"<= decisions + bars/K + 3 = {bound} (K = {DEFAULT_WINDOW} asked)",
                ok=windowed.round_trips <= bound,
                note=(
                    f"{windowed.decisions} decisions, {windows} windows acked whole "
                    f"(~{held:.0f} bars each); per bar: {per_bar.round_trips:,}"
                ),
            )
        )

        # A year of minutes windowed; one bar at a time over the first days only.
        year = minutes(proxy.port, key, MINUTE_YEAR, DEFAULT_WINDOW)
        short_bar = minutes(proxy.port, key, MINUTE_SHORT, 1)
        short_win = minutes(proxy.port, key, MINUTE_SHORT, DEFAULT_WINDOW)
        year_rate = year.results.total_ticks / year.seconds
        short_rate = short_bar.results.total_ticks / short_bar.seconds
        figures += [
            Figure(
                f"1-minute year, +{DELAY_MS:g} ms each way: windowed",
                year_rate,
                "bars/s",
                note=(
                    f"{year.results.total_ticks:,} bars in {year.seconds:.1f} s, "
                    f"{year.round_trips:,} round trips, {year.decisions:,} decisions"
                ),
            ),
            Figure(
                f"1-minute, +{DELAY_MS:g} ms each way: per bar (first 3 days)",
                short_rate,
                "bars/s",
                note=(
                    f"{short_bar.results.total_ticks:,} bars in {short_bar.seconds:.1f} s; "
                    f"windowed over the same days: "
                    f"{short_win.results.total_ticks / short_win.seconds:,.0f} bars/s, "
                    + (
                        "same results"
                        if same(short_bar.results, short_win.results)
                        else "RESULTS DIFFER"
                    )
                ),
            ),
            Figure(
                "1-minute: windowed / per bar through the proxy",
                year_rate / short_rate,
                "x",
                note=(
                    f"a whole year per bar would take "
                    f"~{year.results.total_ticks / short_rate / 60:.0f} min"
                ),
            ),
        ]

        # Loopback without delay: windows must not cost anything.
        best = {1: math.inf, DEFAULT_WINDOW: math.inf}
        for _ in range(LOOPBACK_REPEATS):
            for window in best:
                best[window] = min(best[window], goog(server.port, key, window).seconds)
        ratio = best[1] / best[DEFAULT_WINDOW]
        chunks = proxy.stats().chunks
        figures.append(
            Figure(
                "GOOG SMA on loopback, no delay: windowed speed / per bar",
                ratio,
                "x",
                target=">= 1",
                ok=ratio >= 1,
                note=(
                    f"per bar {best[1]:.2f} s, windowed {best[DEFAULT_WINDOW]:.2f} s "
                    f"(best of {LOOPBACK_REPEATS}); proxy chunks up/down "
                    f"{chunks['up']:,}/{chunks['down']:,}"
                ),
            )
        )
    return figures
