"""Durable and shared storage measured: the same server with `SIMUTRADOR_STORAGE=memory`,
`sqlite` and `redis` (a redis-server of its own on loopback), in the same run, on one
connection (create_session, get_session, and a `tick_ack` round trip, which with sqlite
commits one journal row and with redis appends one in a round trip to Redis); then, in
process, what a restart costs for a session 10,000 ticks in (checkpoint size and save time,
and the time from a fresh process to the resumed simulation's next tick).

The servers are `benchmarks.server`'s (a spawned process, raw WebSocket frames, each block
of requests interleaved with as many echo round trips); only the storage setting differs.
Without redis-server on the PATH the redis figures are left out, and a note says so."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from dependency_injector import providers

from adapters.bars.sqlite_store import SqliteBarStore
from adapters.storage.sqlite import SqliteSimulationCheckpoints
from application.principal import Principal
from application.simulation import Checkpoint, InputKind, SimulationInput
from benchmarks.echo import ServerSpec, serve_in_process
from benchmarks.report import Figure
from benchmarks.server import (
    ROOMY,
    SEQUENTIAL,
    BenchServer,
    Sample,
    against_echo,
    create_frame,
    created_id,
    expect,
    frame,
    ref_frame,
)
from domain.bars import Bar, BarSeries, DataSource, Timeframe
from domain.limits import PLAN_DEFAULTS, Plan
from domain.orders import OrderRequest, OrderSide, OrderType
from entrypoints.container import Container
from entrypoints.protocol.dispatcher import session_params
from entrypoints.sdk.backtest import session_request
from entrypoints.settings import Settings

RATIO_TARGET = 1.5
REDIS_RATIO_TARGET = 2.0
CHECKPOINTED_TICKS = 10_000
SYMBOL = "BTC-USD"
"""Trades around the clock: 10,000 hourly bars are 417 days of it."""
FIRST_BAR = datetime(2023, 1, 1, 1, tzinfo=UTC)
HOURLY_BARS = 10_500
ACKS = 2_000
ROUNDS = 2
USER = "bench"


def hourly_series() -> BarSeries:
    bars = []
    price = Decimal("20000.00")
    for i in range(HOURLY_BARS):
        price += Decimal((i * 7919) % 200 - 99)  # a deterministic wander
        bars.append(
            Bar(FIRST_BAR + timedelta(hours=i), price, price + 25, price - 25, price, Decimal(5))
        )
    return BarSeries.from_bars(SYMBOL, Timeframe.H1, bars)


def span_of(ticks: int) -> tuple[str, str]:
    last = FIRST_BAR + timedelta(hours=ticks - 1)
    return FIRST_BAR.date().isoformat(), last.date().isoformat()


def seed(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    store = SqliteBarStore(home / "bars.db")
    store.write_sync(hourly_series(), DataSource.IMPORTED, replace=True)
    store.close()


# ------------------------------------------------------------------------------ over the wire


@dataclass(frozen=True)
class StorageSpec(ServerSpec):
    storage: str = "sqlite"
    redis_url: str = ""

    def settings(self) -> Settings:
        settings = dataclasses.replace(super().settings(), storage=self.storage)
        if self.redis_url:
            settings = dataclasses.replace(settings, redis_url=self.redis_url)
        return settings


class StorageServer(BenchServer):
    """`BenchServer` with the storage setting chosen."""

    def __init__(self, home: Path, storage: str, redis_url: str = "") -> None:
        spec = StorageSpec(
            home=home,
            jwt_secret=secrets.token_urlsafe(32),
            plan_limits={**PLAN_DEFAULTS, Plan.ENTERPRISE: ROOMY},
            users=((USER, Plan.ENTERPRISE),),
            storage=storage,
            redis_url=redis_url,
        )
        context = multiprocessing.get_context("spawn")
        self._control, child_end = context.Pipe()
        self._process = context.Process(target=serve_in_process, args=(child_end, spec))
        self._process.start()
        child_end.close()
        port, self.pid, self.tokens = self._receive(120.0)
        self.base = f"127.0.0.1:{port}"


def hourly_create() -> str:
    """A `create_session` of the hourly series (what the home holds)."""
    text = create_frame([SYMBOL], span_of(HOURLY_BARS))
    return text.replace('"initial_capital"', '"timeframe":"1h","initial_capital"')


def ack_frame(session_id: str, sequence: int) -> str:
    return frame("tick_ack", {"session_id": session_id, "sequence_id": sequence})


async def ack_round_trips(server: BenchServer) -> Sample:
    """`tick_ack` → next `tick`, no orders, one simulation on one connection."""
    ws = await server.open(USER)
    await ws.send(hourly_create())
    sid = created_id(str(await ws.recv()))
    await ws.send(frame("start_simulation", {"session_id": sid}))
    while not str(await ws.recv()).startswith(expect("tick")):
        pass
    sample = Sample()
    for sequence in range(1, ACKS + 1):
        started = time.perf_counter()
        await ws.send(ack_frame(sid, sequence))
        while True:
            reply = str(await ws.recv())
            if reply.startswith(expect("tick")):
                break
        sample.latencies.append(time.perf_counter() - started)
    sample.elapsed = sum(sample.latencies)
    await ws.close()
    return sample


async def measure_server(server: BenchServer) -> dict[str, Sample]:
    echo = await server.open_echo()
    ws = await server.open(USER)
    kept: list[str] = []
    # Warm-up: every path once before anything is timed.
    await against_echo(echo, [(ws, [hourly_create()] * 200, expect("session_created"), kept)])
    ids = [created_id(r) for r in kept]
    await against_echo(
        echo, [(ws, [ref_frame("get_session", s) for s in ids], expect("session_info"), None)]
    )
    kept.clear()
    create, create_echo = await against_echo(
        echo, [(ws, [hourly_create()] * SEQUENTIAL, expect("session_created"), kept)]
    )
    ids = [created_id(r) for r in kept]
    get, get_echo = await against_echo(
        echo, [(ws, [ref_frame("get_session", s) for s in ids], expect("session_info"), None)]
    )
    await ws.close()
    await echo.close()
    return {
        "create": create,
        "create_echo": create_echo,
        "get": get,
        "get_echo": get_echo,
        "ack": await ack_round_trips(server),
    }


@contextlib.contextmanager
def running(home: Path, storage: str, redis_url: str = "") -> Iterator[BenchServer]:
    server = StorageServer(home, storage, redis_url)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str | None]:
    """A redis-server of the benchmark's own on a free loopback port (persisting nothing),
    as the tests start one; None when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(directory), "--logfile", str(directory / "redis.log")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


# ------------------------------------------------------------------------------ restart


def container_for(home: Path, every: int, storage: str = "sqlite") -> Container:
    container = Container()
    settings = Settings(
        home=home,
        jwt_secret=secrets.token_urlsafe(32),
        storage=storage,
        checkpoint_every_ticks=every,
        plan_limits={**PLAN_DEFAULTS, Plan.ENTERPRISE: ROOMY},
    )
    container.settings.override(providers.Object(settings))
    return container


def trades_on(sequence: int) -> list[OrderRequest]:
    """A trade every five ticks: thousands of execution reports in the state."""
    if sequence % 10 == 1:
        return [OrderRequest(f"b{sequence}", SYMBOL, OrderSide.BUY, OrderType.MARKET, Decimal(1))]
    if sequence % 10 == 6:
        return [OrderRequest(f"s{sequence}", SYMBOL, OrderSide.SELL, OrderType.MARKET, Decimal(1))]
    return []


PRINCIPAL = Principal(USER, Plan.ENTERPRISE, ROOMY)


async def drive(container: Container) -> tuple[str, float]:
    """Start a session of the hourly series and acknowledge 10,000 ticks with trades;
    returns its id and the seconds per tick."""
    sessions, simulations = container.session_service(), container.simulation_service()
    start, end = span_of(HOURLY_BARS)
    request = session_request([SYMBOL], start, end, Decimal(1_000_000), "1h", None)
    sid = (await sessions.create(PRINCIPAL, session_params(request, PRINCIPAL))).id
    simulation = await simulations.start(PRINCIPAL, sid, driver="c1")
    sequence = simulation.advance().tick.sequence_id
    started = time.perf_counter()
    while sequence < CHECKPOINTED_TICKS:
        _, _, step = await simulations.acknowledge(
            PRINCIPAL, sid, "c1", sequence, trades_on(sequence)
        )
        assert step is not None
        sequence = step.tick.sequence_id
    return sid, (time.perf_counter() - started) / CHECKPOINTED_TICKS


async def restart_figures(home: Path) -> list[Figure]:
    principal = PRINCIPAL
    _, in_memory = await drive(container_for(home, every=500, storage="memory"))
    first = container_for(home, every=500)
    simulations = first.simulation_service()
    sid, per_tick = await drive(first)
    run = simulations.run_of_any(sid)
    assert run is not None
    state = run.simulation.state()
    checkpoint = Checkpoint(
        sid, principal, 0, run.account_updates, run.simulation.total_ticks, 0, state
    )
    encoded = msgspec.json.encode(checkpoint)
    store: SqliteSimulationCheckpoints = first.checkpoints()
    save = best_of(5, lambda: store.save_sync(checkpoint))
    entry = SimulationInput(10**9, InputKind.ACK, 1)

    def appends() -> None:
        for _ in range(200):
            store.append_sync("bench-journal", entry)

    append = best_of(5, appends) / 200
    store.delete_sync("bench-journal")
    # The process is gone (nothing closed); a new one starts on the same home.
    started = time.perf_counter()
    second = container_for(home, every=500)
    found = await second.simulation_service().recover()
    recovered = time.perf_counter() - started
    resumed = await second.simulation_service().resume(principal, sid, "c2")
    pending = resumed.pending_tick()
    total = time.perf_counter() - started
    assert found.paused == [sid], found
    assert pending is not None
    assert pending.sequence_id == CHECKPOINTED_TICKS
    return [
        Figure(
            "restart: checkpoint size (10,000 ticks in)",
            len(encoded) / 1024,
            "KiB",
            note=f"{len(state.reports):,} execution reports, JSON",
        ),
        Figure("restart: checkpoint save (encode + write)", save * 1000, "ms"),
        Figure("restart: journal append (one tick_ack)", append * 1e6, "µs"),
        Figure(
            "in process, 10,000 ticks with trades: sqlite / memory",
            per_tick / in_memory,
            "x",
            note=f"{per_tick * 1e6:.1f} vs {in_memory * 1e6:.1f} µs/tick (journal, checkpoints)",
        ),
        Figure("restart: recover (rebuild over bars, restore, replay)", recovered * 1000, "ms"),
        Figure("restart: new process → resumed, next tick ready", total * 1000, "ms"),
    ]


def best_of(n: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


# ------------------------------------------------------------------------------ the suite


def ratio(
    name: str,
    sqlite: Sample,
    memory: Sample,
    target: float | None,
    echoes: tuple[Sample, Sample] | None = None,
    storage: str = "sqlite",
) -> Figure:
    """`storage`'s p50 over memory's; with `echoes` (the round trips interleaved with each),
    each p50 is first divided by its echo's, so that a neighbour's load during one run
    weighs on neither side alone."""
    value = sqlite.p50_ms / memory.p50_ms
    note = f"p50 {sqlite.p50_ms * 1000:.0f} µs vs {memory.p50_ms * 1000:.0f} µs"
    if echoes is not None:
        value = (sqlite.p50_ms / echoes[0].p50_ms) / (memory.p50_ms / echoes[1].p50_ms)
        note += f"; echo {echoes[0].p50_ms * 1000:.0f} vs {echoes[1].p50_ms * 1000:.0f} µs"
    label = f"{storage} / memory (p50" + (", each / its echo)" if echoes else ")")
    return Figure(
        f"{name}: {label}",
        value,
        "x",
        f"≤ {target}" if target is not None else None,
        value <= target if target is not None else None,
        note,
    )


def run() -> list[Figure]:
    with (
        tempfile.TemporaryDirectory(prefix="simutrador-bench-storage-") as tmp,
        redis_server(Path(tmp)) as redis_url,
    ):
        root = Path(tmp)
        seed(root / "memory")
        shutil.copytree(root / "memory", root / "sqlite")
        shutil.copytree(root / "memory", root / "restart")
        storages = ("memory", "sqlite") + (("redis",) if redis_url else ())
        # Each storage twice, alternating, keeping the better run of each operation: drift
        # on a shared machine (a neighbour's burst) then hits neither side alone.
        samples: dict[str, dict[str, Sample]] = {}
        for round_, storage in enumerate(storages * ROUNDS):
            home = root / f"{storage}{round_}"
            if not home.exists():
                shutil.copytree(root / "memory", home)
            # A database of its own per server run (the URL ends in /0).
            url = (
                f"{redis_url.rsplit('/', 1)[0]}/{round_}"
                if redis_url and storage == "redis"
                else ""
            )
            with running(home, storage, url) as server:
                got = asyncio.run(measure_server(server))
            best = samples.setdefault(storage, got)
            for op in ("create", "get"):
                key = f"{op}_echo"
                if got[op].p50_ms / got[key].p50_ms < best[op].p50_ms / best[key].p50_ms:
                    best[op], best[key] = got[op], got[key]
            if got["ack"].p50_ms < best["ack"].p50_ms:
                best["ack"] = got["ack"]
        memory, sqlite = samples["memory"], samples["sqlite"]
        figures = [
            ratio(
                "create_session",
                sqlite["create"],
                memory["create"],
                RATIO_TARGET,
                (sqlite["create_echo"], memory["create_echo"]),
            ),
            ratio(
                "get_session",
                sqlite["get"],
                memory["get"],
                RATIO_TARGET,
                (sqlite["get_echo"], memory["get_echo"]),
            ),
            ratio("tick_ack round trip", sqlite["ack"], memory["ack"], None),
        ]
        if redis_url:
            shared = samples["redis"]
            figures += [
                ratio(
                    f"{op}_session",
                    shared[op],
                    memory[op],
                    REDIS_RATIO_TARGET,
                    (shared[f"{op}_echo"], memory[f"{op}_echo"]),
                    storage="redis",
                )
                for op in ("create", "get")
            ]
            figures.append(
                ratio("tick_ack round trip", shared["ack"], memory["ack"], None, None, "redis")
            )
        else:
            figures.append(
                Figure(
                    "redis / memory: not measured",
                    0.0,
                    "",
                    note="redis-server is not installed (apt-get install redis-server)",
                )
            )
        for storage, got in samples.items():
            for op in ("create", "get"):
                paired = got[f"{op}_echo"]
                figures.append(
                    Figure(
                        f"{op}_session, {storage}: p50 (vs echo)",
                        got[op].p50_ms * 1000,
                        "µs",
                        note=f"echo {paired.p50_ms * 1000:.0f} µs",
                    )
                )
            figures.append(Figure(f"tick_ack, {storage}: p50", got["ack"].p50_ms * 1000, "µs"))
        figures += asyncio.run(restart_figures(root / "restart"))
        return figures
