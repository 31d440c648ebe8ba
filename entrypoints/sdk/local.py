"""The engine in the user's own process, on the local bar store, with no server and no
socket (server-side code, imported on demand):

- `run_in_process`, what `run_backtest` runs: the strategy loop steps the `Simulation`
  itself (no coroutine, no wire message per bar); the strategy reads the bar, its history,
  cash and equity straight off the simulation, decoded only when read. Setup is paid once
  per process: the container (catalog, bar store, services) is kept for the next run.
- `LocalDriver`: the same engine behind the `SimulationDriver` protocol, for `drive`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from dependency_injector import providers

from application.principal import Principal
from application.simulation import Simulation, SimulationResults, Step
from application.simulation.columns import COLUMNS, DecodedColumn
from domain.bars import Bar
from domain.broker import ExecutionReport
from domain.errors import DomainError
from domain.limits import PLAN_DEFAULTS, Plan
from domain.session import SimulationSession
from entrypoints.container import Container, in_process_container
from entrypoints.protocol import messages as m
from entrypoints.protocol.dispatcher import session_params
from entrypoints.protocol.engine import (
    check_batch_size,
    order_request,
    report_data,
    results_data,
)
from entrypoints.sdk.driver import (
    EngineSettingValue,
    Outcome,
    ProgressCallback,
    Started,
    TickView,
    session_request,
)
from entrypoints.sdk.indicators import (
    Indicator,
    IndicatorFunction,
    check_causal,
    evaluate,
    fields_of,
)
from entrypoints.sdk.plots import PriceTracks
from entrypoints.sdk.results import BacktestResults, Rejection
from entrypoints.sdk.strategy import DEFAULT_HISTORY_SIZE, Context, Strategy
from entrypoints.settings import Settings

LOCAL_PRINCIPAL = Principal("local", Plan.ENTERPRISE, PLAN_DEFAULTS[Plan.ENTERPRISE])
"""Whoever runs a backtest in their own process: the largest plan, nothing shared."""


class LocalDriver:
    """`SimulationDriver` over the application layer of a container (by default one built
    from the SIMUTRADOR_* environment: the bars in SIMUTRADOR_HOME, sessions always in
    memory, whatever SIMUTRADOR_STORAGE says)."""

    def __init__(
        self,
        symbols: Sequence[str],
        start: str,
        end: str,
        capital: Decimal,
        timeframe: str = "1d",
        *,
        warmup_bars: int = 0,
        engine_settings: Mapping[str, EngineSettingValue] | None = None,
        container: Container | None = None,
    ) -> None:
        self._container = container or in_process_container()
        self._request = session_request(symbols, start, end, capital, timeframe, engine_settings)
        self._warmup = warmup_bars
        self._simulation: Simulation | None = None
        self._session_id = ""

    async def start(self) -> tuple[Started, Outcome]:
        container = self._container
        await container.market_data_service().seed_sample_if_empty()
        session = await container.session_service().create(
            LOCAL_PRINCIPAL, session_params(self._request, LOCAL_PRINCIPAL)
        )
        self._session_id = session.id
        simulation = await container.simulation_service().start(
            LOCAL_PRINCIPAL, session.id, self._warmup
        )
        self._simulation = simulation
        started = Started(
            session.id,
            simulation.symbols,
            simulation.total_ticks,
            simulation.history(),
            tuple(session.warnings),
            session.currency,
        )
        return started, self._outcome(simulation.advance())

    async def acknowledge(
        self, sequence_id: int, orders: Sequence[m.OrderData], cancels: Sequence[str]
    ) -> Outcome:
        simulation = self._running()
        if not orders and not cancels:  # the common case, kept lean
            simulation.acknowledge(sequence_id)
            if simulation.done_stepping:
                return Outcome(self._reports(simulation.finish()), None)
            return self._outcome(simulation.advance())
        check_batch_size(orders)  # as over the WebSocket
        requests = []
        rejected: dict[str, tuple[str, str]] = {}
        for order in orders:
            try:
                requests.append(order_request(order))
            except DomainError as exc:
                rejected[order.order_id] = (exc.code, exc.message)
        batch = simulation.acknowledge(sequence_id, requests, cancels)
        rejected.update((oid, (e.code, e.message)) for oid, e in batch.rejected.items())
        reports = self._reports(batch.reports)
        if simulation.done_stepping:
            return Outcome(reports + self._reports(simulation.finish()), None, rejected)
        step = self._outcome(simulation.advance())
        return Outcome([*reports, *step.reports], step.tick, rejected)

    def _reports(self, reports: Sequence[ExecutionReport]) -> list[m.ExecutionReportData]:
        return [report_data(self._session_id, r) for r in reports]

    async def results(self) -> m.SimulationResultsData:
        results = await self._container.simulation_service().complete(
            LOCAL_PRINCIPAL, self._session_id
        )
        return results_data(self._session_id, results)

    async def close(self) -> None:
        if self._session_id:
            await self._container.simulation_service().forget(self._session_id)

    def _running(self) -> Simulation:
        if self._simulation is None:
            raise RuntimeError("the simulation has not started")
        return self._simulation

    def _outcome(self, step: Step) -> Outcome:
        tick = step.tick
        when = tick.sim_time
        view = TickView(
            tick.sequence_id,
            tick.time,
            when,
            tick.bars,
            tick.equity,
            tick.cash,
            tick.is_last,
        )
        return Outcome(self._reports(step.reports) if step.reports else [], view)


# ---------------------------------------------------------------------- the in-process loop

_CONTAINERS: list[tuple[Settings, Container]] = []
_CONTAINERS_HELD = 4

_UNLIMITED = dataclasses.replace(
    PLAN_DEFAULTS[Plan.ENTERPRISE],
    max_active_sessions=1_000_000,
    sessions_per_hour=1_000_000_000,
    max_running_simulations=1_000_000,
)
RUNNER_PRINCIPAL = Principal("local", Plan.ENTERPRISE, _UNLIMITED)
"""Who runs backtests in their own process with a container kept across runs: no limit on
how many sessions a sweep makes an hour (each is deleted once run)."""


_LOOP: list[asyncio.AbstractEventLoop] = []


def _event_loop() -> asyncio.AbstractEventLoop:
    """The loop the container's services run on in this process, kept across runs (with
    its thread pool): only setup and results are awaited, never a bar."""
    if not _LOOP or _LOOP[0].is_closed():
        _LOOP[:] = [asyncio.new_event_loop()]
    return _LOOP[0]


def shared_container() -> Container:
    """The in-process container for the settings in the environment now, built once per
    process and kept (a sweep runs hundreds of backtests per worker)."""
    # Memory storage, and no Prometheus registry: a run in process serves no `/metrics`.
    settings = dataclasses.replace(Settings.from_env(), storage="memory", metrics=False)
    for known, container in _CONTAINERS:
        if known == settings:
            return container
    container = Container()
    container.settings.override(providers.Object(settings))
    _CONTAINERS.append((settings, container))
    if len(_CONTAINERS) > _CONTAINERS_HELD:
        _CONTAINERS.pop(0)
    return container


class TickBars(Mapping[str, Bar]):
    """symbol → bar of the symbols with a bar on a tick, each decoded when read."""

    __slots__ = ("_sequence", "_simulation", "_symbols")

    def __init__(self, simulation: Simulation, sequence: int) -> None:
        self._simulation = simulation
        self._sequence = sequence
        self._symbols = simulation.present

    def __getitem__(self, symbol: str) -> Bar:
        if symbol not in self._symbols:
            raise KeyError(symbol)
        return self._simulation.bar_at(symbol, self._sequence)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._symbols

    def __iter__(self) -> Iterator[str]:
        return iter(self._symbols)

    def __len__(self) -> int:
        return len(self._symbols)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class LocalContext(Context):
    """The context of a strategy run in process: cash, equity, time and history are read
    off the simulation when asked for, not copied on every bar."""

    def __init__(
        self, simulation: Simulation, params: Mapping[str, Any] | None, history_size: int
    ) -> None:
        super().__init__(simulation.symbols, params, history_size)
        self._simulation = simulation
        self._cursors = simulation.cursors  # live: bars delivered per symbol
        self._columns: dict[tuple[str, str], DecodedColumn] = {}

    @property
    def cash(self) -> Decimal:
        simulation = self._simulation
        return simulation.cash if simulation.sequence else Decimal(0)

    @property
    def equity(self) -> Decimal:
        simulation = self._simulation
        return simulation.equity if simulation.sequence else Decimal(0)

    @property
    def time(self) -> datetime | None:
        return self._simulation.sim_time

    def _make_indicator(
        self,
        name: str,
        symbol: str,
        function: IndicatorFunction,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Indicator:
        """In process: computed once over every bar of the run, after a check that the
        function does not look ahead."""
        import numpy as np

        series = self._simulation.series[symbol]
        inputs = {}
        for name_of_field in fields_of(args, kwargs):
            raw = np.frombuffer(getattr(series, COLUMNS[name_of_field]), dtype=np.int64)
            scale = series.volume_scale if name_of_field == "volume" else series.price_scale
            inputs[name_of_field] = raw / float(10**scale)  # correctly rounded, as float(Decimal)
        whole = evaluate(name, function, args, kwargs, inputs, len(series))
        check_causal(name, function, args, kwargs, inputs, whole)
        return Indicator(name, symbol, self._simulation.cursors, whole)

    def history(self, symbol: str, n: int, field: str = "close") -> list[Decimal]:
        column = self._columns.get((symbol, field))
        if column is None:
            self._check_history(symbol, 0, field)
            column = self._columns[symbol, field] = self._simulation.column(symbol, field)
        if n > self._history_size:
            self._check_history(symbol, n, field)
        return column.window(self._cursors[symbol], n) if n > 0 else []


def run_in_process(
    strategy: Strategy,
    request: m.CreateSessionData,
    *,
    params: Mapping[str, Any] | None = None,
    warmup_bars: int = 0,
    history_size: int = DEFAULT_HISTORY_SIZE,
    on_progress: ProgressCallback | None = None,
    progress_every: int = 1000,
    container: Container | None = None,
) -> BacktestResults:
    """Run `strategy` over the simulation `request` asks for, in this process."""
    began = time.perf_counter()
    container = container or shared_container()
    principal = RUNNER_PRINCIPAL
    sessions = container.session_service()
    service = container.simulation_service()

    created: list[SimulationSession] = []

    async def start() -> Simulation:
        await container.market_data_service().seed_sample_if_empty()
        session = await sessions.create(principal, session_params(request, principal))
        created.append(session)
        try:
            return await service.start(principal, session.id, warmup_bars)
        except BaseException:
            await sessions.delete(principal, session.id)
            raise

    async def complete(session_id: str) -> SimulationResults:
        return await service.complete(principal, session_id, keep=False)

    async def forget(session_id: str) -> None:
        await service.forget(session_id)
        with contextlib.suppress(DomainError):
            await sessions.delete(principal, session_id)

    run = _event_loop().run_until_complete
    simulation = run(start())
    session_id = simulation.session_id
    try:
        ctx = LocalContext(simulation, params, history_size)
        rejections: list[Rejection] = []
        executions = _loop(strategy, ctx, simulation, on_progress, progress_every, rejections)
        final = results_data(session_id, run(complete(session_id)))
    finally:
        run(forget(session_id))
    prices = _prices(simulation)
    results = BacktestResults(
        session_id=session_id,
        metrics=final.metrics,
        trades=final.trades,
        equity_curve=final.equity_curve,
        executions=executions,
        total_ticks=simulation.total_ticks,
        wall_time_ms=int((time.perf_counter() - began) * 1000),
        prices=prices,
        indicators=ctx._indicator_tracks({s: prices.times(s) for s in prices}),
        plots=ctx._plots,
        rejections=rejections,
        warnings=tuple(created[0].warnings),
        currency=created[0].currency,
    )
    strategy.on_finish(ctx, results)
    return results


def _loop(
    strategy: Strategy,
    ctx: LocalContext,
    simulation: Simulation,
    on_progress: ProgressCallback | None,
    progress_every: int,
    rejections: list[Rejection],
) -> list[m.ExecutionReportData]:
    """The strategy over every tick, in the order `drive` keeps: refusals, then reports
    (cancels, then the next bar's fills), then the bar."""
    session_id = simulation.session_id
    executions: list[m.ExecutionReportData] = []
    total = simulation.total_ticks
    step, acknowledge = simulation.step, simulation.acknowledge
    on_bar, on_fill, on_reject = strategy.on_bar, strategy.on_fill, strategy.on_reject

    def deliver(reports: Sequence[ExecutionReport]) -> None:
        for report in reports:
            data = report_data(session_id, report)
            executions.append(data)
            ctx._apply_report(data)
            on_fill(ctx, data)

    ctx.session_id = session_id
    strategy.on_start(ctx)
    ctx._declaring = False
    reports: Sequence[ExecutionReport] = step() if total else ()
    sequence = 1
    while True:
        if reports:
            deliver(reports)
        on_bar(ctx, TickBars(simulation, sequence))
        if on_progress is not None and sequence % progress_every == 0:
            sim_time = simulation.sim_time
            assert sim_time is not None
            on_progress(sequence, total, sim_time)
        if ctx._pending or ctx._cancels or ctx._refused:
            # Orders refused before sending (numbers out of bounds) first, as `drive` does.
            rejected: dict[str, tuple[str, str]] = ctx._take_refused()
            orders, cancels = ctx._take_orders()
            requests = []
            for order in orders:
                try:
                    # (the SDK refused any number out of bounds before queueing it)
                    requests.append(order_request(order, bounds_checked=True))
                except DomainError as exc:
                    rejected[order.order_id] = (exc.code, exc.message)
            batch = acknowledge(sequence, requests, cancels)
            rejected.update((oid, (e.code, e.message)) for oid, e in batch.rejected.items())
            for order_id, (code, message) in rejected.items():
                rejections.append(Rejection(order_id, code, message))
                on_reject(ctx, order_id, code, message)
            if batch.reports:
                deliver(batch.reports)
        elif sequence < total:
            reports = step(True)  # nothing sent: the ack and the next step at once
            sequence += 1
            continue
        else:
            acknowledge(sequence)
        if sequence >= total:
            deliver(simulation.finish())
            return executions
        reports = step()
        sequence += 1


def _prices(simulation: Simulation) -> PriceTracks:
    """The bars the strategy was shown, as `drive` collects them bar by bar (read from the
    series once the run is over, and only when something reads them)."""
    return PriceTracks(
        {
            symbol: (series, simulation.first_tradable[symbol], simulation.cursor(symbol))
            for symbol, series in simulation.series.items()
        }
    )
