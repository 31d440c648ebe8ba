"""Simulations over the SQLite storage survive the process: a new set of services on the same
file (what a restart, `kill -9` included, leaves: every write is committed before a reply)
brings back each running simulation paused (`restart`) at exactly the tick its client last
saw, and resuming it ends with the results of an uninterrupted run."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import pytest

from adapters.storage.sqlite import (
    SqliteDatabase,
    SqliteRateLimiter,
    SqliteSessionRepository,
    SqliteSimulationCheckpoints,
)
from application.sessions import SessionService
from application.simulation import (
    PauseReason,
    SimulationResults,
    SimulationService,
    SimulationState,
    StoredRun,
)
from domain.bars import Bar, BarSeries, Timeframe
from domain.calendar import is_trading_day
from domain.errors import DomainError, InvalidOrder, InvalidSequence, SessionNotFound
from domain.exchanges import daily_close, hours_of
from domain.limits import Plan
from domain.orders import OrderRequest, OrderSide, OrderType
from domain.session import SessionState
from tests.fakes import (
    DEFAULT_INSTRUMENTS,
    FakeClock,
    FakeIds,
    InMemoryBarStore,
    InMemoryCatalog,
    make_service,
    make_validator,
    principal,
    session_params,
)

ALICE = principal(Plan.PROFESSIONAL, "alice")
DRIVER = "conn_1"
START, END = "2023-01-03", "2023-12-29"


def wavy_aapl() -> BarSeries:
    """A year of AAPL daily bars whose prices move, so that orders fill at different prices."""
    aapl = next(i for i in DEFAULT_INSTRUMENTS if i.symbol.ticker == "AAPL")
    hours = hours_of(aapl)
    bars = []
    day, n = date(2022, 12, 1), 0
    while day <= date(2024, 1, 31):
        if is_trading_day(day, aapl.symbol.asset_class.calendar):
            close = Decimal(100 + 15 * math.sin(n / 9)).quantize(Decimal("0.01"))
            high, low = close + Decimal("1.50"), close - Decimal("1.25")
            bars.append(Bar(daily_close(day, hours), close, high, low, close, Decimal(10_000)))
            n += 1
        day += timedelta(days=1)
    return BarSeries.from_bars("AAPL", Timeframe.D1, bars)


def orders_for(sequence: int) -> tuple[list[OrderRequest], list[str], dict[str, DomainError]]:
    """What the test strategy sends with its ack of tick `sequence`: buys, sells, a resting
    limit order cancelled later, an order the broker refuses and one that never parses."""
    orders: list[OrderRequest] = []
    cancels: list[str] = []
    refused: dict[str, DomainError] = {}
    if sequence % 17 == 3:
        orders.append(
            OrderRequest(f"b{sequence}", "AAPL", OrderSide.BUY, OrderType.MARKET, Decimal(40))
        )
    if sequence % 17 == 11:
        orders.append(
            OrderRequest(f"s{sequence}", "AAPL", OrderSide.SELL, OrderType.MARKET, Decimal(40))
        )
    if sequence % 50 == 5:
        orders.append(
            OrderRequest(
                f"l{sequence}",
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                Decimal(5),
                limit_price=Decimal("1.00"),
            )
        )
    if sequence % 50 == 30:
        cancels.append(f"l{sequence - 25}")
    if sequence == 60:
        orders.append(OrderRequest("x60", "MSFT", OrderSide.BUY, OrderType.MARKET, Decimal(1)))
        refused["bad60"] = InvalidOrder("quantity", "quantity must be positive", value="-1")
    return orders, cancels, refused


class Services(Protocol):
    """What the helpers below drive: the services of one server process."""

    sessions: SessionService
    simulations: SimulationService


class World:
    """The services of one server process over `home/sessions.db`."""

    def __init__(self, home: Path, bars: InMemoryBarStore, clock: FakeClock, every: int) -> None:
        self.clock = clock
        self.database = SqliteDatabase(home / "sessions.db")
        catalog = InMemoryCatalog()
        self.sessions = make_service(
            clock=clock,
            catalog=catalog,
            ids=FakeIds(),
            repository=SqliteSessionRepository(self.database),
            rate_limiter=SqliteRateLimiter(self.database, clock),
            validator=make_validator(catalog, clock, store=bars),
        )
        self.checkpoints = SqliteSimulationCheckpoints(self.database)
        self.simulations = SimulationService(
            self.sessions, catalog, bars, clock, self.checkpoints, checkpoint_every_ticks=every
        )

    def journal_rows(self, session_id: str) -> int:
        row = (
            self.database.connection()
            .execute("SELECT count(*) FROM journal WHERE session_id = ?", (session_id,))
            .fetchone()
        )
        return int(row[0])


@pytest.fixture
def bars() -> InMemoryBarStore:
    store = InMemoryBarStore.with_defaults()
    store.put(wavy_aapl())
    return store


@pytest.fixture
def worlds(tmp_path: Path, bars: InMemoryBarStore) -> Iterator[list[World]]:
    """`worlds[0]` first; `restart(worlds)` appends the next process on the same file."""
    made: list[World] = []
    yield made
    for world in made:
        world.database.close()


def boot(worlds: list[World], home: Path, bars: InMemoryBarStore, every: int = 25) -> World:
    clock = worlds[-1].clock if worlds else FakeClock()  # wall time goes on
    world = World(home, bars, clock, every)
    worlds.append(world)
    return world


async def start(world: Services) -> tuple[str, int]:
    session = await world.sessions.create(ALICE, session_params(("AAPL",), START, END))
    simulation = await world.simulations.start(ALICE, session.id, driver=DRIVER)
    return session.id, simulation.advance().tick.sequence_id


async def drive(world: Services, sid: str, sequence: int, stop_after: int | None = None) -> int:
    """Ack ticks from `sequence` on, as the strategy would; stop once tick `stop_after` was
    delivered (a crash), or at the end. Returns the last tick delivered."""
    while stop_after is None or sequence < stop_after:
        orders, cancels, refused = orders_for(sequence)
        _, _, step = await world.simulations.acknowledge(
            ALICE, sid, DRIVER, sequence, orders, cancels, refused
        )
        if step is None:
            break
        sequence = step.tick.sequence_id
    return sequence


async def finish(world: Services, sid: str) -> tuple[SimulationResults, SimulationState]:
    simulation = await world.simulations.simulation(ALICE, sid)
    simulation.finish()
    results = await world.simulations.complete(ALICE, sid)
    finished = await world.simulations.finished_of(ALICE, sid)
    assert finished is not None
    return results, finished.state


async def uninterrupted(
    tmp_path: Path, bars: InMemoryBarStore
) -> tuple[SimulationResults, SimulationState]:
    world = World(tmp_path / "reference", bars, FakeClock(), 25)
    try:
        sid, first = await start(world)
        await drive(world, sid, first)
        return await finish(world, sid)
    finally:
        world.database.close()


def same_run(
    got: tuple[SimulationResults, SimulationState],
    want: tuple[SimulationResults, SimulationState],
) -> None:
    (results, state), (expected, expected_state) = got, want
    assert results.metrics == expected.metrics
    assert results.equity_curve == expected.equity_curve
    assert results.trades == expected.trades
    assert results.executions == expected.executions > 0
    assert state.reports == expected_state.reports
    assert state.rejections == expected_state.rejections
    assert len(state.rejections) == 2  # the MSFT order (no such symbol here) and `bad60`


@pytest.mark.parametrize("crash_at", [1, 2, 24, 25, 26, 61, 137])
async def test_a_crash_at_any_tick_resumes_to_the_uninterrupted_results(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World], crash_at: int
) -> None:
    first = boot(worlds, tmp_path, bars)
    sid, sequence = await start(first)
    assert await drive(first, sid, sequence, stop_after=crash_at) == crash_at
    # The process dies here: nothing is closed, nothing is flushed.

    second = boot(worlds, tmp_path, bars)
    found = await second.simulations.recover()
    assert found.paused == [sid], found
    assert not found.failed
    session = await second.sessions.get(ALICE, sid)
    assert session.state is SessionState.PAUSED
    run = await second.simulations.run_of(ALICE, sid)
    assert run.paused is PauseReason.RESTART
    assert run.driver is None
    # The tick the client saw last is the one in flight: it is sent again, nothing older.
    assert run.simulation.in_flight == crash_at == run.simulation.sequence

    await second.simulations.resume(ALICE, sid, DRIVER)
    await drive(second, sid, crash_at)
    same_run(await finish(second, sid), await uninterrupted(tmp_path, bars))


async def test_restarting_twice_and_orders_between_ticks(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    first = boot(worlds, tmp_path, bars, every=10)
    sid, sequence = await start(first)
    sequence = await drive(first, sid, sequence, stop_after=33)
    # An order_batch and a cancel while tick 33 is in flight; both are journaled.
    limit = OrderRequest(
        "mid", "AAPL", OrderSide.BUY, OrderType.LIMIT, Decimal(3), limit_price=Decimal("1")
    )
    await first.simulations.submit(ALICE, sid, DRIVER, [limit])
    await first.simulations.cancel(ALICE, sid, DRIVER, "mid")
    expected = (await first.simulations.simulation(ALICE, sid)).state()

    second = boot(worlds, tmp_path, bars, every=10)
    assert (await second.simulations.recover()).paused == [sid]
    assert (await second.simulations.simulation(ALICE, sid)).state() == expected
    third = boot(worlds, tmp_path, bars, every=10)  # down again before anyone resumed
    assert (await third.simulations.recover()).paused == [sid]
    assert (await third.simulations.simulation(ALICE, sid)).state() == expected


async def test_checkpoints_fold_the_journal_every_n_ticks_and_on_pause(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    world = boot(worlds, tmp_path, bars, every=25)
    sid, sequence = await start(world)
    sequence = await drive(world, sid, sequence, stop_after=60)
    assert world.journal_rows(sid) == 60 - 50  # checkpoints at ticks 25 and 50
    await world.simulations.disconnect(DRIVER)
    assert world.journal_rows(sid) == 0
    stored = await world.checkpoints.load(sid)
    assert isinstance(stored, StoredRun)
    assert stored.journal == ()
    assert stored.checkpoint.state.sequence == 60


async def test_a_crash_after_the_last_ack_completes_on_recovery(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    first = boot(worlds, tmp_path, bars)
    sid, sequence = await start(first)
    await drive(first, sid, sequence)  # the last ack is journaled; completion never ran
    second = boot(worlds, tmp_path, bars)
    assert (await second.simulations.recover()).completed == [sid]
    assert (await second.sessions.get(ALICE, sid)).state is SessionState.COMPLETED
    results = await second.simulations.results(ALICE, sid)
    expected, _ = await uninterrupted(tmp_path, bars)
    assert results.metrics == expected.metrics


async def test_results_survive_a_restart(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    first = boot(worlds, tmp_path, bars)
    sid, sequence = await start(first)
    await drive(first, sid, sequence)
    results, state = await finish(first, sid)

    second = boot(worlds, tmp_path, bars)
    assert (await second.simulations.recover()).completed == [sid]
    assert await second.simulations.results(ALICE, sid) == results
    finished = await second.simulations.finished_of(ALICE, sid)
    assert finished is not None
    assert finished.state == state
    assert second.simulations.progress(sid) == (
        results.total_ticks,
        results.total_ticks,
        results.last_sim_time,
    )


async def test_what_is_gone_is_dropped_and_a_deleted_session_leaves_nothing(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    first = boot(worlds, tmp_path, bars)
    kept, sequence = await start(first)
    await drive(first, kept, sequence, stop_after=5)
    await first.simulations.disconnect(DRIVER)
    session = await first.sessions.create(ALICE, session_params(("AAPL",), START, END))
    await first.simulations.start(ALICE, session.id, driver="conn_2")
    await first.sessions.delete(ALICE, session.id)
    await first.simulations.forget(session.id)
    assert await first.checkpoints.list() == [kept]

    second = boot(worlds, tmp_path, bars)
    await second.sessions.delete(ALICE, kept)  # as if it expired while the server was down
    found = await second.simulations.recover()
    assert found.dropped == [kept]
    assert not found.paused
    assert await second.checkpoints.list() == []
    with pytest.raises(SessionNotFound):
        await second.simulations.run_of(ALICE, kept)


async def test_bars_that_changed_meanwhile_fail_the_session_with_a_reason(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    first = boot(worlds, tmp_path, bars)
    sid, sequence = await start(first)
    await drive(first, sid, sequence, stop_after=5)
    shorter = wavy_aapl()
    bars.put(shorter.slice(0, len(shorter) - 60))  # the last weeks of 2023 are gone

    second = boot(worlds, tmp_path, bars)
    found = await second.simulations.recover()
    assert list(found.failed) == [sid]
    session = await second.sessions.get(ALICE, sid)
    assert session.state is SessionState.ERROR
    assert session.error_reason is not None
    assert "restart" in session.error_reason
    assert await second.checkpoints.list() == []


async def test_the_hourly_creation_limit_survives_a_restart(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    limited = principal(Plan.FREE, "carol")
    first = boot(worlds, tmp_path, bars)
    hourly = limited.limits.sessions_per_hour
    for _ in range(hourly):
        await first.sessions.create(limited, session_params())
        await first.sessions.delete(limited, (await first.sessions.list(limited))[0].id)
    second = boot(worlds, tmp_path, bars)
    with pytest.raises(DomainError) as refused:
        await second.sessions.create(limited, session_params())
    assert refused.value.details["limit"] == "sessions_per_hour"


# ---------------------------------------------------------------- windows (PROTOCOL §7.14)


async def drive_windows(world: Services, sid: str, stop_after_acks: int | None = None) -> int:
    """Run the test strategy over windows: the first bar of each on which it sends
    something is acknowledged (the rest of the window is void), else the window's last.
    Stops after `stop_after_acks` acks (a crash) or at the end; returns the acks sent."""
    acks = 0
    simulation = await world.simulations.simulation(ALICE, sid)
    while stop_after_acks is None or acks < stop_after_acks:
        first, last = simulation.next_sequence_id, simulation.in_flight
        assert last is not None
        sequence = next((n for n in range(first, last) if any(orders_for(n))), last)
        orders, cancels, refused = orders_for(sequence)
        acks += 1
        _, _, step = await world.simulations.acknowledge(
            ALICE, sid, DRIVER, sequence, orders, cancels, refused
        )
        if step is None:
            break
    return acks


@pytest.mark.parametrize(("window", "crash_after"), [(8, 3), (8, 9), (40, 2), (40, 7)])
async def test_a_crash_mid_window_resumes_from_the_last_bar_acknowledged(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World], window: int, crash_after: int
) -> None:
    first = boot(worlds, tmp_path, bars, every=10)
    session = await first.sessions.create(ALICE, session_params(("AAPL",), START, END))
    sid = session.id
    simulation = await first.simulations.start(ALICE, sid, driver=DRIVER, window=window)
    simulation.open_window(window)
    await drive_windows(first, sid, stop_after_acks=crash_after)
    acknowledged = simulation.acknowledged
    assert simulation.in_window
    assert simulation.sequence > acknowledged  # stepped ahead, not the client's yet
    # The process dies here, mid-window.

    second = boot(worlds, tmp_path, bars, every=10)
    assert (await second.simulations.recover()).paused == [sid]
    restored = await second.simulations.simulation(ALICE, sid)
    # Paused at the bar acknowledged last: the window in flight was void, not kept.
    assert restored.sequence == acknowledged
    assert restored.in_flight is None
    assert restored.window_size == window
    assert restored.state() == simulation.state()
    await second.simulations.resume(ALICE, sid, DRIVER)
    restored.open_window(restored.window_size)  # what resume_session sends again
    await drive_windows(second, sid)
    same_run(await finish(second, sid), await uninterrupted(tmp_path, bars))


async def test_a_window_made_longer_on_resume_is_replayed_after_a_crash(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    """The journal keeps the window size each ack asked for; a resume that opens the
    pending window longer is not journaled, yet an ack far into that window must replay."""
    first = boot(worlds, tmp_path, bars, every=1000)  # no checkpoint but the start's
    session = await first.sessions.create(ALICE, session_params(("AAPL",), START, END))
    sid = session.id
    simulation = await first.simulations.start(ALICE, sid, driver=DRIVER, window=4)
    simulation.open_window(4)
    await first.simulations.acknowledge(ALICE, sid, DRIVER, 2)  # next window: 3-6
    await first.simulations.disconnect(DRIVER)  # paused: the window is void
    await first.simulations.resume(ALICE, sid, DRIVER)
    simulation.window_size = 60  # what resume_session asking for 60 bars does
    simulation.open_window(60)
    assert (simulation.next_sequence_id, simulation.in_flight) == (3, 62)
    buy = OrderRequest("w1", "AAPL", OrderSide.BUY, OrderType.MARKET, Decimal(7))
    await first.simulations.acknowledge(ALICE, sid, DRIVER, 50, [buy])
    expected = simulation.state()
    # The process dies here.

    second = boot(worlds, tmp_path, bars, every=1000)
    assert (await second.simulations.recover()).paused == [sid]
    restored = await second.simulations.simulation(ALICE, sid)
    assert restored.state() == expected
    assert restored.acknowledged == 50
    assert [r.order_id for r in restored.reports] == []  # w1 fills on the next bar


async def test_an_ack_outside_the_window_is_refused_before_it_is_journaled(
    tmp_path: Path, bars: InMemoryBarStore, worlds: list[World]
) -> None:
    world = boot(worlds, tmp_path, bars)
    session = await world.sessions.create(ALICE, session_params(("AAPL",), START, END))
    simulation = await world.simulations.start(ALICE, session.id, driver=DRIVER, window=5)
    simulation.open_window(5)
    before = world.journal_rows(session.id)
    for wrong in (0, 6, 40):
        with pytest.raises(InvalidSequence):
            await world.simulations.acknowledge(ALICE, session.id, DRIVER, wrong)
    assert world.journal_rows(session.id) == before
    assert (simulation.next_sequence_id, simulation.in_flight) == (1, 5)
