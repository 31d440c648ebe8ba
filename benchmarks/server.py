"""The server measured over real WebSockets on loopback, every speed figure a ratio to the
echo baseline (`benchmarks/echo.py`) measured in the same run on the same server.

The server runs in its own process (spawned, so it shares no interpreter or GIL with the
clients); the clients are one asyncio process using raw `websockets` connections with
pre-encoded frames and no compression. On a 2-core machine each side gets about one core.
Plan limits are raised for the benchmark users (enterprise, see `ROOMY`) so that rate and
session limits never answer instead of the code being measured. The server's home is a
temporary directory whose bar store is seeded before the server starts, with synthetic
daily bars for exactly the symbols the benchmark asks for (`benchmarks.core.seed_home`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from benchmarks.core import seed_home
from benchmarks.echo import ECHO_PATH, ServerSpec, raise_fd_limit, serve_in_process
from benchmarks.report import Figure
from domain.dates import DateRange
from domain.limits import PLAN_DEFAULTS, Plan

SEQUENTIAL = 1_000
"""Round trips per operation on one connection."""
FANOUT_CONNECTIONS = 200
FANOUT_MESSAGES = 100
OPEN_CONNECTIONS = 1_000
OPEN_SAMPLE = 500
"""Round trips per operation on one more connection while the 1,000 are open."""
STORED = 10_000
TRACED = 1_000
PER_USER = 100
"""Sessions a creating user ends up with: the enterprise plan's default cap."""
HOARD = 1_000
VALIDATION_SAMPLE = 200
VALIDATED_SYMBOLS = 50
SMALL_LIST, LARGE_LIST = 5, 50

CREATE_VS_ECHO_TARGET = 2.0
P99_TARGET_MS = 20.0
MEMORY_TARGET_BYTES = 2048
FLAT_TARGET = 1.5

ROOMY = dataclasses.replace(
    PLAN_DEFAULTS[Plan.ENTERPRISE],
    max_active_sessions=1_000_000,
    sessions_per_hour=10_000_000,
    max_connections=10_000,
    messages_per_minute=100_000_000,
)
"""Enterprise limits raised so that no limit distorts a figure (the checks still run)."""

SESSION_SYMBOLS = ["AAPL", "MSFT", "EUR/USD", "BTC-USD", "GC"]
SPAN = ("2023-01-03", "2023-12-29")
VALIDATED_SPAN = ("2019-01-02", "2021-12-31")
"""What the 50 symbols of the validation phase must all cover: every span it asks for."""


# ------------------------------------------------------------------------------ frames


def frame(kind: str, data: dict[str, Any] | None = None) -> str:
    message: dict[str, Any] = {"type": kind}
    if data is not None:
        message["data"] = data
    return msgspec.json.encode(message).decode()


def create_frame(symbols: Sequence[str] = SESSION_SYMBOLS, span: tuple[str, str] = SPAN) -> str:
    return frame(
        "create_session",
        {
            "symbols": list(symbols),
            "start_date": span[0],
            "end_date": span[1],
            "initial_capital": "100000.00",
        },
    )


def ref_frame(kind: str, session_id: str) -> str:
    return frame(kind, {"session_id": session_id})


LIST_FRAME = frame("list_sessions", {})
ECHO_FRAME = ref_frame("get_session", "sess_" + "x" * 32)
"""Echo carries a frame shaped like a real request."""


def expect(kind: str) -> str:
    return '{"type":"' + kind + '"'


class _Ref(msgspec.Struct):
    session_id: str


class _Created(msgspec.Struct):
    data: _Ref


_created = msgspec.json.Decoder(_Created)


def created_id(reply: str) -> str:
    return _created.decode(reply).data.session_id


# ------------------------------------------------------------------------------ measuring


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed


Job = tuple[ClientConnection, Sequence[str], str, list[str] | None]
"""A connection, the frames it sends one by one, the reply type expected, and where to keep
the replies (or None)."""


async def drive(job: Job, latencies: list[float]) -> int:
    ws, frames, expected, replies = job
    errors = 0
    for text in frames:
        started = time.perf_counter()
        await ws.send(text)
        reply = await ws.recv()
        latencies.append(time.perf_counter() - started)
        if not isinstance(reply, str) or not reply.startswith(expected):
            errors += 1
        elif replies is not None:
            replies.append(reply)
    return errors


async def measure(jobs: Sequence[Job]) -> Sample:
    """Run every job at once, each connection sequentially; one latency per round trip."""
    sample = Sample()
    started = time.perf_counter()
    errors = await asyncio.gather(*(drive(job, sample.latencies) for job in jobs))
    sample.elapsed = time.perf_counter() - started
    sample.errors = sum(errors)
    return sample


# ------------------------------------------------------------------------------ the server


class BenchServer:
    """The server process, its control pipe, and the tokens of the benchmark users."""

    def __init__(self, home: Path, users: Sequence[str], storage: str = "sqlite") -> None:
        spec = ServerSpec(
            home=home,
            jwt_secret=secrets.token_urlsafe(32),
            plan_limits={**PLAN_DEFAULTS, Plan.ENTERPRISE: ROOMY},
            users=tuple((user, Plan.ENTERPRISE) for user in users),
            storage=storage,
        )
        context = multiprocessing.get_context("spawn")
        self._control, child_end = context.Pipe()
        self._process = context.Process(
            target=serve_in_process, args=(child_end, spec), name="simutrador-bench-server"
        )
        self._process.start()
        child_end.close()
        port, self.pid, self.tokens = self._receive(120.0)
        self.base = f"127.0.0.1:{port}"

    def _receive(self, timeout: float) -> Any:
        try:
            if not self._control.poll(timeout):
                raise RuntimeError("the benchmark server did not answer")
            answer = self._control.recv()
        except EOFError:
            self._process.join(5)
            raise RuntimeError(
                f"the benchmark server exited (code {self._process.exitcode})"
            ) from None
        if isinstance(answer, Exception):
            raise answer
        return answer

    def ask(self, command: str | tuple[Any, ...]) -> Any:
        self._control.send(command)
        return self._receive(120.0)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used (Linux /proc)."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"http://{self.base}/health", timeout=30).json()
        return body

    async def open(self, user: str) -> ClientConnection:
        ws = await connect(f"ws://{self.base}/ws/simulate?token={self.tokens[user]}")
        ready = await ws.recv()
        if not isinstance(ready, str) or not ready.startswith(expect("connection_ready")):
            raise RuntimeError(f"connection refused: {ready!r}")
        return ws

    async def open_echo(self) -> ClientConnection:
        return await connect(f"ws://{self.base}{ECHO_PATH}")

    async def open_many(
        self, users: Sequence[str], per_user: int, concurrency: int = 64
    ) -> list[ClientConnection]:
        gate = asyncio.Semaphore(concurrency)

        async def one(user: str) -> ClientConnection:
            async with gate:
                return await self.open(user)

        return list(await asyncio.gather(*(one(u) for u in users for _ in range(per_user))))

    async def open_many_echo(self, count: int) -> list[ClientConnection]:
        return list(await asyncio.gather(*(self.open_echo() for _ in range(count))))

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(RuntimeError, OSError, EOFError):
                self.ask("stop")
            self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)
        self._control.close()


async def connect(url: str) -> ClientConnection:
    return await websockets.connect(
        url, compression=None, ping_interval=None, max_size=None, open_timeout=60
    )


async def close_all(connections: Iterable[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)


async def create_sessions(ws: ClientConnection, count: int, text: str | None = None) -> list[str]:
    replies: list[str] = []
    await drive((ws, [text or create_frame()] * count, expect("session_created"), replies), [])
    if len(replies) != count:
        raise RuntimeError(f"only {len(replies)} of {count} sessions were created")
    return [created_id(r) for r in replies]


# ------------------------------------------------------------------------------ figures


SECTIONS = ("one", "fanout", "open", "scale", "validation")
"""The order figures are printed in, whatever order the phases measure them in."""


@dataclass
class Figures:
    by_section: dict[str, list[Figure]] = field(default_factory=dict)
    section: str = SECTIONS[0]

    @property
    def items(self) -> list[Figure]:
        return [f for name in SECTIONS for f in self.by_section.get(name, [])]

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        target: str | None = None,
        ok: bool | None = None,
        note: str = "",
    ) -> None:
        figure = Figure(name, value, unit, target, ok, note)
        self.by_section.setdefault(self.section, []).append(figure)

    def latency(
        self,
        name: str,
        sample: Sample,
        echo: Sample | None,
        ratio_target: float | None = None,
        p99_target: float | None = None,
        ratio_note: str = "",
    ) -> None:
        note = f"{len(sample.latencies):,} round trips"
        if sample.errors:
            note += f", {sample.errors} UNEXPECTED REPLIES"
        self.add(f"{name}: p50", sample.p50_ms, "ms", note=note)
        if p99_target is None:
            self.add(f"{name}: p99", sample.p99_ms, "ms")
        else:
            ok = sample.p99_ms < p99_target
            self.add(f"{name}: p99", sample.p99_ms, "ms", f"< {p99_target:.0f} ms", ok)
        self.add(f"{name}: round trips/s", sample.rate, "rt/s")
        if echo is not None:
            ratio = sample.p50_ms / echo.p50_ms
            if ratio_target is None:
                self.add(f"{name}: p50 ÷ echo", ratio, "x", note=ratio_note)
            else:
                target = f"≤ {ratio_target:.0f}x"
                ok = ratio <= ratio_target
                self.add(f"{name}: p50 ÷ echo", ratio, "x", target, ok, ratio_note)


# ------------------------------------------------------------------------------ scenarios


def users_named(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n}" for n in range(count)]


@dataclass
class Users:
    """Every benchmark user. Creating users hold at most `PER_USER` sessions each (the
    enterprise plan's default cap), so figures reflect realistic users; `hoarder` is the
    exception, to show what owning many sessions costs."""

    warm: str = "warm"
    hoarder: str = "hoarder"
    validation: str = "validation"
    seq: list[str] = field(default_factory=lambda: users_named("seq", SEQUENTIAL // PER_USER))
    load: list[str] = field(default_factory=lambda: users_named("load", FANOUT_CONNECTIONS))
    small: list[str] = field(default_factory=lambda: users_named(f"list{SMALL_LIST}-", 10))
    large: list[str] = field(default_factory=lambda: users_named(f"list{LARGE_LIST}-", 4))
    idle: list[str] = field(default_factory=lambda: users_named("idle", 10))
    probe: list[str] = field(default_factory=lambda: users_named("probe", OPEN_SAMPLE // PER_USER))
    stored: list[str] = field(default_factory=lambda: users_named("stored", STORED // PER_USER))
    traced: list[str] = field(default_factory=lambda: users_named("traced", TRACED // PER_USER))

    def all(self) -> list[str]:
        return [
            self.warm,
            self.hoarder,
            self.validation,
            *self.seq,
            *self.load,
            *self.small,
            *self.large,
            *self.idle,
            *self.probe,
            *self.stored,
            *self.traced,
        ]


CREATE_NOTE = "validation cached; includes reading the bar store's coverage"
"""Since the bar store: a cached validation still asks the store whether coverage changed."""

LABELS = {
    "echo": "echo",
    "create": "create_session",
    "get": "get_session",
    "list5": f"list_sessions ({SMALL_LIST} own)",
    "list50": f"list_sessions ({LARGE_LIST} own)",
    "delete": "delete_session",
}


@dataclass
class Run:
    """What the phases share: the server, its users, and the figures so far."""

    server: BenchServer
    validated: list[str]
    """The symbols of the validation phase: stored bars cover `VALIDATED_SPAN`."""
    users: Users = field(default_factory=Users)
    out: Figures = field(default_factory=Figures)
    one: dict[str, Sample] = field(default_factory=dict)
    """Per operation, on one connection, with few sessions stored."""
    one_echo: dict[str, Sample] = field(default_factory=dict)
    """The echo round trips interleaved with each of those."""
    seq_sessions: list[tuple[ClientConnection, list[str]]] = field(default_factory=list)


async def against_echo(
    echo_ws: ClientConnection, jobs: Sequence[Job], block: int = 100
) -> tuple[Sample, Sample]:
    """The jobs one after another in blocks of `block` round trips, each block preceded by
    as many echo round trips: drift on a busy machine hits an operation and its baseline
    alike. Returns (operation, echo)."""
    operation, echo = Sample(), Sample()
    for ws, frames, expected, replies in jobs:
        for start in range(0, len(frames), block):
            part = frames[start : start + block]
            echo_job: Job = (echo_ws, [ECHO_FRAME] * len(part), expect("get_session"), None)
            echo.errors += await drive(echo_job, echo.latencies)
            operation.errors += await drive((ws, part, expected, replies), operation.latencies)
    for sample in (operation, echo):
        sample.elapsed = sum(sample.latencies)
    return operation, echo


async def setup_and_warm_up(run: Run) -> None:
    server, users = run.server, run.users
    for user, count in [(u, SMALL_LIST) for u in users.small] + [
        (u, LARGE_LIST) for u in users.large
    ]:
        ws = await server.open(user)
        await create_sessions(ws, count)
        await ws.close()
    # Both routes and every code path run before anything is timed; these stay stored.
    echo_ws, warm_ws = await server.open_echo(), await server.open(users.warm)
    await measure([(echo_ws, [ECHO_FRAME] * 300, expect("get_session"), None)])
    warm = await create_sessions(warm_ws, PER_USER)
    await measure([(warm_ws, [ref_frame("get_session", s) for s in warm] * 3, "", None)])
    await measure([(warm_ws, [LIST_FRAME] * 100, "", None)])
    await close_all([echo_ws, warm_ws])


async def one_connection(run: Run) -> None:
    """(1)-(2) on one connection at a time, few sessions stored (delete comes later)."""
    server, users, one, paired = run.server, run.users, run.one, run.one_echo
    echo_ws = await server.open_echo()
    one["echo"] = await measure([(echo_ws, [ECHO_FRAME] * SEQUENTIAL, expect("get_session"), None)])
    seq = [await server.open(user) for user in users.seq]
    replies: list[list[str]] = [[] for _ in seq]
    one["create"], paired["create"] = await against_echo(
        echo_ws,
        [
            (ws, [create_frame()] * PER_USER, expect("session_created"), kept)
            for ws, kept in zip(seq, replies, strict=True)
        ],
    )
    run.seq_sessions = [
        (ws, [created_id(r) for r in kept]) for ws, kept in zip(seq, replies, strict=True)
    ]
    one["get"], paired["get"] = await against_echo(
        echo_ws,
        [
            (ws, [ref_frame("get_session", s) for s in ids], expect("session_info"), None)
            for ws, ids in run.seq_sessions
        ],
    )
    for key, user in (("list5", users.small[0]), ("list50", users.large[0])):
        ws = await server.open(user)
        one[key], paired[key] = await against_echo(
            echo_ws, [(ws, [LIST_FRAME] * SEQUENTIAL, expect("session_list"), None)]
        )
        await ws.close()
    await echo_ws.close()


async def scale(run: Run) -> None:
    """(4): 10,000 more live sessions across 100 users (100 each): memory per session, and
    whether get and list slow down with that many stored."""
    server, users, out = run.server, run.users, run.out
    out.section = "scale"
    writers = await server.open_many(users.stored, 1)
    rss_before = server.ask("rss")
    populated = await measure(
        [(ws, [create_frame()] * PER_USER, expect("session_created"), None) for ws in writers]
    )
    rss_after = server.ask("rss")
    tracers = await server.open_many(users.traced, 1)
    server.ask("trace-start")
    await measure(
        [(ws, [create_frame()] * PER_USER, expect("session_created"), None) for ws in tracers]
    )
    traced = server.ask("trace-stop")
    await close_all(tracers)
    stored = server.ask("stored")

    out.add(
        "live sessions stored",
        stored,
        "sessions",
        f"≥ {STORED:,}",
        stored >= STORED,
        f"{STORED:,} across {len(users.stored)} users + {TRACED:,} traced + the run's own",
    )
    out.add(
        f"create_session, {len(writers)} conns populating {STORED:,}",
        populated.rate,
        "rt/s",
        note=f"p50 {populated.p50_ms:.1f} ms, p99 {populated.p99_ms:.1f} ms",
    )
    per_rss = (rss_after - rss_before) / STORED
    out.add(
        "memory per session (RSS delta / n)",
        per_rss,
        "bytes",
        f"< {MEMORY_TARGET_BYTES:,} B",
        per_rss < MEMORY_TARGET_BYTES,
        f"server process after gc, {STORED:,} creates into a fresh heap",
    )
    per_traced = traced / TRACED
    out.add(
        "memory per session (tracemalloc)",
        per_traced,
        "bytes",
        f"< {MEMORY_TARGET_BYTES:,} B",
        per_traced < MEMORY_TARGET_BYTES,
        f"server process, live after gc, over {TRACED:,} more creates",
    )

    echo_ws = await server.open_echo()
    reader, stored_ids = writers[0], await owned_ids(writers[0])
    gets = [ref_frame("get_session", stored_ids[i % len(stored_ids)]) for i in range(SEQUENTIAL)]
    now = {"get": await against_echo(echo_ws, [(reader, gets, expect("session_info"), None)])}
    await close_all(writers)
    for key, user in (("list5", users.small[0]), ("list50", users.large[0])):
        ws = await server.open(user)
        now[key] = await against_echo(
            echo_ws, [(ws, [LIST_FRAME] * SEQUENTIAL, expect("session_list"), None)]
        )
        await ws.close()
    for key in ("get", "list5", "list50"):
        sample, echo = now[key]
        then = run.one[key].p50_ms / run.one_echo[key].p50_ms
        ratio = (sample.p50_ms / echo.p50_ms) / then
        out.add(
            f"{LABELS[key]}, 1 conn, {stored:,} stored: p50",
            sample.p50_ms,
            "ms",
            note=f"p99 {sample.p99_ms:.2f} ms; few stored: p50 {run.one[key].p50_ms:.2f} ms",
        )
        out.add(
            f"{LABELS[key]}: (p50 ÷ echo) at {stored:,} ÷ at few stored",
            ratio,
            "x",
            f"~1 (≤ {FLAT_TARGET}x)",
            ratio <= FLAT_TARGET,
            f"{sample.p50_ms / echo.p50_ms:.2f}x echo now, {then:.2f}x with few stored",
        )

    # The one-connection deletes, now (with everything stored; get/list show that is flat).
    run.one["delete"], run.one_echo["delete"] = await against_echo(
        echo_ws,
        [
            (ws, [ref_frame("delete_session", s) for s in ids], expect("session_deleted"), None)
            for ws, ids in run.seq_sessions
        ],
    )
    await close_all([echo_ws, *(ws for ws, _ in run.seq_sessions)])
    out.section = "one"
    for key, label in LABELS.items():
        target = CREATE_VS_ECHO_TARGET if key == "create" else None
        name = f"{label}, 1 conn" + (f" ({stored:,} stored)" if key == "delete" else "")
        note = CREATE_NOTE if key == "create" else ""
        out.latency(name, run.one[key], run.one_echo.get(key), target, ratio_note=note)


async def owned_ids(ws: ClientConnection) -> list[str]:
    listed = msgspec.json.decode(await request(ws, LIST_FRAME))
    return [s["session_id"] for s in listed["data"]["sessions"]]


async def hoarding(run: Run) -> None:
    """What owning many sessions costs a create: the active-session limit is checked
    against the user's own sessions (informative; plans cap active sessions at 1-100)."""
    ws = await run.server.open(run.users.hoarder)
    few = await measure([(ws, [create_frame()] * PER_USER, expect("session_created"), None)])
    await create_sessions(ws, HOARD - 2 * PER_USER)
    many = await measure([(ws, [create_frame()] * PER_USER, expect("session_created"), None)])
    await ws.close()
    run.out.section = "scale"
    run.out.add(
        f"create_session, user owning ~{HOARD:,} ÷ owning 0-{PER_USER}",
        many.p50_ms / few.p50_ms,
        "x",
        note=f"p50 {many.p50_ms:.2f} vs {few.p50_ms:.2f} ms",
    )


async def fanout(run: Run) -> None:
    """(1)-(3) with 200 connections at once, 100 round trips each."""
    server, users = run.server, run.users
    many: dict[str, Sample] = {}
    cpu: dict[str, float] = {}

    async def timed(key: str, jobs: Sequence[Job]) -> None:
        """One operation on every connection at once, and the server's CPU time for it."""
        before = server.cpu_seconds()
        many[key] = await measure(jobs)
        cpu[key] = (server.cpu_seconds() - before) / len(many[key].latencies)

    echoes = await server.open_many_echo(FANOUT_CONNECTIONS)
    await timed(
        "echo", [(ws, [ECHO_FRAME] * FANOUT_MESSAGES, expect("get_session"), None) for ws in echoes]
    )
    await close_all(echoes)
    load = await server.open_many(users.load, 1)
    created: list[list[str]] = [[] for _ in load]
    await timed(
        "create",
        [
            (ws, [create_frame()] * FANOUT_MESSAGES, expect("session_created"), replies)
            for ws, replies in zip(load, created, strict=True)
        ],
    )
    owned = [[created_id(r) for r in replies] for replies in created]
    await timed(
        "get",
        [
            (ws, [ref_frame("get_session", s) for s in ids], expect("session_info"), None)
            for ws, ids in zip(load, owned, strict=True)
        ],
    )
    for key, listers in (("list5", users.small), ("list50", users.large)):
        connections = await server.open_many(listers, FANOUT_CONNECTIONS // len(listers))
        await timed(
            key,
            [
                (ws, [LIST_FRAME] * FANOUT_MESSAGES, expect("session_list"), None)
                for ws in connections
            ],
        )
        await close_all(connections)
    await timed(
        "delete",
        [
            (ws, [ref_frame("delete_session", s) for s in ids], expect("session_deleted"), None)
            for ws, ids in zip(load, owned, strict=True)
        ],
    )
    await close_all(load)
    label = f"{FANOUT_CONNECTIONS} conns x {FANOUT_MESSAGES}"
    run.out.section = "fanout"
    for key, name in LABELS.items():
        echo = None if key == "echo" else many["echo"]
        note = CREATE_NOTE if key == "create" else ""
        run.out.latency(f"{name}, {label}", many[key], echo, ratio_note=note)
        run.out.add(
            f"{name}, {label}: server CPU per round trip",
            cpu[key] * 1e6,
            "µs",
            note="" if key == "echo" else f"{cpu[key] / cpu['echo']:.2f}x echo",
        )


async def open_connections(run: Run) -> None:
    """(3)-(4): 1,000 connections open; one more connection's latency; then all busy."""
    server, users, out = run.server, run.users, run.out
    out.section = "open"
    before = server.health()["active_connections"]
    rss_before = server.ask("rss")
    started = time.perf_counter()
    idle = await server.open_many(users.idle, OPEN_CONNECTIONS // len(users.idle))
    opened_in = time.perf_counter() - started
    rss_after = server.ask("rss")
    reported = server.health()["active_connections"] - before
    out.add(
        "connections open at once",
        len(idle),
        "conns",
        f"≥ {OPEN_CONNECTIONS:,}",
        len(idle) >= OPEN_CONNECTIONS and reported >= OPEN_CONNECTIONS,
        f"server /health counts {reported:,}; opened in {opened_in:.1f} s "
        f"({len(idle) / opened_in:,.0f}/s, 64 at a time)",
    )
    out.add(
        "server memory per open connection",
        (rss_after - rss_before) / len(idle),
        "bytes",
        note="RSS delta / n; a lower bound: the heap already held earlier connections'",
    )

    # One more connection at a time (each probe user creating up to the cap) measures.
    echo_ws = await server.open_echo()
    probes = [await server.open(user) for user in users.probe]
    label = f"with {OPEN_CONNECTIONS:,} open"
    echo = await measure([(echo_ws, [ECHO_FRAME] * OPEN_SAMPLE, expect("get_session"), None)])
    replies: list[list[str]] = [[] for _ in probes]
    create, create_echo = await against_echo(
        echo_ws,
        [
            (ws, [create_frame()] * PER_USER, expect("session_created"), kept)
            for ws, kept in zip(probes, replies, strict=True)
        ],
    )
    owned = [[created_id(r) for r in kept] for kept in replies]
    get, get_echo = await against_echo(
        echo_ws,
        [
            (ws, [ref_frame("get_session", s) for s in ids], expect("session_info"), None)
            for ws, ids in zip(probes, owned, strict=True)
        ],
    )
    out.latency(f"echo, 1 conn {label}", echo, None)
    out.latency(
        f"create_session, 1 conn {label}",
        create,
        create_echo,
        p99_target=P99_TARGET_MS,
        ratio_note=CREATE_NOTE,
    )
    out.latency(f"get_session, 1 conn {label}", get, get_echo, p99_target=P99_TARGET_MS)

    # Every connection busy at once: latency is queueing behind 1,000 peers (informative).
    per_user = OPEN_CONNECTIONS // len(users.idle)
    targets: list[str] = []
    for n in range(len(users.idle)):
        targets += await create_sessions(idle[n * per_user], 1)
    busy = await measure(
        [
            (
                ws,
                [ref_frame("get_session", targets[i // per_user])] * 10,
                expect("session_info"),
                None,
            )
            for i, ws in enumerate(idle)
        ]
    )
    out.latency(f"get_session, {OPEN_CONNECTIONS:,} conns x 10 (all busy)", busy, None)

    await close_all([*idle, *probes, echo_ws])
    for _ in range(600):  # the server notices the closes asynchronously; wait up to 60 s
        if server.health()["active_connections"] <= before:
            break
        await asyncio.sleep(0.1)


async def request(ws: ClientConnection, text: str) -> str:
    await ws.send(text)
    reply = await ws.recv()
    if not isinstance(reply, str):
        raise RuntimeError("binary reply")
    return reply


async def validation(run: Run) -> None:
    """(5): create_session with 50 symbols, its validation cold (a range never seen, so a
    cache miss: the stored coverage and two to three years of bars of all 50 are read) and
    cached (the same request again: only the coverage check), interleaved with echo so
    drift hits all three alike."""
    out = run.out
    out.section = "validation"
    symbols = run.validated
    ws, echo_ws = await run.server.open(run.users.validation), await run.server.open_echo()
    cached_frame = create_frame(symbols, ("2019-01-02", "2020-12-31"))
    await create_sessions(ws, 1, cached_frame)
    cold, cached, echo = Sample(), Sample(), Sample()
    made = expect("session_created")
    for n in range(VALIDATION_SAMPLE):
        if n % PER_USER == PER_USER // 2:  # stay under the plan's cap, like everyone else
            await drive(
                (ws, [ref_frame("delete_session", s) for s in await owned_ids(ws)], "", None), []
            )
        span = ("2019-01-02", f"2021-{1 + n // 28:02d}-{1 + n % 28:02d}")
        cold.errors += await drive((ws, [create_frame(symbols, span)], made, None), cold.latencies)
        cached.errors += await drive((ws, [cached_frame], made, None), cached.latencies)
        echo.errors += await drive(
            (echo_ws, [ECHO_FRAME], expect("get_session"), None), echo.latencies
        )
    await close_all([ws, echo_ws])
    note = f"{VALIDATION_SAMPLE} each, interleaved with echo; cold reads the bars from the store"
    for label, sample in (("cold", cold), ("cached", cached)):
        if sample.errors:
            note += f"; {sample.errors} UNEXPECTED REPLIES ({label})"
    name = f"create_session, {VALIDATED_SYMBOLS} symbols"
    out.add(f"{name}, cold: p50", cold.p50_ms, "ms", note=note)
    out.add(f"{name}, cached: p50", cached.p50_ms, "ms")
    out.add(f"{name}: cold ÷ cached (p50)", cold.p50_ms / cached.p50_ms, "x")
    out.add(f"{name}, cold: p50 ÷ echo", cold.p50_ms / echo.p50_ms, "x")
    out.add(
        f"{name}, cached: p50 ÷ echo",
        cached.p50_ms / echo.p50_ms,
        "x",
        note=f"{len(SESSION_SYMBOLS)} symbols: see create_session, 1 conn",
    )


# ------------------------------------------------------------------------------ entry point

NOTES = f"""\
server: its own process (spawned), uvicorn + Litestar exactly as `simutrador serve` builds
        them, plus the echo route {ECHO_PATH}; clients: one asyncio process, raw `websockets`,
        pre-encoded frames, no compression; loopback only.
limits: enterprise plan raised for the benchmark users (sessions, rate, connections) so
        no limit answers instead of the code; every check still runs.
users:  each holds at most {PER_USER} sessions (the enterprise default cap), except `hoarder`.
ratios: ÷ echo compares p50 latencies with the echo route measured alongside (one
        connection: interleaved in blocks of 100); server CPU per round trip is the server
        process's own CPU time, so it does not depend on how fast the client is."""


def run() -> list[Figure]:
    fd_limit = raise_fd_limit()
    if fd_limit < 2 * OPEN_CONNECTIONS + 200:
        raise RuntimeError(f"open-files limit {fd_limit} is too low for {OPEN_CONNECTIONS}")
    print(NOTES)
    with tempfile.TemporaryDirectory(prefix="simutrador-bench-") as home:
        seeded = seed_home(
            Path(home), DateRange.parse(*VALIDATED_SPAN), VALIDATED_SYMBOLS, SESSION_SYMBOLS
        )
        print(seeded.note)
        run = Run(BenchServer(seeded.home, Users().all()), seeded.symbols)

        async def phases() -> None:
            # Order matters: RSS per session is only meaningful on a heap that has not yet
            # grown and shrunk, so the 10,000 are created before any bulk deletes.
            await setup_and_warm_up(run)
            await one_connection(run)
            await scale(run)
            await hoarding(run)
            await fanout(run)
            await validation(run)
            await open_connections(run)

        try:
            asyncio.run(phases())
        finally:
            run.server.stop()
    return run.out.items
