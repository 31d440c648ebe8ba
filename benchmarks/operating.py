"""What operating a server costs: the memory a completed session keeps (its results left
for the storage) against what holding its results as objects took, and the time of one
`GET /metrics` scrape with 10,000 stored sessions against `GET /health` on the same server,
measured in the same run; for SQLite (the default) and in-memory storage.

The server is `benchmarks.server`'s (its own spawned process, enterprise limits raised).
Each completed session is a raw WebSocket client running GOOGL's synthetic daily sample
over the twenty years up to the end of last year, buying 10 shares on one tick and selling them
`TRADE_EVERY` ticks later, all the way through (hundreds of round trips: results with
trades, fills and an equity curve of every day)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection

from benchmarks.core import seed_home
from benchmarks.echo import raise_fd_limit
from benchmarks.remote import COMPLETE, REFUSED, STARTED, TICK, until_step
from benchmarks.report import Figure
from benchmarks.server import BenchServer, close_all, create_frame, create_sessions, ref_frame
from domain.dates import DateRange

SYMBOL = "GOOGL"
SPAN = ("2006-01-03", "2025-12-31")
"""Twenty years: the longest range a session may span."""
COMPLETED = 50
TRACED = 5
"""More sessions run to completion while tracemalloc runs, for the live-objects figure."""
TRADE_EVERY = 10
STORED = 10_000
SCRAPES = 100
MEMORY_TARGET_BYTES = 100_000
STORAGES = ("sqlite", "memory")


class _StartedData(msgspec.Struct):
    total_ticks: int


class _Started(msgspec.Struct):
    data: _StartedData


_started = msgspec.json.Decoder(_Started)


def ack(session_id: str, sequence_id: int) -> str:
    """The tick_ack of tick `sequence_id`: a buy or a sell every TRADE_EVERY ticks."""
    data: dict[str, object] = {"session_id": session_id, "sequence_id": sequence_id}
    if sequence_id % TRADE_EVERY == 0:
        side = "buy" if sequence_id // TRADE_EVERY % 2 else "sell"
        order = {"order_id": f"o{sequence_id}", "symbol": SYMBOL, "side": side, "quantity": 10}
        data["orders"] = [order]
    return msgspec.json.encode({"type": "tick_ack", "data": data}).decode()


async def run_to_completion(ws: ClientConnection, session_id: str) -> int:
    """Start the session's simulation and ack every tick (trading) until it completes."""
    await ws.send(ref_frame("start_simulation", session_id))
    total = 0
    while True:
        reply = await ws.recv()
        if not isinstance(reply, str) or reply.startswith(REFUSED):
            raise RuntimeError(f"start_simulation refused: {reply!r:.300}")
        if reply.startswith(STARTED):
            total = _started.decode(reply).data.total_ticks
        elif reply.startswith(TICK):
            break
    for sequence_id in range(1, total + 1):
        await ws.send(ack(session_id, sequence_id))
        reply = await until_step(ws)
        if reply.startswith(COMPLETE) != (sequence_id == total):
            raise RuntimeError(f"tick {sequence_id} of {total}: unexpected {reply[:120]}")
    return total


async def completed_memory(server: BenchServer, storage: str, out: list[Figure]) -> None:
    ws = await server.open("runner")
    ids = await create_sessions(ws, 1 + COMPLETED + TRACED, create_frame([SYMBOL], SPAN))
    ticks = await run_to_completion(ws, ids[0])  # every path warm before measuring
    rss_before = server.ask("rss")
    began = time.perf_counter()
    for session_id in ids[1 : 1 + COMPLETED]:
        await run_to_completion(ws, session_id)
    seconds = time.perf_counter() - began
    rss_after = server.ask("rss")
    server.ask("trace-start")
    for session_id in ids[1 + COMPLETED :]:
        await run_to_completion(ws, session_id)
    traced = server.ask("trace-stop") / TRACED
    as_objects = server.ask(("results-as-objects", ids[1 : 1 + COMPLETED])) / COMPLETED
    await ws.close()

    rss = (rss_after - rss_before) / COMPLETED
    label = f"[{storage}] memory per completed session"
    runs = f"{COMPLETED} GOOGL runs of {ticks:,} ticks, a trade every {TRADE_EVERY}"
    out.append(
        Figure(
            f"{label} (RSS delta / n)",
            rss / 1e3,
            "KB",
            f"≤ {MEMORY_TARGET_BYTES // 1000} KB",
            rss <= MEMORY_TARGET_BYTES,
            f"after gc; {runs} ({COMPLETED * ticks / seconds:,.0f} ticks/s)",
        )
    )
    out.append(
        Figure(
            f"{label} (tracemalloc)",
            traced / 1e3,
            "KB",
            f"≤ {MEMORY_TARGET_BYTES // 1000} KB",
            traced <= MEMORY_TARGET_BYTES,
            f"live Python objects after gc, over {TRACED} more runs",
        )
    )
    out.append(
        Figure(
            f"[{storage}] baseline: its results held as objects",
            as_objects / 1e3,
            "KB",
            note=f"what a server kept per completed session before; now {traced / as_objects:.1%}",
        )
    )


def timed_gets(client: httpx.Client, url: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        response = client.get(url)
        latencies.append(time.perf_counter() - began)
        response.raise_for_status()
    return latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def hoard(server: BenchServer) -> int:
    """Sessions created until `STORED` are stored; how many are."""
    ws = await server.open("hoarder")
    text = create_frame([SYMBOL], ("2023-01-03", "2023-12-29"))
    await create_sessions(ws, STORED - int(server.ask("stored")), text)
    await close_all([ws])
    return int(server.ask("stored"))


def scrape_time(server: BenchServer, storage: str, out: list[Figure]) -> None:
    stored = asyncio.run(hoard(server))
    with httpx.Client(base_url=f"http://{server.base}", timeout=60, trust_env=False) as client:
        timed_gets(client, "/metrics", 5)
        scrapes: list[float] = []
        healths: list[float] = []
        for _ in range(SCRAPES // 10):  # interleaved, so both see the same machine
            scrapes += timed_gets(client, "/metrics", 10)
            healths += timed_gets(client, "/health", 10)
        size = len(client.get("/metrics").content)
    scrape, health = statistics.median(scrapes), statistics.median(healths)
    out.append(
        Figure(
            f"[{storage}] GET /metrics, {stored:,} sessions stored: p50",
            scrape * 1000,
            "ms",
            note=f"p99 {p99(scrapes) * 1000:.2f} ms; {SCRAPES} scrapes of {size:,} bytes",
        )
    )
    out.append(
        Figure(
            f"[{storage}] GET /metrics p50 ÷ GET /health p50",
            scrape / health,
            "x",
            note=f"/health p50 {health * 1000:.2f} ms (counts sessions and connections)",
        )
    )


def run() -> list[Figure]:
    raise_fd_limit()
    out: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="simutrador-bench-") as home:
        seeded = seed_home(Path(home), DateRange.parse(*SPAN), 1, [SYMBOL])
        for storage in STORAGES:  # one after the other, over the same bars
            server = BenchServer(seeded.home, ["runner", "hoarder"], storage=storage)
            try:
                asyncio.run(completed_memory(server, storage, out))
                scrape_time(server, storage, out)
            finally:
                server.stop()
    return out
