"""Simulations driven over real WebSockets on loopback, every speed figure a ratio to the
echo baseline (`benchmarks/echo.py`) measured in the same run on the same server.

The server is `benchmarks.server`'s: its own spawned process, the real app plus the echo
route, a temporary home seeded with synthetic daily bars, enterprise limits raised
(`ROOMY`; running simulations stay at the plan's 50 per user, so every user here runs at
most that many). The clients are raw `websockets` connections with pre-encoded frames:
`start_simulation`, then one `tick_ack` per tick with no orders, reading frames until the
next `tick` (or `simulation_complete`). The echo baseline carries a frame shaped like a
`tick_ack`, so both sides move about the same bytes one way; the tick coming back is
larger (one bar per symbol, equity and cash)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from websockets.asyncio.client import ClientConnection

from benchmarks.core import seed_home
from benchmarks.echo import raise_fd_limit
from benchmarks.report import Figure
from benchmarks.server import (
    BenchServer,
    Job,
    against_echo,
    close_all,
    create_frame,
    create_sessions,
    expect,
    frame,
    ref_frame,
    users_named,
)
from domain.dates import DateRange
from entrypoints.sdk import Strategy, run_backtest
from entrypoints.sdk.auth import AuthClient, Token, jwt_expiry

SESSION_SYMBOLS = ["AAPL", "MSFT", "EUR/USD", "BTC-USD", "GC"]
"""Five symbols on four different calendars: their closes rarely coincide, so a tick
mostly carries one bar (the union of the closes is the tick sequence)."""
LONG_SPAN = ("2022-01-03", "2025-12-31")
"""The one-connection session: four years of the five symbols."""
SHORT_SPAN = ("2025-01-02", "2025-12-31")
"""Each of the 50 concurrent sessions: one year of the five."""
MEMORY_SPAN = ("2016-01-04", "2025-12-31")
MEMORY_SYMBOLS = 10
MEMORY_RSS = 20
"""Simulations started between the two RSS readings."""
MEMORY_TRACED = 5
"""Simulations started while tracemalloc runs (the plan allows 50 running per user)."""
CONCURRENT = 50
BLOCK = 100
"""Ticks (and echo round trips) per interleaved block on one connection."""
CREATES_PER_USER = 100
CREATE_USERS = 3

TICK_VS_ECHO_TARGET = 0.5
CREATE_VS_ECHO_TARGET = 1.5

ECHO_ACK = frame("tick_ack", {"session_id": "sess_" + "x" * 32, "sequence_id": 1234})
"""What the echo route carries: a frame shaped like a real `tick_ack`."""
ECHO_REPLY = expect("tick_ack")
TICK = expect("tick")
COMPLETE = expect("simulation_complete")
STARTED = expect("simulation_started")
REFUSED = (expect("session_error"), expect("error"))


class _StartedData(msgspec.Struct):
    total_ticks: int


class _Started(msgspec.Struct):
    data: _StartedData


_started = msgspec.json.Decoder(_Started)


# ------------------------------------------------------------------------------ raw driver


def ack_frame(session_id: str, sequence_id: int) -> str:
    return (
        '{"type":"tick_ack","data":{"session_id":"' + session_id + '","sequence_id":'
        f"{sequence_id}}}}}"
    )


async def until_step(ws: ClientConnection) -> str:
    """Frames until the next `tick` or `simulation_complete` (fills and snapshots would
    come first; with no orders there are none)."""
    while True:
        reply = await ws.recv()
        if not isinstance(reply, str):
            raise RuntimeError("binary frame from the server")
        if reply.startswith(TICK) or reply.startswith(COMPLETE):
            return reply
        if reply.startswith(REFUSED):
            raise RuntimeError(f"the server refused: {reply[:300]}")


@dataclass
class RawSimulation:
    """One session driven by a raw client: started, then acked tick by tick."""

    ws: ClientConnection
    session_id: str
    total: int = 0
    acked: int = 0
    acks: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.acked >= self.total > 0

    async def start(self) -> None:
        """`start_simulation` and its replies up to tick 1; then every ack is encoded."""
        await self.ws.send(ref_frame("start_simulation", self.session_id))
        while True:
            reply = await self.ws.recv()
            if not isinstance(reply, str):
                raise RuntimeError("binary frame from the server")
            if reply.startswith(STARTED):
                self.total = _started.decode(reply).data.total_ticks
            elif reply.startswith(TICK):
                break
            elif reply.startswith(REFUSED):
                raise RuntimeError(f"start_simulation refused: {reply[:300]}")
        self.acks = [ack_frame(self.session_id, n) for n in range(1, self.total + 1)]

    async def step(self, count: int) -> int:
        """Ack up to `count` ticks, each after the previous tick arrived; returns how many."""
        ws, acks = self.ws, self.acks
        stop = min(self.total, self.acked + count)
        for n in range(self.acked, stop):
            await ws.send(acks[n])
            reply = await until_step(ws)
            if reply.startswith(COMPLETE) != (n == self.total - 1):
                raise RuntimeError(f"tick {n + 1} of {self.total}: unexpected {reply[:120]}")
        done, self.acked = stop - self.acked, stop
        return done

    async def run_out(self) -> int:
        return await self.step(self.total - self.acked)


async def echo_round_trips(ws: ClientConnection, count: int) -> None:
    for _ in range(count):
        await ws.send(ECHO_ACK)
        reply = await ws.recv()
        if not isinstance(reply, str) or not reply.startswith(ECHO_REPLY):
            raise RuntimeError(f"unexpected echo reply {reply!r:.120}")


async def started(server: BenchServer, user: str, span: tuple[str, str]) -> RawSimulation:
    """A new connection of `user` with one new session over `span`, started."""
    ws = await server.open(user)
    (session_id,) = await create_sessions(ws, 1, create_frame(SESSION_SYMBOLS, span))
    simulation = RawSimulation(ws, session_id)
    await simulation.start()
    return simulation


# ------------------------------------------------------------------------------ phases


@dataclass
class Run:
    server: BenchServer
    memory_symbols: list[str]
    out: list[Figure] = field(default_factory=list)
    echo_rate: float = 0.0
    """Echo round trips/s on one connection (phase 1), for the SDK's figure."""
    raw_rate: float = 0.0

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        target: str | None = None,
        ok: bool | None = None,
        note: str = "",
    ) -> None:
        self.out.append(Figure(name, value, unit, target, ok, note))


async def warm_up(run: Run) -> None:
    """Every path runs once before anything is timed: a whole simulation, and echo."""
    simulation = await started(run.server, "warm", SHORT_SPAN)
    await simulation.run_out()
    echo_ws = await run.server.open_echo()
    await echo_round_trips(echo_ws, 1_000)
    await close_all([simulation.ws, echo_ws])


async def memory(run: Run) -> None:
    """(3) RSS of the server before and after starting `MEMORY_RSS` simulations of 10
    symbols x 10 years (sessions created beforehand), then tracemalloc over a few more."""
    server = run.server
    ws = await server.open("memory")
    text = create_frame(run.memory_symbols, MEMORY_SPAN)
    ids = await create_sessions(ws, MEMORY_RSS + MEMORY_TRACED + 1, text)
    warm = RawSimulation(ws, ids.pop())  # builds one first: the store's read path is warm
    await warm.start()
    simulations = [RawSimulation(ws, s) for s in ids]
    rss_before = server.ask("rss")
    for simulation in simulations[:MEMORY_RSS]:
        await simulation.start()
    rss_after = server.ask("rss")
    server.ask("trace-start")
    for simulation in simulations[MEMORY_RSS:]:
        await simulation.start()
    traced = server.ask("trace-stop")
    ticks = simulations[0].total
    await delete_sessions(ws, [warm.session_id, *ids])
    await ws.close()

    bars = f"{MEMORY_SYMBOLS} symbols x 10 years of daily bars, {ticks:,} ticks each"
    run.add(
        "memory per running simulation (RSS delta / n)",
        (rss_after - rss_before) / MEMORY_RSS / 1e6,
        "MB",
        note=f"an upper bound: server process after gc, {MEMORY_RSS} started; {bars}",
    )
    run.add(
        "memory per running simulation (tracemalloc)",
        traced / MEMORY_TRACED / 1e6,
        "MB",
        note=f"live Python objects after gc over {MEMORY_TRACED} more started",
    )


async def delete_sessions(ws: ClientConnection, ids: Sequence[str]) -> None:
    """Delete sessions (their simulations stop and are dropped)."""
    for session_id in ids:
        await ws.send(ref_frame("delete_session", session_id))
        reply = await ws.recv()
        if not isinstance(reply, str) or not reply.startswith(expect("session_deleted")):
            raise RuntimeError(f"delete refused: {reply!r:.200}")


async def one_connection(run: Run) -> None:
    """(1) One simulation on one connection, in blocks of `BLOCK` ticks, each block
    preceded by as many echo round trips on another connection."""
    server = run.server
    simulation = await started(server, "one", LONG_SPAN)
    echo_ws = await server.open_echo()
    tick_seconds = echo_seconds = 0.0
    echoes = 0
    while not simulation.done:
        began = time.perf_counter()
        await echo_round_trips(echo_ws, BLOCK)
        between = time.perf_counter()
        await simulation.step(BLOCK)
        ended = time.perf_counter()
        echo_seconds += between - began
        tick_seconds += ended - between
        echoes += BLOCK
    await close_all([simulation.ws, echo_ws])
    ticks = simulation.total
    run.raw_rate, run.echo_rate = ticks / tick_seconds, echoes / echo_seconds
    ratio = run.raw_rate / run.echo_rate
    run.add(
        "echo, 1 conn (tick_ack-shaped frame)",
        run.echo_rate,
        "rt/s",
        note=f"{echoes:,} round trips, interleaved in blocks of {BLOCK}",
    )
    run.add(
        "simulation, 1 conn, raw client",
        run.raw_rate,
        "ticks/s",
        note=f"5 symbols x 4 years: {ticks:,} ticks, tick_ack with no orders",
    )
    run.add(
        "simulation, 1 conn: ticks/s ÷ echo rt/s",
        ratio,
        "x",
        f"≥ {TICK_VS_ECHO_TARGET}",
        ratio >= TICK_VS_ECHO_TARGET,
        f"{1e6 / run.raw_rate:.0f} µs per tick vs {1e6 / run.echo_rate:.0f} µs per echo",
    )


async def concurrent(run: Run) -> None:
    """(2) 50 simulations on 50 connections (one user each) at once, against 50 echo
    connections doing as many round trips each, before and after; server CPU of each."""
    server = run.server
    users = users_named("conc", CONCURRENT)
    simulations = list(await asyncio.gather(*(started(server, u, SHORT_SPAN) for u in users)))
    per_connection = simulations[0].total
    echoes = await server.open_many_echo(CONCURRENT)

    async def timed_echo(count: int) -> tuple[float, float]:
        cpu, began = server.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(echo_round_trips(ws, count) for ws in echoes))
        return time.perf_counter() - began, server.cpu_seconds() - cpu

    half = per_connection // 2
    first = await timed_echo(half)
    cpu, began = server.cpu_seconds(), time.perf_counter()
    done = await asyncio.gather(*(s.run_out() for s in simulations))
    tick_wall, tick_cpu = time.perf_counter() - began, server.cpu_seconds() - cpu
    second = await timed_echo(per_connection - half)
    await close_all([*echoes, *(s.ws for s in simulations)])

    ticks, echo_count = sum(done), CONCURRENT * per_connection
    echo_wall, echo_cpu = first[0] + second[0], first[1] + second[1]
    tick_rate, echo_rate = ticks / tick_wall, echo_count / echo_wall
    per_tick, per_echo = tick_cpu / ticks * 1e6, echo_cpu / echo_count * 1e6
    label = f"{CONCURRENT} simulations on {CONCURRENT} conns"
    run.add(
        f"echo, {CONCURRENT} conns at once",
        echo_rate,
        "rt/s",
        note=f"{echo_count:,} round trips, half before and half after the simulations",
    )
    run.add(
        f"{label}: aggregate",
        tick_rate,
        "ticks/s",
        note=f"5 symbols x 1 year: {per_connection:,} ticks each, {ticks:,} in all",
    )
    run.add(f"{label}: ticks/s ÷ echo rt/s", tick_rate / echo_rate, "x")
    run.add(
        f"{label}: server CPU per tick", per_tick, "µs", note=f"{per_tick / per_echo:.2f}x echo"
    )
    run.add(f"echo, {CONCURRENT} conns: server CPU per round trip", per_echo, "µs")


async def create_one_connection(run: Run) -> None:
    """(4) create_session of the 5-symbol 4-year session on one connection, interleaved
    with echo in blocks of 100 (`benchmarks.server.against_echo`)."""
    server = run.server
    text = create_frame(SESSION_SYMBOLS, LONG_SPAN)
    connections = [await server.open(u) for u in users_named("create", CREATE_USERS)]
    echo_ws = await server.open_echo()
    await create_sessions(connections[0], 1, text)  # validation of this span is now cached
    jobs: list[Job] = [
        (ws, [text] * (CREATES_PER_USER - (i == 0)), expect("session_created"), None)
        for i, ws in enumerate(connections)
    ]
    create, echo = await against_echo(echo_ws, jobs)
    await close_all([*connections, echo_ws])
    ratio = create.p50_ms / echo.p50_ms
    errors = f", {create.errors} UNEXPECTED REPLIES" if create.errors else ""
    run.add(
        "create_session (5 symbols, 4 years), 1 conn: p50",
        create.p50_ms,
        "ms",
        note=f"{len(create.latencies):,} round trips, p99 {create.p99_ms:.2f} ms{errors}",
    )
    run.add(
        "create_session (5 symbols, 4 years): p50 ÷ echo",
        ratio,
        "x",
        f"≤ {CREATE_VS_ECHO_TARGET}x",
        ratio <= CREATE_VS_ECHO_TARGET,
        f"echo p50 {echo.p50_ms:.3f} ms; validation cached, coverage read each time",
    )


class Idle(Strategy):
    """Places nothing: the SDK's own cost per tick."""


def sdk(run: Run) -> None:
    """(1, informative) The same session through `run_backtest(server=...)`, blocking, in
    its own event loop: the SDK's decode, the context and the strategy loop included."""
    server = run.server
    access = server.tokens["sdk"]
    now = datetime.now(UTC)
    token = Token(access, now, jwt_expiry(access) or now, "sdk", "enterprise")
    walls = []
    for _ in range(2):
        results = run_backtest(
            Idle,
            SESSION_SYMBOLS,
            *LONG_SPAN,
            100_000,
            auth=AuthClient(f"http://{server.base}", token=token),
        )
        walls.append(results.wall_time_ms / 1000)
    rate = results.total_ticks / statistics.median(walls)
    run.add(
        "simulation, 1 conn, SDK run_backtest (no-op strategy)",
        rate,
        "ticks/s",
        note=(
            f"{results.total_ticks:,} ticks, create to results; {rate / run.echo_rate:.2f}x echo, "
            f"{rate / run.raw_rate:.2f}x the raw client"
        ),
    )


# ------------------------------------------------------------------------------ entry point

NOTES = """\
server: benchmarks.server's (own process, real app + echo route, enterprise limits raised,
        running simulations at the plan's 50 per user); clients: raw `websockets`, frames
        encoded before timing, tick_ack with no orders; loopback only.
ratios: ticks/s ÷ echo round trips/s, echo carrying a tick_ack-shaped frame; one
        connection: blocks of 100 ticks, each after 100 echo round trips."""


def run() -> list[Figure]:
    raise_fd_limit()
    print(NOTES)
    users = [
        "warm",
        "memory",
        "one",
        "sdk",
        *users_named("conc", CONCURRENT),
        *users_named("create", CREATE_USERS),
    ]
    with tempfile.TemporaryDirectory(prefix="simutrador-bench-") as home:
        seeded = seed_home(
            Path(home), DateRange.parse(*MEMORY_SPAN), MEMORY_SYMBOLS, SESSION_SYMBOLS
        )
        print(seeded.note)
        state = Run(BenchServer(seeded.home, users), seeded.symbols)

        async def phases() -> None:
            # Memory first, on a heap that has not grown and shrunk yet.
            await warm_up(state)
            await memory(state)
            await one_connection(state)
            await concurrent(state)
            await create_one_connection(state)

        try:
            asyncio.run(phases())
            sdk(state)
        finally:
            state.server.stop()
    return state.out
