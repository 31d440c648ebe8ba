"""The in-process driver: the strategy loop calls the engine's use cases directly, on the
local bar store, with no server and no socket. (Server-side code, imported on demand.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from application.principal import Principal
from application.simulation import Simulation, Step
from domain.broker import ExecutionReport
from domain.errors import DomainError
from domain.limits import PLAN_DEFAULTS, Plan
from entrypoints.container import Container, in_process_container
from entrypoints.protocol import messages as m
from entrypoints.protocol.dispatcher import session_params
from entrypoints.protocol.engine import order_request, report_data, results_data
from entrypoints.sdk.driver import (
    EngineSettingValue,
    Outcome,
    Started,
    TickView,
    session_request,
)

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
