"""`run_backtest`: one strategy loop over a driver — in process (the engine called directly)
or, later, a server — so every transport gives the same results."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from entrypoints.protocol.messages import (
    CreateSessionData,
    ExecutionReportData,
    MetricsData,
    OrderData,
    SimulationResultsData,
    TradeData,
)
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.plots import PlotSeries, RunInfo
from entrypoints.sdk.strategy import DEFAULT_HISTORY_SIZE, Bar, Context, Strategy

DateLike = date | datetime | str
_NO_REJECTIONS: Mapping[str, tuple[str, str]] = MappingProxyType({})


class TickView(NamedTuple):
    sequence_id: int
    time: int
    """The bar close as epoch seconds (`sim_time` as a number)."""
    sim_time: datetime
    bars: Mapping[str, Bar]
    equity: Decimal
    cash: Decimal
    is_last: bool


class Outcome(NamedTuple):
    """What follows an ack (or the start): refusals, reports, then the next tick (None when
    the simulation is complete)."""

    reports: Sequence[ExecutionReportData]
    tick: TickView | None
    rejected: Mapping[str, tuple[str, str]] = _NO_REJECTIONS


@dataclass(frozen=True, slots=True)
class Started:
    session_id: str
    symbols: tuple[str, ...]
    total_ticks: int
    history: Mapping[str, Sequence[Bar]]
    warnings: tuple[str, ...] = ()
    currency: str = ""


class SimulationDriver(Protocol):
    """A transport for the strategy loop."""

    async def start(self) -> tuple[Started, Outcome]: ...

    async def acknowledge(
        self, sequence_id: int, orders: Sequence[OrderData], cancels: Sequence[str]
    ) -> Outcome: ...

    async def results(self) -> SimulationResultsData: ...

    async def close(self) -> None: ...


def _floats() -> array[float]:
    return array("d")


@dataclass(frozen=True, slots=True)
class PriceTrack:
    """The bars of one symbol as the strategy saw them (compact: for charts, not for money)."""

    times: array[int] = field(default_factory=lambda: array("q"))
    closes: array[float] = field(default_factory=_floats)
    opens: array[float] = field(default_factory=_floats)
    highs: array[float] = field(default_factory=_floats)
    lows: array[float] = field(default_factory=_floats)
    volumes: array[float] = field(default_factory=_floats)

    def add(self, time: int, bar: Bar) -> None:
        self.times.append(time)
        self.opens.append(float(bar.open))
        self.highs.append(float(bar.high))
        self.lows.append(float(bar.low))
        self.closes.append(float(bar.close))
        self.volumes.append(float(bar.volume))


@dataclass(frozen=True, slots=True)
class Rejection:
    """An order the engine refused outright (`on_reject`)."""

    order_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BacktestResults:
    """What a run produced (field names as PROTOCOL.md §4.3 `simulation_results`), plus
    every execution report, the closes seen (for reports) and the run's timing."""

    session_id: str
    metrics: MetricsData
    # Long lists stay out of the repr: printing results (or a finished task holding them)
    # must not format every execution.
    trades: list[TradeData] = field(repr=False)
    equity_curve: list[tuple[date, Decimal]] = field(repr=False)
    executions: list[ExecutionReportData] = field(repr=False)
    total_ticks: int
    wall_time_ms: int
    prices: Mapping[str, PriceTrack] = field(default_factory=dict, repr=False)
    plots: Mapping[str, PlotSeries] = field(default_factory=dict, repr=False)
    """What the strategy drew with `ctx.plot`, by name."""
    rejections: list[Rejection] = field(default_factory=list, repr=False)
    warnings: tuple[str, ...] = ()
    """The session's warnings (PROTOCOL §8.3): missing data, synthetic data, short range."""
    currency: str = ""
    """The currency the capital is counted in (`mixed` when the symbols' differ)."""
    run: RunInfo | None = None

    @property
    def fills(self) -> int:
        """Execution reports that filled something (`executions` of §4.3's results)."""
        return sum(1 for r in self.executions if r.fill_quantity > 0)

    @property
    def synthetic_symbols(self) -> list[str]:
        """The symbols that ran on synthetic bars (their session warning says so)."""
        return synthetic_symbols(self.warnings)

    def to_pandas(self) -> Any:
        """trades, executions, equity (daily) as DataFrames and stats as a Series, in a
        `PandasResults` named tuple. Needs pandas: `pip install simutrador[pandas]`."""
        from entrypoints.export import bar_seconds
        from entrypoints.sdk.frames import to_pandas

        return to_pandas(self, bar_seconds(self))

    def _repr_html_(self) -> str:
        """Jupyter shows results as the report: settings, stats, charts and trades."""
        from entrypoints.report import render_fragment

        return render_fragment(self)


SYNTHETIC_WARNING = " runs on synthetic data"
"""How a session warning names a symbol on synthetic bars (PROTOCOL §8.3, item 5)."""


def synthetic_symbols(warnings: Sequence[str]) -> list[str]:
    return [w.split(SYNTHETIC_WARNING, 1)[0] for w in warnings if SYNTHETIC_WARNING in w]


ENGINE_SETTINGS = (
    "commission_per_share",
    "commission_pct",
    "commission_min",
    "slippage_bps",
    "max_volume_pct",
)
"""The decimal engine settings of PROTOCOL §4.1; `allow_short` is the one flag."""

EngineSettingValue = Decimal | int | str | bool | None


def session_request(
    symbols: Sequence[str],
    start: str,
    end: str,
    capital: Decimal,
    timeframe: str,
    engine_settings: Mapping[str, EngineSettingValue] | None,
) -> CreateSessionData:
    """The `create_session` a run asks for, whichever driver carries it."""
    settings = dict(engine_settings or {})
    unknown = sorted(set(settings) - {"allow_short", *ENGINE_SETTINGS})
    if unknown:
        raise TypeError(
            f"unknown engine setting(s) {', '.join(unknown)}; known: allow_short, "
            + ", ".join(ENGINE_SETTINGS)
        )
    request = CreateSessionData(
        symbols=list(symbols),
        start_date=start,
        end_date=end,
        initial_capital=capital,
        timeframe=timeframe,
        allow_short=bool(settings.pop("allow_short", False)),
    )
    for name, value in settings.items():
        if value is not None:
            setattr(request, name, Decimal(str(value)))
    return request


ProgressCallback = Callable[[int, int, datetime], None]
"""(ticks done, total ticks, simulated time), called every so often during a run."""


async def drive(
    strategy: Strategy,
    driver: SimulationDriver,
    *,
    params: Mapping[str, Any] | None = None,
    history_size: int = DEFAULT_HISTORY_SIZE,
    on_progress: ProgressCallback | None = None,
    progress_every: int = 1000,
) -> BacktestResults:
    """Run `strategy` to the end of the simulation `driver` starts."""
    began = time.perf_counter()
    started, outcome = await driver.start()
    ctx = Context(started.symbols, params, history_size)
    ctx.session_id = started.session_id
    ctx._add_bars_history(started.history)
    executions: list[ExecutionReportData] = []
    rejections: list[Rejection] = []
    prices = {symbol: PriceTrack() for symbol in started.symbols}
    strategy.on_start(ctx)
    while True:
        for order_id, (code, message) in outcome.rejected.items():
            rejections.append(Rejection(order_id, code, message))
            strategy.on_reject(ctx, order_id, code, message)
        for report in outcome.reports:
            executions.append(report)
            ctx._apply_report(report)
            strategy.on_fill(ctx, report)
        tick = outcome.tick
        if tick is None:
            break
        ctx._mark(tick.sim_time, tick.cash, tick.equity)
        ctx._add_bars(tick.bars)
        for symbol, bar in tick.bars.items():
            prices[symbol].add(tick.time, bar)
        strategy.on_bar(ctx, tick.bars)
        if on_progress is not None and tick.sequence_id % progress_every == 0:
            on_progress(tick.sequence_id, started.total_ticks, tick.sim_time)
        orders, cancels = ctx._take_orders()
        outcome = await driver.acknowledge(tick.sequence_id, orders, cancels)
    final = await driver.results()
    results = BacktestResults(
        session_id=started.session_id,
        metrics=final.metrics,
        trades=final.trades,
        equity_curve=final.equity_curve,
        executions=executions,
        total_ticks=started.total_ticks,
        wall_time_ms=int((time.perf_counter() - began) * 1000),
        prices=prices,
        plots=ctx._plots,
        rejections=rejections,
        warnings=started.warnings,
        currency=started.currency,
    )
    strategy.on_finish(ctx, results)
    return results


def run_backtest(
    strategy: Strategy | type[Strategy],
    symbols: Sequence[str] | str,
    start: DateLike,
    end: DateLike,
    capital: Decimal | int | str,
    timeframe: str = "1d",
    *,
    params: Mapping[str, Any] | None = None,
    server: str | None = None,
    api_key: str | None = None,
    auth: AuthClient | None = None,
    warmup_bars: int = 0,
    history_size: int = DEFAULT_HISTORY_SIZE,
    on_progress: ProgressCallback | None = None,
    **engine_settings: Decimal | int | str | bool | None,
) -> BacktestResults:
    """Run a strategy over the bars of `symbols` from `start` to `end` (inclusive days).

    Engine settings (PROTOCOL.md §4.1) are keyword arguments: `commission_per_share`,
    `commission_pct`, `commission_min`, `slippage_bps`, `max_volume_pct`, `allow_short`.
    With `server=None` the engine runs in this process on the local bar store
    (SIMUTRADOR_HOME; the synthetic sample is written first if it holds no bars). With
    `server="http://host:port"` it runs on that server (the key: `api_key`, else
    SIMUTRADOR_API_KEY; or a ready `auth` client); only orders leave this process, and the
    results are the same."""
    instance = strategy() if isinstance(strategy, type) else strategy
    universe = [symbols] if isinstance(symbols, str) else list(symbols)
    run_args = (universe, _iso(start), _iso(end), Decimal(str(capital)), timeframe)
    driver: SimulationDriver
    where = "in process, on the local bar store"
    if server is not None or auth is not None:
        from entrypoints.sdk.remote import RemoteDriver

        client = auth if auth is not None else AuthClient(server, api_key)
        where = f"on the server {client.server_url}"
        driver = RemoteDriver(
            client, *run_args, warmup_bars=warmup_bars, engine_settings=engine_settings
        )
    else:
        from entrypoints.sdk.local import LocalDriver  # the in-process engine (server code)

        driver = LocalDriver(*run_args, warmup_bars=warmup_bars, engine_settings=engine_settings)

    async def run() -> BacktestResults:
        try:
            return await drive(
                instance,
                driver,
                params=params,
                history_size=history_size,
                on_progress=on_progress,
            )
        finally:
            await driver.close()

    results = asyncio.run(run())
    info = RunInfo(
        strategy=type(instance).__name__,
        symbols=tuple(universe),
        start=run_args[1],
        end=run_args[2],
        timeframe=timeframe,
        capital=run_args[3],
        engine_settings={k: v for k, v in engine_settings.items() if v is not None},
        params=dict(params or {}),
        warmup_bars=warmup_bars,
        where=where,
    )
    return dataclasses.replace(results, run=info)


def _iso(value: DateLike) -> str:
    return value if isinstance(value, str) else value.isoformat()
