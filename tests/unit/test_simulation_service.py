"""SimulationService over the real session service and in-memory bars: start (→ running),
warm-up bounds, lookup, complete (→ completed, results kept), fail (→ error), forget."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from application.sessions import SessionService
from application.simulation import MAX_WARMUP_BARS, Simulation, SimulationService
from domain.bars import Timeframe
from domain.errors import (
    AccessDenied,
    DataUnavailable,
    InvalidState,
    InvalidSymbol,
    SessionNotFound,
    ValidationFailed,
)
from domain.exchanges import daily_close, exchange_hours
from domain.limits import Plan
from domain.orders import OrderRequest, OrderSide, OrderType
from domain.session import SessionState
from domain.symbols import AssetClass
from tests.fakes import (
    DEFAULT_INSTRUMENTS,
    FakeClock,
    InMemoryBarStore,
    InMemoryCatalog,
    make_service,
    make_validator,
    principal,
    session_params,
)

ALICE = principal(Plan.PROFESSIONAL, "alice")
BOB = principal(Plan.PROFESSIONAL, "bob")
NEW_YORK = exchange_hours("NASDAQ", AssetClass.STOCK)
# January 2023 has 20 NYSE trading days (Jan 2 and Jan 16 are holidays).
START, END, JANUARY_DAYS = "2023-01-03", "2023-01-31", 20


class World:
    """A session service and a simulation service sharing one catalog and one bar store."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.catalog = InMemoryCatalog()
        self.store = InMemoryBarStore.with_defaults()
        self.sessions: SessionService = make_service(
            clock=self.clock,
            catalog=self.catalog,
            validator=make_validator(self.catalog, self.clock, store=self.store),
        )
        self.simulations = SimulationService(self.sessions, self.catalog, self.store)

    async def ready_session(
        self, symbols: tuple[str, ...] = ("AAPL",), owner: str = "alice"
    ) -> str:
        who = ALICE if owner == "alice" else BOB
        session = await self.sessions.create(who, session_params(symbols, START, END))
        assert session.state is SessionState.READY
        return session.id

    async def state_of(self, session_id: str) -> SessionState:
        return (await self.sessions.get(ALICE, session_id)).state


@pytest.fixture
def world() -> World:
    return World()


def step_through(simulation: Simulation) -> None:
    while not simulation.done_stepping:
        simulation.acknowledge(simulation.advance().tick.sequence_id)


# ---------------------------------------------------------------- start


async def test_start_runs_the_session_over_its_stored_bars(world: World) -> None:
    session_id = await world.ready_session(("AAPL", "BTC-USD"))
    simulation = await world.simulations.start(ALICE, session_id)
    assert await world.state_of(session_id) is SessionState.RUNNING
    assert simulation.session_id == session_id
    assert simulation.symbols == ("AAPL", "BTC-USD")
    # Crypto trades every day and closes at midnight UTC, stocks at 16:00 New York: the
    # ticks are the union of both calendars' closes.
    assert len(simulation.series["AAPL"]) == JANUARY_DAYS
    assert len(simulation.series["BTC-USD"]) == 29
    assert simulation.total_ticks == JANUARY_DAYS + 29
    assert simulation.first_tradable == {"AAPL": 0, "BTC-USD": 0}
    assert simulation.bar("AAPL", 0).time == daily_close(date(2023, 1, 3), NEW_YORK)
    assert await world.simulations.simulation(ALICE, session_id) is simulation


async def test_a_second_start_is_refused_and_keeps_the_first_simulation(world: World) -> None:
    session_id = await world.ready_session()
    first = await world.simulations.start(ALICE, session_id)
    with pytest.raises(InvalidState) as refused:
        await world.simulations.start(ALICE, session_id)
    assert refused.value.code == "INVALID_STATE"
    assert refused.value.details["state"] == "running"
    assert refused.value.details["allowed_from"] == ["ready"]
    assert await world.simulations.simulation(ALICE, session_id) is first


async def test_another_users_session_cannot_be_started_or_driven(world: World) -> None:
    session_id = await world.ready_session()
    with pytest.raises(AccessDenied) as refused:
        await world.simulations.start(BOB, session_id)
    assert refused.value.code == "ACCESS_DENIED"
    assert await world.state_of(session_id) is SessionState.READY
    await world.simulations.start(ALICE, session_id)
    with pytest.raises(AccessDenied):
        await world.simulations.simulation(BOB, session_id)
    with pytest.raises(AccessDenied):
        await world.simulations.complete(BOB, session_id)
    with pytest.raises(AccessDenied):
        await world.simulations.fail(BOB, session_id, "not mine")
    assert await world.state_of(session_id) is SessionState.RUNNING


async def test_an_unknown_session_is_not_found(world: World) -> None:
    with pytest.raises(SessionNotFound):
        await world.simulations.start(ALICE, "sess_missing")


@pytest.mark.parametrize("warmup", [-1, MAX_WARMUP_BARS + 1])
async def test_warmup_bars_out_of_bounds_are_refused_and_change_nothing(
    world: World, warmup: int
) -> None:
    session_id = await world.ready_session()
    with pytest.raises(ValidationFailed) as refused:
        await world.simulations.start(ALICE, session_id, warmup_bars=warmup)
    assert refused.value.details["field"] == "warmup_bars"
    assert await world.state_of(session_id) is SessionState.READY
    with pytest.raises(InvalidState):
        await world.simulations.simulation(ALICE, session_id)


async def test_warmup_bars_come_before_the_start_and_are_not_ticks(world: World) -> None:
    session_id = await world.ready_session()
    simulation = await world.simulations.start(ALICE, session_id, warmup_bars=5)
    assert simulation.first_tradable == {"AAPL": 5}
    assert simulation.total_ticks == JANUARY_DAYS
    # The five NYSE trading days before 2023-01-03 (Dec 26 was a holiday).
    warm_days = [date(2022, 12, d) for d in (23, 27, 28, 29, 30)]
    assert [simulation.bar("AAPL", i).time for i in range(5)] == [
        daily_close(d, NEW_YORK) for d in warm_days
    ]
    assert len(simulation.bar_window("AAPL", 100)) == 5
    tick = simulation.advance().tick
    assert tick.sim_time == daily_close(date(2023, 1, 3), NEW_YORK)


async def test_the_largest_warmup_is_accepted_and_takes_what_exists(world: World) -> None:
    session_id = await world.ready_session()
    simulation = await world.simulations.start(ALICE, session_id, warmup_bars=MAX_WARMUP_BARS)
    first_close = int(daily_close(date(2023, 1, 3), NEW_YORK).timestamp())
    before = await world.store.read(["AAPL"], Timeframe.D1, 0, first_close - 1)
    # AAPL's default bars start in 1990: fewer than 10,000 trading days before 2023.
    assert 8_000 < len(before["AAPL"]) < MAX_WARMUP_BARS
    assert simulation.first_tradable == {"AAPL": len(before["AAPL"])}
    assert simulation.bar("AAPL", 0).time == daily_close(date(1990, 1, 2), NEW_YORK)
    assert simulation.total_ticks == JANUARY_DAYS


async def test_a_session_whose_bars_vanished_is_data_unavailable(world: World) -> None:
    session_id = await world.ready_session()
    await world.store.remove("AAPL")
    with pytest.raises(DataUnavailable) as refused:
        await world.simulations.start(ALICE, session_id)
    assert refused.value.details == {"symbol": "AAPL", "timeframe": "1d"}
    assert await world.state_of(session_id) is SessionState.READY


async def test_a_symbol_gone_from_the_catalog_is_invalid(world: World) -> None:
    session_id = await world.ready_session(("AAPL", "MSFT"))
    smaller = InMemoryCatalog(i for i in DEFAULT_INSTRUMENTS if i.symbol.ticker != "MSFT")
    simulations = SimulationService(world.sessions, smaller, world.store)
    with pytest.raises(InvalidSymbol) as refused:
        await simulations.start(ALICE, session_id)
    assert refused.value.invalid_symbols == ("MSFT",)
    assert await world.state_of(session_id) is SessionState.READY


async def test_build_makes_a_fresh_simulation_without_a_state_change(world: World) -> None:
    session_id = await world.ready_session()
    session = await world.sessions.get(ALICE, session_id)
    built = await world.simulations.build(session, warmup_bars=2)
    assert (built.total_ticks, built.first_tradable) == (JANUARY_DAYS, {"AAPL": 2})
    assert built.initial_capital == session.initial_capital
    assert await world.state_of(session_id) is SessionState.READY
    with pytest.raises(InvalidState):
        await world.simulations.simulation(ALICE, session_id)


# ---------------------------------------------------------------- complete and results


async def test_results_are_refused_until_the_session_completes(world: World) -> None:
    session_id = await world.ready_session()
    with pytest.raises(InvalidState) as before_start:
        await world.simulations.results(ALICE, session_id)
    assert before_start.value.details["state"] == "ready"
    simulation = await world.simulations.start(ALICE, session_id)
    with pytest.raises(InvalidState) as running:
        await world.simulations.results(ALICE, session_id)
    assert running.value.details["state"] == "running"
    assert running.value.details["allowed_from"] == ["completed"]
    simulation.acknowledge(simulation.advance().tick.sequence_id)
    with pytest.raises(InvalidState):  # ticks are left: the simulation cannot finish yet
        await world.simulations.complete(ALICE, session_id)
    assert await world.state_of(session_id) is SessionState.RUNNING


async def test_complete_moves_to_completed_and_keeps_the_results(world: World) -> None:
    session_id = await world.ready_session()
    simulation = await world.simulations.start(ALICE, session_id)
    simulation.advance()
    buy = OrderRequest("buy", "AAPL", OrderSide.BUY, OrderType.MARKET, quantity=Decimal(10))
    simulation.acknowledge(1, [buy])
    step_through(simulation)
    results = await world.simulations.complete(ALICE, session_id)
    assert await world.state_of(session_id) is SessionState.COMPLETED
    assert simulation.finished
    assert results.total_ticks == JANUARY_DAYS
    assert results.executions == 1
    assert len(results.equity_curve) == JANUARY_DAYS
    assert results.metrics.final_equity == simulation.broker.equity
    assert await world.simulations.results(ALICE, session_id) is results
    with pytest.raises(AccessDenied):
        await world.simulations.results(BOB, session_id)
    with pytest.raises(InvalidState):  # no longer running
        await world.simulations.simulation(ALICE, session_id)
    with pytest.raises(InvalidState):
        await world.simulations.complete(ALICE, session_id)


async def test_fail_moves_to_error_with_the_reason_and_drops_the_simulation(
    world: World,
) -> None:
    session_id = await world.ready_session()
    await world.simulations.start(ALICE, session_id)
    await world.simulations.fail(ALICE, session_id, "strategy crashed")
    session = await world.sessions.get(ALICE, session_id)
    assert session.state is SessionState.ERROR
    assert session.error_reason == "strategy crashed"
    with pytest.raises(InvalidState) as refused:
        await world.simulations.simulation(ALICE, session_id)
    assert refused.value.details["state"] == "error"
    with pytest.raises(InvalidState):
        await world.simulations.results(ALICE, session_id)
    with pytest.raises(InvalidState):
        await world.simulations.start(ALICE, session_id)


async def test_forget_drops_a_running_simulation(world: World) -> None:
    session_id = await world.ready_session()
    await world.simulations.start(ALICE, session_id)
    await world.simulations.forget(session_id)
    with pytest.raises(InvalidState):
        await world.simulations.simulation(ALICE, session_id)


async def test_forget_drops_kept_results(world: World) -> None:
    session_id = await world.ready_session()
    step_through(await world.simulations.start(ALICE, session_id))
    await world.simulations.complete(ALICE, session_id)
    await world.simulations.forget(session_id)
    with pytest.raises(InvalidState) as refused:
        await world.simulations.results(ALICE, session_id)
    assert refused.value.details["state"] == "completed"
    await world.simulations.forget(session_id)  # forgetting twice is harmless
    await world.simulations.forget("sess_never_existed")
