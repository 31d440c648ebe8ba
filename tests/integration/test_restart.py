"""`simutrador serve` (sqlite storage, the default) killed with SIGKILL in the middle of a
run and started again: sessions, results and limits are all there, the running simulation
is back `paused`, and the SDK's own reconnection resumes it to exactly the metrics of an
uninterrupted in-process run on the same home."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from dependency_injector import providers

from domain.limits import Plan
from entrypoints.container import Container
from entrypoints.protocol import messages as m
from entrypoints.sdk import AuthClient, Bar, Context, SessionClient, Strategy, run_backtest
from entrypoints.sdk.errors import SessionError
from entrypoints.settings import Settings
from tests.integration.conftest import TEST_JWT_SECRET
from tests.integration.processes import ServerProcess

KILL_AT = 97
"""The tick after which the server is killed (mid-run of a ~250-tick year)."""


class Swing(Strategy):
    """Trades often enough for every kind of record: buys, sells, a resting limit order and
    its cancel. `crash` (when set) runs on tick `kill_at`, after the strategy."""

    def __init__(self, kill_at: int | None = None, crash: Callable[[], None] | None = None) -> None:
        self.ticks = 0
        self.resting: str | None = None
        self.kill_at, self.crash = kill_at, crash
        self.restarted = False

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.ticks += 1
        if self.ticks % 13 == 2:
            ctx.buy("AAPL", 20)
        if self.ticks % 13 == 9 and ctx.position("AAPL"):
            ctx.close("AAPL")
        if self.ticks % 40 == 5:
            self.resting = ctx.buy("MSFT", 3, type="limit", limit_price="1.00")
        if self.ticks % 40 == 25 and self.resting is not None:
            ctx.cancel(self.resting)
        if self.ticks == self.kill_at and self.crash is not None:
            # Killed while this tick's ack (with its orders) has not been sent: the driver
            # finds the connection gone, reconnects to the new process and resumes.
            self.crash()
            self.restarted = True


@pytest.fixture
def home(tmp_path: Path, sample_bars: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(sample_bars, home / "bars.db")
    return home


@pytest.fixture
def server(home: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        home,
        SIMUTRADOR_STORAGE="sqlite",
        SIMUTRADOR_JWT_SECRET=TEST_JWT_SECRET,
        SIMUTRADOR_CHECKPOINT_EVERY_TICKS="40",
        SIMUTRADOR_FREE_SESSIONS_PER_HOUR="2",
        SIMUTRADOR_FREE_MAX_ACTIVE_SESSIONS="5",
    )
    yield process
    process.stop()


def api_key(home: Path, user: str, plan: Plan) -> str:
    container = Container()
    container.settings.override(
        providers.Object(Settings(home=home, jwt_secret=TEST_JWT_SECRET, storage="memory"))
    )
    return asyncio.run(container.auth_service().create_api_key(user, plan)).secret


def test_kill_9_mid_run_loses_nothing(
    home: Path, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = api_key(home, "alice", Plan.PROFESSIONAL)
    carol = api_key(home, "carol", Plan.FREE)
    server.start()

    async def before() -> list[str]:
        async with SessionClient(AuthClient(server.url, carol)) as client:
            return [
                (
                    await client.create_session(["AAPL"], "2023-01-03", "2023-03-31", "10000")
                ).session_id
                for _ in range(2)
            ]

    carols = asyncio.run(before())
    swing = Swing(KILL_AT, server.restart)
    run = run_backtest(
        swing,
        ["AAPL", "MSFT"],
        "2023-01-03",
        "2023-12-29",
        100_000,
        server=server.url,
        api_key=alice,
    )
    assert swing.restarted
    assert swing.ticks == run.total_ticks  # every tick seen once: none sent again
    server.restart()  # and once more, now that it completed

    async def after() -> None:
        async with SessionClient(AuthClient(server.url, carol)) as client:
            listed = await client.list_sessions()
            assert sorted(s.session_id for s in listed) == sorted(carols)
            with pytest.raises(SessionError) as refused:  # 2 an hour, both used before
                await client.create_session(["AAPL"], "2023-01-03", "2023-03-31", "10000")
            assert refused.value.details["limit"] == "sessions_per_hour"
        async with SessionClient(AuthClient(server.url, alice)) as client:
            session = await client.get_session(run.session_id)
            assert session.state == "completed"
            results = await client.get_results(run.session_id)
            assert results.metrics == run.metrics

    asyncio.run(after())

    monkeypatch.setenv("SIMUTRADOR_HOME", str(home))
    monkeypatch.setenv("SIMUTRADOR_JWT_SECRET", TEST_JWT_SECRET)
    reference = run_backtest(Swing(), ["AAPL", "MSFT"], "2023-01-03", "2023-12-29", 100_000)
    assert run.metrics == reference.metrics
    assert run.metrics.total_trades > 3
    assert [e.execution_id for e in run.executions] == [
        e.execution_id for e in reference.executions
    ]
    assert run.equity_curve == reference.equity_curve


def test_a_paused_simulation_comes_back_paused_with_reason_restart(
    home: Path, server: ServerProcess
) -> None:
    alice = api_key(home, "alice", Plan.PROFESSIONAL)
    server.start()

    async def start_and_leave() -> str:
        async with SessionClient(AuthClient(server.url, alice)) as client:
            created = await client.create_session(["AAPL"], "2023-01-03", "2023-06-30", "10000")
            sid = created.session_id
            await client.exchange(
                m.StartSimulation(data=m.StartSimulationData(session_id=sid)),
                lambda x: isinstance(x, m.Tick),
            )
            return sid

    sid = asyncio.run(start_and_leave())
    server.restart()

    async def check() -> None:
        async with SessionClient(AuthClient(server.url, alice)) as client:
            assert (await client.get_session(sid)).state == "paused"
            replies = await client.exchange(
                m.ResumeSession(data=m.ResumeSessionData(session_id=sid, last_sequence_id=1)),
                lambda x: isinstance(x, m.Tick),
            )
            sync = next(x for x in replies if isinstance(x, m.StateSync))
            assert sync.data.state == "running"
            assert sync.data.next_sequence_id == 1
            tick = next(x for x in replies if isinstance(x, m.Tick))
            assert tick.data.sequence_id == 1

    asyncio.run(check())
