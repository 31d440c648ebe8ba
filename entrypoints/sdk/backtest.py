"""`run_backtest`: one strategy loop over a driver — in process (the engine called directly)
or, later, a server — so every transport gives the same results."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from entrypoints.protocol.messages import ExecutionReportData
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.driver import DEFAULT_WINDOW, SimulationDriver
from entrypoints.sdk.driver import ENGINE_SETTINGS as ENGINE_SETTINGS
from entrypoints.sdk.driver import EngineSettingValue as EngineSettingValue
from entrypoints.sdk.driver import Outcome as Outcome
from entrypoints.sdk.driver import ProgressCallback as ProgressCallback
from entrypoints.sdk.driver import Started as Started
from entrypoints.sdk.driver import TickView as TickView
from entrypoints.sdk.driver import session_request as session_request
from entrypoints.sdk.plots import PriceRecorder, RunInfo
from entrypoints.sdk.results import SYNTHETIC_WARNING as SYNTHETIC_WARNING
from entrypoints.sdk.results import BacktestResults as BacktestResults
from entrypoints.sdk.results import PriceTrack as PriceTrack
from entrypoints.sdk.results import Rejection as Rejection
from entrypoints.sdk.strategy import DEFAULT_HISTORY_SIZE, Context, Strategy

DateLike = date | datetime | str


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
    ctx._peek = getattr(driver, "peek", None)  # bars received ahead (windows), if any
    executions: list[ExecutionReportData] = []
    rejections: list[Rejection] = []
    prices = PriceRecorder(started.symbols)
    strategy.on_start(ctx)
    ctx._declaring = False
    on_bar, on_fill, on_reject = strategy.on_bar, strategy.on_fill, strategy.on_reject
    refused: Mapping[str, tuple[str, str]] = {}
    while True:  # once per bar: what most bars do not need is skipped, not made empty
        if refused or outcome.rejected:
            # Orders refused before sending (numbers out of bounds) first, then the engine's.
            for order_id, (code, message) in {**refused, **outcome.rejected}.items():
                rejections.append(Rejection(order_id, code, message))
                on_reject(ctx, order_id, code, message)
        if outcome.reports:
            for report in outcome.reports:
                executions.append(report)
                ctx._apply_report(report)
                on_fill(ctx, report)
        tick = outcome.tick
        if tick is None:
            break
        bars = tick.bars
        ctx._mark(tick.sim_time, tick.cash, tick.equity)
        ctx._add_bars(bars)
        prices.add(tick.time, bars)
        on_bar(ctx, bars)
        if on_progress is not None and tick.sequence_id % progress_every == 0:
            on_progress(tick.sequence_id, started.total_ticks, tick.sim_time)
        orders, cancels = ctx._take_orders()
        refused = ctx._take_refused()
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
        indicators=ctx._indicator_tracks({s: prices.times(s) for s in prices}),
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
    window: int | None = None,
    **engine_settings: Decimal | int | str | bool | None,
) -> BacktestResults:
    """Run a strategy over the bars of `symbols` from `start` to `end` (inclusive days).

    Engine settings (PROTOCOL.md §4.1) are keyword arguments: `commission_per_share`,
    `commission_pct`, `commission_min`, `slippage_bps`, `max_volume_pct`, `allow_short`.
    With `server=None` the engine runs in this process on the local bar store
    (SIMUTRADOR_HOME; the synthetic sample is written first if it holds no bars), stepped
    directly by the strategy loop; what it sets up (catalog, bar store, calendars) is kept
    for the next run in the same process. With
    `server="http://host:port"` it runs on that server (the key: `api_key`, else
    SIMUTRADOR_API_KEY; or a ready `auth` client); only orders leave this process, and the
    results are the same. Remotely, bars come `window` at a time (default 1,024, fewer when
    a frame holds fewer): a round trip per bar on which the strategy places or cancels
    something, not per bar; `window=1` asks for one bar at a time (PROTOCOL §7.14)."""
    instance = strategy() if isinstance(strategy, type) else strategy
    universe = [symbols] if isinstance(symbols, str) else list(symbols)
    run_args = (universe, _iso(start), _iso(end), Decimal(str(capital)), timeframe)
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
    )
    if server is None and auth is None:
        from entrypoints.sdk.local import run_in_process  # the engine itself (server code)

        results = run_in_process(
            instance,
            session_request(*run_args, engine_settings),
            params=params,
            warmup_bars=warmup_bars,
            history_size=history_size,
            on_progress=on_progress,
        )
        return dataclasses.replace(results, run=info)
    from entrypoints.sdk.remote import RemoteDriver

    client = auth if auth is not None else AuthClient(server, api_key)
    driver = RemoteDriver(
        client,
        *run_args,
        warmup_bars=warmup_bars,
        engine_settings=engine_settings,
        window=DEFAULT_WINDOW if window is None else window,
    )

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
    return dataclasses.replace(
        results, run=dataclasses.replace(info, where=f"on the server {client.server_url}")
    )


def _iso(value: DateLike) -> str:
    return value if isinstance(value, str) else value.isoformat()
