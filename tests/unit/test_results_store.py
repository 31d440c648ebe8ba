"""Completed simulations leave the server's memory: their results go to the storage's
`ResultsStore` (memory: one compact record; SQLite and Redis: the record their checkpoint
store's `complete` writes) and are read back, equal, for `get_results` and a resume; the
service keeps only their progress, and forgets them with their session."""

from __future__ import annotations

import asyncio
import gc
import weakref
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.storage.codec import encode_record
from adapters.storage.memory import InMemoryResultsStore
from adapters.storage.redis import RedisResultsStore, RedisSimulationCheckpoints
from adapters.storage.sqlite import SqliteResultsStore, SqliteSimulationCheckpoints
from application.ports import ResultsStore, SimulationCheckpoints
from application.records import CompletedRun
from application.simulation import Simulation, SimulationService
from domain.orders import OrderRequest, OrderSide, OrderType
from domain.session import SessionState
from entrypoints.protocol import messages as m
from entrypoints.protocol.simulation import EngineConnection, SimulationProtocol
from tests.fakes import (
    FakeClock,
    InMemoryBarStore,
    InMemoryCatalog,
    RecordingMetrics,
    make_service,
    make_validator,
    principal,
    session_params,
)

ALICE = principal(user_id="alice")
START, END = "2023-01-03", "2023-03-31"


def step_through(simulation: Simulation) -> None:
    while not simulation.done_stepping:
        simulation.acknowledge(simulation.advance().tick.sequence_id)


class World:
    def __init__(
        self, results: ResultsStore | None, checkpoints: SimulationCheckpoints | None = None
    ) -> None:
        clock = FakeClock()
        catalog = InMemoryCatalog()
        store = InMemoryBarStore.with_defaults()
        self.metrics = RecordingMetrics()
        self.results = results
        self.sessions = make_service(
            clock=clock, catalog=catalog, validator=make_validator(catalog, clock, store=store)
        )
        self.simulations = SimulationService(
            self.sessions,
            catalog,
            store,
            clock,
            checkpoints=checkpoints,
            results=results,
            metrics=self.metrics,
        )

    async def completed(self) -> tuple[str, CompletedRun]:
        """A session whose simulation traded (a round trip) and completed; what it kept."""
        session = await self.sessions.create(ALICE, session_params(("AAPL",), START, END))
        simulation = await self.simulations.start(ALICE, session.id)
        simulation.advance()
        buy = OrderRequest("buy", "AAPL", OrderSide.BUY, OrderType.MARKET, quantity=Decimal(10))
        simulation.acknowledge(1, [buy])
        for _ in range(20):
            simulation.acknowledge(simulation.advance().tick.sequence_id)
        sell = OrderRequest("sell", "AAPL", OrderSide.SELL, OrderType.MARKET, quantity=Decimal(10))
        simulation.acknowledge(simulation.advance().tick.sequence_id, [sell])
        step_through(simulation)
        simulation.finish()
        results = await self.simulations.complete(ALICE, session.id)
        finished = await self.simulations.finished_of(ALICE, session.id)
        assert finished is not None
        return session.id, CompletedRun(session.id, ALICE, results, finished)


@pytest.fixture(params=["memory", "sqlite", "redis", "none"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    if request.param == "memory":
        return World(InMemoryResultsStore())
    if request.param == "sqlite":
        path = tmp_path / "sessions.db"
        return World(SqliteResultsStore(path), SqliteSimulationCheckpoints(path))
    if request.param == "redis":
        database = request.getfixturevalue("redis_database")
        return World(RedisResultsStore(database), RedisSimulationCheckpoints(database))
    return World(None)  # built without storage: results held by the service


async def test_results_are_read_back_from_the_store_and_nothing_runs(world: World) -> None:
    session_id, kept = await world.completed()
    assert kept.results.trades, "the run must have traded for this test to mean anything"

    assert world.simulations.running_count() == 0
    assert world.simulations.run_of_any(session_id) is None
    assert await world.simulations.results(ALICE, session_id) == kept.results
    again = await world.simulations.finished_of(ALICE, session_id)
    assert again == kept.finished
    total = kept.results.total_ticks
    assert world.simulations.progress(session_id) == (total, total, kept.results.last_sim_time)
    assert world.metrics.count("simulation_started") == 1
    assert world.metrics.count("simulation_completed") == 1


async def test_forgetting_a_session_drops_its_results(world: World) -> None:
    session_id, _ = await world.completed()
    await world.sessions.delete(ALICE, session_id)
    await world.simulations.forget(session_id)

    assert world.simulations.progress(session_id) is None
    if world.results is not None:
        assert await world.results.get(session_id) is None


async def test_a_failed_simulation_is_reported(world: World) -> None:
    session = await world.sessions.create(ALICE, session_params(("AAPL",), START, END))
    await world.simulations.start(ALICE, session.id)
    await world.simulations.fail(ALICE, session.id, "broken on purpose")
    assert (await world.sessions.get(ALICE, session.id)).state is SessionState.ERROR
    assert world.metrics.count("simulation_failed") == 1


# ---------------------------------------------------------------- the adapters


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ResultsStore:
    if request.param == "memory":
        return InMemoryResultsStore()
    if request.param == "sqlite":
        return SqliteResultsStore(tmp_path / "sessions.db")
    return RedisResultsStore(request.getfixturevalue("redis_database"))


async def test_each_store_keeps_puts_and_deletes(store: ResultsStore) -> None:
    _, kept = await World(None).completed()
    other = CompletedRun("sess_other", kept.principal, kept.results, kept.finished)

    assert await store.get(kept.session_id) is None
    await store.put(kept)
    await store.put(other)
    assert await store.get(kept.session_id) == kept
    await store.delete(kept.session_id)
    assert await store.get(kept.session_id) is None
    assert await store.get("sess_other") == other
    await store.delete("sess_missing")  # nothing there: nothing happens


async def test_memory_keeps_a_compact_record() -> None:
    _, kept = await World(None).completed()
    store = InMemoryResultsStore()
    await store.put(kept)
    assert store.stored_bytes() * 4 < len(encode_record(kept))


# ---------------------------------------------------------------- nothing else keeps it


async def test_a_completed_simulation_is_not_kept_by_its_connections_watchdog() -> None:
    world = World(InMemoryResultsStore())
    protocol = SimulationProtocol(world.simulations, FakeClock().now, tick_timeout_seconds=2.0)
    pushed: list[bytes] = []

    async def push(frame: bytes) -> None:
        pushed.append(frame)

    connection = EngineConnection("conn_1", push)
    session = await world.sessions.create(ALICE, session_params(("AAPL",), START, "2023-01-13"))
    replies = await protocol.handle(
        ALICE, connection, m.StartSimulation(data=m.StartSimulationData(session_id=session.id))
    )
    alive = weakref.ref(await world.simulations.simulation(ALICE, session.id))
    await asyncio.sleep(1.2)  # the watchdog (every second here) looks at the tick in flight
    while not isinstance(replies[-1], m.SimulationComplete):
        tick = replies[-1]
        assert isinstance(tick, m.TickOut), replies
        data = m.TickAckData(session_id=session.id, sequence_id=tick.data.sequence_id)
        replies = await protocol.handle(ALICE, connection, m.TickAck(data=data))
    gc.collect()

    assert connection.watchdog is not None
    assert not connection.watchdog.done()  # still asleep: it must not hold the simulation
    assert alive() is None
    assert pushed == []  # no tick timed out
