"""Two `simutrador serve` processes on one Redis (`SIMUTRADOR_STORAGE=redis`) act as one
server: a user's limits hold across them, what one stores the other sees, a revocation made
anywhere closes connections everywhere, and a simulation outlives the process that ran it —
taken up by the other from its checkpoint and journal, with the results of an uninterrupted
run. Real processes, a real redis-server, real sockets; nothing is mocked.

Each process has its own home holding its own copy of the same bars (as on two machines),
or they share one; no JWT secret is configured: the processes share the one kept in Redis."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers
from websockets.exceptions import ConnectionClosed

from application.auth import NewApiKey
from domain.limits import Plan
from entrypoints.container import Container
from entrypoints.protocol import messages as m
from entrypoints.sdk import AuthClient, SessionClient, run_backtest
from entrypoints.settings import Settings
from tests.integration.processes import SIMUTRADOR, FailoverProxy, ServerProcess
from tests.integration.test_restart import Swing
from tests.integration.wsclient import (
    Message,
    WsClient,
    error_code,
    expect_refused,
    frame,
    session_request,
    token_url,
)
from tests.redis_server import RedisServer

CLOSE_UNAUTHORIZED = 4001
CLOSE_TOO_MANY_CONNECTIONS = 4029
LEASE_SECONDS = "2"
"""Short, so that a killed process's simulation is taken up soon (the SDK retries meanwhile)."""
_databases = itertools.count(1)


class Cluster:
    """Server processes sharing one Redis database (a fresh one), each with its own home."""

    def __init__(self, root: Path, redis_url: str, sample_bars: Path) -> None:
        self.root = root
        self.redis_url = redis_url
        self.sample_bars = sample_bars
        self.processes: list[ServerProcess] = []

    def settings(self) -> dict[str, str]:
        return {
            "SIMUTRADOR_STORAGE": "redis",
            "SIMUTRADOR_REDIS_URL": self.redis_url,
            "SIMUTRADOR_REDIS_LEASE_SECONDS": LEASE_SECONDS,
            "SIMUTRADOR_AUTH_RECHECK_SECONDS": "0.3",
            "SIMUTRADOR_CHECKPOINT_EVERY_TICKS": "40",
            "SIMUTRADOR_ENTERPRISE_SESSIONS_PER_HOUR": "3",
        }

    def start(self, count: int, *, one_home: bool = False) -> list[ServerProcess]:
        """`count` processes, each with its own home and copy of the bars, or all on one."""
        started = []
        for n in range(count):
            home = self.root / f"home{0 if one_home else len(self.processes)}"
            if not one_home or n == 0:
                home.mkdir()
                shutil.copyfile(self.sample_bars, home / "bars.db")
            process = ServerProcess(home, **self.settings())
            process.launch()
            self.processes.append(process)
            started.append(process)
        for process in started:
            process.wait_ready()
        return started

    async def api_key(self, user: str, plan: Plan) -> NewApiKey:
        """What `simutrador keys create` does on a machine with the same settings."""
        container = Container()
        settings = Settings(home=self.root / "admin", storage="redis", redis_url=self.redis_url)
        container.settings.override(providers.Object(settings))
        return await container.auth_service().create_api_key(user, plan)

    def keys_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SIMUTRADOR_HOME": str(self.root / "admin"), **self.settings()}
        return subprocess.run(
            [str(SIMUTRADOR), "keys", *args], env=env, capture_output=True, text=True, timeout=60
        )

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer, sample_bars: Path) -> Iterator[Cluster]:
    db = next(_databases) % 16 or 1
    redis_server.flush(db)
    made = Cluster(tmp_path, redis_server.url(db), sample_bars)
    yield made
    made.stop()


async def token(server: ServerProcess, api_key: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/auth/token", headers={"X-API-Key": api_key})
    response.raise_for_status()
    granted: str = response.json()["access_token"]
    return granted


def outcome(reply: Message) -> str:
    return reply["type"] if reply["type"] != "session_error" else error_code(reply)


async def test_two_processes_act_as_one_server(cluster: Cluster) -> None:
    a, b = cluster.start(2)
    racer = await token(a, (await cluster.api_key("racer", Plan.PROFESSIONAL)).secret)

    # 20 creates from 5 connections, 3 on one process and 2 on the other, all in flight at
    # once: the professional plan's 10 active sessions, exactly.
    clients = [await WsClient.connect(a if n % 2 == 0 else b, racer) for n in range(5)]
    try:
        results = await asyncio.gather(
            *(
                c.pipeline(
                    frame("create_session", session_request(), f"c{n}-{i}") for i in range(4)
                )
                for n, c in enumerate(clients)
            )
        )
        outcomes = Counter(outcome(r) for replies in results for r in replies)
        assert outcomes == {"session_created": 10, "SESSION_LIMIT_EXCEEDED": 10}
        refusals = [r for replies in results for r in replies if r["type"] == "session_error"]
        assert {r["data"]["details"]["limit"] for r in refusals} == {"active_sessions"}
        created = {
            r["data"]["session_id"]
            for replies in results
            for r in replies
            if r["type"] == "session_created"
        }
        for client in clients:  # the same ten, whichever process is asked
            listed = await client.request("list_sessions")
            assert {s["session_id"] for s in listed["data"]["sessions"]} == created
        one = sorted(created)[0]
        info = await clients[1].request("get_session", {"session_id": one})  # on b
        assert info["data"]["state"] == "ready"
        await clients[0].request("delete_session", {"session_id": one})  # on a
        gone = await clients[3].request("get_session", {"session_id": one})  # on b
        assert error_code(gone) == "SESSION_NOT_FOUND"
    finally:
        await asyncio.gather(*(c.close() for c in clients))

    # The hourly creation budget (3 here) is one, whichever process creates.
    churner = await token(b, (await cluster.api_key("churner", Plan.ENTERPRISE)).secret)
    async with (
        await WsClient.connect(a, churner) as on_a,
        await WsClient.connect(b, churner) as on_b,
    ):
        for ws in (on_a, on_b, on_a):
            created_here = await ws.create_session()
            assert created_here["type"] == "session_created", created_here
        refused = await on_b.create_session()
        assert error_code(refused) == "SESSION_LIMIT_EXCEEDED"
        assert refused["data"]["details"]["limit"] == "sessions_per_hour"
        assert refused["data"]["details"]["max"] == 3

    # One connection on the free plan: open on a, refused on b until a's closes.
    solo = await token(a, (await cluster.api_key("solo", Plan.FREE)).secret)
    first = await WsClient.connect(a, solo)
    close = await expect_refused(token_url(b, solo))
    assert close.code == CLOSE_TOO_MANY_CONNECTIONS
    await first.close()
    for _ in range(100):  # the close is counted once a's handler has finished
        try:
            again = await WsClient.connect(b, solo)
            break
        except AssertionError:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("b never admitted the connection a closed")
    await again.close()


async def test_a_key_revoked_anywhere_is_refused_everywhere(cluster: Cluster) -> None:
    a, b = cluster.start(2, one_home=True)  # two processes may share a home, and its bars
    key = await cluster.api_key("alice", Plan.PROFESSIONAL)
    bearer = await token(a, key.secret)
    open_on_b = await WsClient.connect(b, bearer)
    async with await WsClient.connect(a, bearer) as on_a:  # both read the one home's bars
        assert (await on_a.create_session())["type"] == "session_created"
    assert (await open_on_b.create_session())["type"] == "session_created"

    revoked = cluster.keys_cli("revoke", key.record.key_id)  # the admin CLI, on Redis too
    assert revoked.returncode == 0, revoked.stderr

    async with asyncio.timeout(5):  # b's next re-check closes it
        while True:
            try:
                await open_on_b.recv()
            except ConnectionClosed:
                break
    assert open_on_b.connection.close_code == CLOSE_UNAUTHORIZED
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{a.url}/auth/token", headers={"X-API-Key": key.secret})
    assert response.status_code == 401
    assert (await expect_refused(token_url(a, bearer))).code == CLOSE_UNAUTHORIZED
    listed = cluster.keys_cli("list")
    assert listed.returncode == 0
    assert key.record.key_id in listed.stdout


def test_a_run_goes_on_on_another_process_when_its_own_is_killed(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK runs a strategy through a load balancer; the process running it is killed
    mid-run (SIGKILL). The SDK reconnects through the balancer to the other process, which
    takes the simulation up once the dead one's lease lapses, from its checkpoint and
    journal: every tick seen once, and the results of an uninterrupted in-process run."""
    a, b = cluster.start(2)
    balancer = FailoverProxy([a.port, b.port]).start()
    try:
        alice = asyncio.run(cluster.api_key("alice", Plan.PROFESSIONAL)).secret
        swing = Swing(97, a.kill)
        run = run_backtest(
            swing,
            ["AAPL", "MSFT"],
            "2023-01-03",
            "2023-12-29",
            100_000,
            server=balancer.url,
            api_key=alice,
        )
    finally:
        balancer.stop()
    assert swing.restarted
    assert swing.ticks == run.total_ticks  # none sent twice

    async def on_b() -> None:
        async with SessionClient(AuthClient(b.url, alice)) as client:
            assert (await client.get_session(run.session_id)).state == "completed"
            assert (await client.get_results(run.session_id)).metrics == run.metrics

    asyncio.run(on_b())
    monkeypatch.setenv("SIMUTRADOR_HOME", str(b.home))
    reference = run_backtest(Swing(), ["AAPL", "MSFT"], "2023-01-03", "2023-12-29", 100_000)
    assert run.metrics == reference.metrics
    assert run.metrics.total_trades > 3
    assert [e.execution_id for e in run.executions] == [
        e.execution_id for e in reference.executions
    ]
    assert run.equity_curve == reference.equity_curve


def orders_on(session_id: str, sequence: int) -> m.TickAckData:
    """The ack of tick `sequence`, with a buy every 11 ticks and a sell 5 ticks later."""
    orders = []
    if sequence % 11 == 2:
        orders.append(
            m.OrderData(order_id=f"b{sequence}", symbol="AAPL", side="buy", quantity=Decimal(15))
        )
    if sequence % 11 == 7:
        orders.append(
            m.OrderData(order_id=f"s{sequence}", symbol="AAPL", side="sell", quantity=Decimal(15))
        )
    return m.TickAckData(session_id=session_id, sequence_id=sequence, orders=orders)


def ends_a_step(message: m.ServerMessage) -> bool:
    return isinstance(message, m.Tick | m.SimulationComplete)


async def drive(client: SessionClient, session_id: str, sequence: int, until: int | None) -> int:
    """Ack from tick `sequence` until tick `until` is delivered (or the end); the last tick."""
    while until is None or sequence < until:
        replies = await client.exchange(
            m.TickAck(data=orders_on(session_id, sequence)), ends_a_step
        )
        ticks = [r for r in replies if isinstance(r, m.Tick)]
        if not ticks:
            break
        sequence = ticks[-1].data.sequence_id
    return sequence


async def started(client: SessionClient) -> tuple[str, int]:
    created = await client.create_session(["AAPL"], "2023-01-03", "2023-12-29", "100000")
    sid = created.session_id
    replies = await client.exchange(
        m.StartSimulation(data=m.StartSimulationData(session_id=sid)), ends_a_step
    )
    first = next(r for r in replies if isinstance(r, m.Tick))
    return sid, first.data.sequence_id


async def test_a_simulation_paused_on_a_killed_process_resumes_on_another(
    cluster: Cluster,
) -> None:
    a, b = cluster.start(2)
    key = (await cluster.api_key("alice", Plan.PROFESSIONAL)).secret
    async with SessionClient(AuthClient(a.url, key)) as on_a:
        sid, sequence = await started(on_a)
        assert await drive(on_a, sid, sequence, until=58) == 58
        paused = await on_a.exchange(
            m.PauseSimulation(data=m.SessionRef(session_id=sid)),
            lambda x: isinstance(x, m.SimulationPaused),
        )
        assert isinstance(paused[-1], m.SimulationPaused)
        assert paused[-1].data.sequence_id == 58
        a.kill()  # SIGKILL: the socket dies with it

    async with SessionClient(AuthClient(b.url, key)) as on_b:
        found = await on_b.get_session(sid)
        assert found.state == "paused"
        assert found.progress is not None
        assert found.progress.sequence_id == 58
        replies = await on_b.exchange(
            m.ResumeSession(data=m.ResumeSessionData(session_id=sid, last_sequence_id=58)),
            ends_a_step,
        )
        sync = next(r for r in replies if isinstance(r, m.StateSync))
        assert (sync.data.state, sync.data.next_sequence_id) == ("running", 58)
        assert sync.data.missed_executions == []
        tick = next(r for r in replies if isinstance(r, m.Tick))
        assert tick.data.sequence_id == 58
        await drive(on_b, sid, 58, until=None)
        resumed = await on_b.get_results(sid)

        # The same requests, never interrupted, on one process.
        reference_id, sequence = await started(on_b)
        await drive(on_b, reference_id, sequence, until=None)
        reference = await on_b.get_results(reference_id)
    assert resumed.metrics == reference.metrics
    assert resumed.metrics.total_trades > 5
    assert resumed.trades == reference.trades
