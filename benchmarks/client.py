"""The SDK's own cost per bar of a remote run, without the network: the SMA crossover
(examples/sma_cross_pure.py) on backtesting.py's 2,148 GOOG daily bars, in windows of bars
(PROTOCOL §7.14), run once against `simutrador serve` on loopback with every reply kept,
then replayed into `RemoteDriver` and `drive` (each frame decoded as the SDK's reader
decodes it): the client's CPU per bar, best of a few replays (the machine may be shared).
That is what the strategy loop, the window's bars and the results cost the client; what is
left of a live run is the transport (WebSocket frames, compression, sockets).

Baselines measured in the same run: the live run's client CPU per bar (the transport and
the connection included), and the same strategy in process (`run_backtest` without a
server: the engine included, no wire)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from dependency_injector import providers

from benchmarks.engine import GOOG_INSTRUMENT, goog_series
from benchmarks.latency import EXAMPLE, GOOG_SPAN
from benchmarks.processes import ServeProcess
from benchmarks.report import Figure
from domain.limits import Plan
from entrypoints.container import Container
from entrypoints.protocol import messages as m
from entrypoints.sdk import BacktestResults, run_backtest
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.backtest import drive
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.remote import RemoteDriver
from entrypoints.settings import Settings

PARAMS = {"fast": 10, "slow": 20}
COMMISSION_PCT = "0.001"
CAPITAL = Decimal(10_000)
REPLAYS = 15
LIVE_RUNS = 3
IN_PROCESS_RUNS = 5

Reply = bytes | list[bytes]
"""A `request`'s reply, or the messages an `exchange` collected, each as encoded JSON."""


@dataclass(frozen=True)
class Served:
    port: int
    key: str
    home: Path


@contextmanager
def serving() -> Iterator[Served]:
    """`simutrador serve` in its own process over a temporary home holding GOOG's daily bars,
    and an API key for it."""
    with tempfile.TemporaryDirectory(prefix="simutrador-client-") as root:
        home = Path(root) / "home"
        home.mkdir()
        container = Container()
        settings = Settings.from_env({"SIMUTRADOR_HOME": str(home)})
        container.settings.override(providers.Object(settings))
        try:
            service = container.market_data_service()
            asyncio.run(service.register_instrument(GOOG_INSTRUMENT))
            asyncio.run(service.import_bars(goog_series(), replace=False))
            auth = container.auth_service()
            key = asyncio.run(auth.create_api_key("client", Plan.ENTERPRISE)).secret
        finally:
            container.bar_store().close()
        with ServeProcess(home) as server:
            yield Served(server.port, key, home)


def new_driver(auth: AuthClient) -> RemoteDriver:
    return RemoteDriver(
        auth,
        ["GOOG"],
        *GOOG_SPAN,
        CAPITAL,
        "1d",
        engine_settings={"commission_pct": COMMISSION_PCT},
    )


async def timed_drive(driver: RemoteDriver) -> tuple[float, BacktestResults]:
    """Client CPU seconds of one run through `driver`, and its results."""
    strategy = load_strategy(EXAMPLE)()
    began = time.process_time()
    try:
        results = await drive(strategy, driver, params=PARAMS)
    finally:
        spent = time.process_time() - began
        await driver.close()
    return spent, results


def live(served: Served, replies: list[Reply] | None = None) -> tuple[float, BacktestResults]:
    """A run against the server (the token fetched before the clock starts); with
    `replies`, every reply the driver gets is kept there, encoded."""

    async def go() -> tuple[float, BacktestResults]:
        auth = AuthClient(f"http://127.0.0.1:{served.port}", served.key)
        await auth.access_token()
        driver = new_driver(auth)
        if replies is not None:
            keep(driver, replies)
        return await timed_drive(driver)

    return asyncio.run(go())


def keep(driver: RemoteDriver, replies: list[Reply]) -> None:
    client = driver.client
    exchange, request = client.exchange, client.request

    async def kept_exchange(message: m.ClientMessage, last: Any, **options: Any) -> Any:
        received = await exchange(message, last, **options)
        replies.append([m.encoder.encode(x) for x in received])
        return received

    async def kept_request(message: m.ClientMessage, reply_type: Any, **options: Any) -> Any:
        reply = await request(message, reply_type, **options)
        replies.append(m.encoder.encode(reply))
        return reply

    client.exchange = kept_exchange  # type: ignore[method-assign]
    client.request = kept_request  # type: ignore[method-assign]


def replay(replies: list[Reply]) -> tuple[float, BacktestResults]:
    """The run again, each reply decoded from its JSON when the driver asks for it, in
    order; nothing leaves the process (the client never connects)."""
    pending = iter(replies)

    async def exchange(message: m.ClientMessage, last: Any, **options: Any) -> Any:
        frames = next(pending)
        assert isinstance(frames, list)
        return [m.server_decoder.decode(frame) for frame in frames]

    async def request(message: m.ClientMessage, reply_type: Any, **options: Any) -> Any:
        frame = next(pending)
        assert isinstance(frame, bytes)
        return m.server_decoder.decode(frame)

    async def go() -> tuple[float, BacktestResults]:
        driver = new_driver(AuthClient("http://127.0.0.1:9", "unused"))
        client = driver.client
        client.exchange = exchange  # type: ignore[method-assign]
        client.request = request  # type: ignore[method-assign]
        return await timed_drive(driver)

    return asyncio.run(go())


def in_process(home: Path) -> tuple[float, BacktestResults]:
    previous = os.environ.get("SIMUTRADOR_HOME")
    os.environ["SIMUTRADOR_HOME"] = str(home)
    try:
        strategy = load_strategy(EXAMPLE)
        began = time.process_time()
        results = run_backtest(
            strategy, "GOOG", *GOOG_SPAN, CAPITAL, params=PARAMS, commission_pct=COMMISSION_PCT
        )
        return time.process_time() - began, results
    finally:
        if previous is None:
            del os.environ["SIMUTRADOR_HOME"]
        else:
            os.environ["SIMUTRADOR_HOME"] = previous


def comparable(results: BacktestResults) -> Mapping[str, Any]:
    return {
        "trades": results.trades,
        "equity_curve": results.equity_curve,
        "metrics": results.metrics,
        "prices": {
            s: [bytes(c) for c in (t.times, t.opens, t.highs, t.lows, t.closes, t.volumes)]
            for s, t in results.prices.items()
        },
    }


def best(runs: int, one: Callable[[], tuple[float, BacktestResults]]) -> float:
    return min(one()[0] for _ in range(runs))


def run() -> list[Figure]:
    replies: list[Reply] = []
    with serving() as served:
        _, recorded = live(served, replies)
        live_cpu = best(LIVE_RUNS, lambda: live(served))
        in_process(served.home)  # the first run in a process sets up the container
        local_cpu = best(IN_PROCESS_RUNS, lambda: in_process(served.home))
        local = in_process(served.home)[1]
    replayed = [replay(replies) for _ in range(REPLAYS)]
    replay_cpu = min(cpu for cpu, _ in replayed)
    bars = recorded.total_ticks
    same = all(comparable(r) == comparable(recorded) for _, r in replayed)
    same = same and comparable(local) == comparable(recorded)
    per_bar = replay_cpu / bars * 1e6
    print(
        f"GOOG SMA (examples/sma_cross_pure.py), {bars:,} bars, windows asked: the default; "
        f"{len(replies)} replies kept and replayed {REPLAYS} times (client CPU, best)"
    )
    return [
        Figure(
            "SDK CPU per bar, remote run replayed (no network)",
            per_bar,
            "us",
            note=(
                f"{replay_cpu * 1000:.0f} ms a run; live on loopback {live_cpu * 1000:.0f} ms "
                f"({live_cpu / bars * 1e6:.0f} us a bar, the transport included; best of "
                f"{LIVE_RUNS}); " + ("same results" if same else "RESULTS DIFFER")
            ),
        ),
        Figure(
            "SDK per bar, replayed remote / in process",
            replay_cpu / local_cpu,
            "x",
            note=(
                f"in process {local_cpu / bars * 1e6:.1f} us a bar (the engine included; "
                f"best of {IN_PROCESS_RUNS})"
            ),
        ),
    ]
