"""The web dashboard measured over real HTTP on loopback with 1,000 sessions stored: the
latency (p50 / p99) of each page and of the fragments its script polls (every 1-2 s per
open page), each against the `/health` route measured in the same run on the same server.

The server is the benchmark server of `benchmarks.server` (its own spawned process, the
real app as `simutrador serve` builds it, SQLite sessions in a temporary home). Ten users
hold 100 sessions each (the enterprise plan's cap); the measured user's list therefore has
100 rows, one of them a completed simulation (a full year of AAPL, every tick acknowledged
over the WebSocket). Requests go one at a time on one keep-alive connection, signed in with
the dashboard's cookie (the user's bearer token), so each figure is one request's latency."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import msgspec

from benchmarks.core import seed_home
from benchmarks.report import Figure
from benchmarks.server import (
    SESSION_SYMBOLS,
    SPAN,
    BenchServer,
    create_frame,
    create_sessions,
    frame,
    ref_frame,
)
from domain.dates import DateRange
from entrypoints.web.routes import TOKEN_COOKIE

USERS = 10
PER_USER = 100
STORED = USERS * PER_USER
SAMPLES = 200
"""Requests per page or fragment (after a warm-up of `WARM_UP`)."""
WARM_UP = 20
RATIO_TARGET = 3.0
"""A page or fragment about one session (p50) costs at most 3x a /health request: on a
machine shared with other work the wall-clock floor moves, the ratio much less."""
LIST_RATIO_TARGET = 5.0
"""The list of 100 sessions: each row is a stored session read, decoded and written out."""

NOTES = f"""
The dashboard with {STORED:,} sessions stored ({USERS} users x {PER_USER}): p50 / p99 of each
page and fragment over {SAMPLES} sequential requests, each also as a ratio of its p50 to the
p50 of GET /health (same server, same connection, same run)."""


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float
    p99_ms: float


def measure(get: Callable[[], httpx.Response], samples: int = SAMPLES) -> Latency:
    for _ in range(WARM_UP):
        get().raise_for_status()
    took = []
    for _ in range(samples):
        started = time.perf_counter()
        response = get()
        took.append(time.perf_counter() - started)
        response.raise_for_status()
    ordered = sorted(took)
    return Latency(
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    )


class _Started(msgspec.Struct):
    type: str


async def complete_simulation(server: BenchServer, user: str) -> str:
    """One session of `user` run to its end over the WebSocket (every tick acknowledged,
    no orders); its id."""
    ws = await server.open(user)
    try:
        await ws.send(
            frame(
                "create_session",
                {
                    "symbols": ["AAPL"],
                    "start_date": SPAN[0],
                    "end_date": SPAN[1],
                    "initial_capital": "100000.00",
                },
            )
        )
        created = msgspec.json.decode(await ws.recv())
        session_id: str = created["data"]["session_id"]
        await ws.send(ref_frame("start_simulation", session_id))
        while True:
            message = msgspec.json.decode(await ws.recv())
            kind = message["type"]
            if kind == "simulation_complete":
                return session_id
            if kind == "tick":
                data = message["data"]
                await ws.send(
                    frame(
                        "tick_ack",
                        {"session_id": session_id, "sequence_id": data["sequence_id"]},
                    )
                )
            elif kind in ("error", "session_error"):
                raise RuntimeError(f"the simulation failed: {message}")
    finally:
        await ws.close()


async def store_sessions(server: BenchServer, users: list[str]) -> tuple[str, str]:
    """`PER_USER` sessions for each user (one of the first user's completed); the ids of a
    ready session and of the completed one of the first user."""
    completed = await complete_simulation(server, users[0])
    ready = ""
    for user in users:
        ws = await server.open(user)
        try:
            wanted = PER_USER - 1 if user == users[0] else PER_USER
            ids = await create_sessions(ws, wanted, create_frame(SESSION_SYMBOLS[:2]))
            ready = ready or ids[0]
        finally:
            await ws.close()
    return ready, completed


def run() -> list[Figure]:
    print(NOTES)
    users = [f"dash{i}" for i in range(USERS)]
    with tempfile.TemporaryDirectory(prefix="simutrador-bench-") as home:
        seeded = seed_home(Path(home), DateRange.parse(*SPAN), 0, SESSION_SYMBOLS)
        server = BenchServer(seeded.home, users)
        try:
            ready, completed = asyncio.run(store_sessions(server, users))
            stored = server.ask("stored")
            if stored != STORED:
                raise RuntimeError(f"{stored} sessions stored, expected {STORED}")
            return measure_all(server, users[0], ready, completed)
        finally:
            server.stop()


def measure_all(server: BenchServer, user: str, ready: str, completed: str) -> list[Figure]:
    with httpx.Client(base_url=f"http://{server.base}", trust_env=False, timeout=60) as client:
        client.cookies.set(TOKEN_COOKIE, server.tokens[user])
        listed = client.get("/fragments/sessions").text.count("data-session=")
        if listed != PER_USER:
            raise RuntimeError(f"the list shows {listed} sessions, expected {PER_USER}")
        started = time.perf_counter()
        client.get(f"/sessions/{completed}/chart.json").raise_for_status()
        first_chart_ms = (time.perf_counter() - started) * 1000
        baseline = measure(lambda: client.get("/health"))
        routes = (
            ("sessions page", "/", LIST_RATIO_TARGET),
            ("sessions fragment", "/fragments/sessions", LIST_RATIO_TARGET),
            ("session page (ready)", "/sessions/{ready}", RATIO_TARGET),
            ("session fragment", "/fragments/sessions/{ready}", RATIO_TARGET),
            ("session page (completed)", "/sessions/{completed}", RATIO_TARGET),
            ("chart JSON (drawn before)", "/sessions/{completed}/chart.json", RATIO_TARGET),
            ("trades CSV", "/sessions/{completed}/trades.csv", RATIO_TARGET),
            ("market data page", "/market-data", RATIO_TARGET),
        )
        figures = [
            Figure("GET /health p50 (baseline)", baseline.p50_ms, "ms"),
            Figure("GET /health p99", baseline.p99_ms, "ms"),
        ]
        p50: dict[str, float] = {}
        for name, shown, target in routes:
            path = shown.format(ready=ready, completed=completed)
            latency = measure(partial(client.get, path))
            p50[name] = latency.p50_ms
            ratio = latency.p50_ms / baseline.p50_ms
            figures += [
                Figure(f"{name} p50", latency.p50_ms, "ms", note=f"GET {shown}"),
                Figure(f"{name} p99", latency.p99_ms, "ms"),
                Figure(
                    f"{name} p50 / health p50",
                    ratio,
                    "x",
                    target=f"<= {target:g}",
                    ok=ratio <= target,
                ),
            ]
        figures.append(
            Figure(
                "sessions fragment, per row",
                (p50["sessions fragment"] - p50["session fragment"]) / PER_USER,
                "ms",
                note=f"(list of {PER_USER} - one session's fragment) / {PER_USER}",
            )
        )
        figures.append(
            Figure(
                "chart JSON, first drawing",
                first_chart_ms,
                "ms",
                note="once per completed session (then cached); loads plotly the first time",
            )
        )
    return figures
