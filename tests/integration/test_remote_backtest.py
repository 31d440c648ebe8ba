"""`run_backtest(server=...)` against a real server on loopback gives exactly what the
in-process runner gives over the same bars (the server's home): the same executions (ids,
prices, quantities, statuses), trades, daily equity and metrics. For the shipped examples,
for random orders of every kind, for two simulations of one user at once, and across
dropped connections (the SDK reconnects and resumes, mid-window too); with windows of bars
(the default, PROTOCOL §7.14) and one bar at a time (`window=1`) alike."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.limits import Plan
from entrypoints.sdk import BacktestResults, Bar, Context, Strategy, run_backtest
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.backtest import drive
from entrypoints.sdk.driver import DEFAULT_WINDOW
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.local import LocalDriver
from entrypoints.sdk.remote import RemoteDriver
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import build_container

D = Decimal
CAPITAL = D(100_000)
CENT = D("0.01")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def home_of(server: EmbeddedServer) -> Path:
    home: Path = server.container.settings().home
    return home


def comparable(results: BacktestResults) -> dict[str, Any]:
    """Everything a run produced that must not depend on the transport: executions (but
    for the session id), trades, daily equity, metrics, ticks, the bars seen (every field),
    the indicators' values, the lines plotted and the orders refused."""
    return {
        "executions": [msgspec.structs.replace(r, session_id="") for r in results.executions],
        "trades": results.trades,
        "equity_curve": results.equity_curve,
        "metrics": results.metrics,
        "total_ticks": results.total_ticks,
        "prices": {
            s: [list(column) for column in (t.times, t.opens, t.highs, t.lows, t.closes, t.volumes)]
            for s, t in results.prices.items()
        },
        "indicators": {
            name: (line.symbol, list(line.times), line.values.tobytes())  # NaN too
            for name, line in results.indicators.items()
        },
        "plots": {
            name: (line.symbol, list(line.times), line.values.tobytes())
            for name, line in results.plots.items()
        },
        "rejections": results.rejections,
    }


def assert_same(remote: BacktestResults, local: BacktestResults) -> None:
    a, b = comparable(remote), comparable(local)
    for key in a:  # one key at a time: a failure names what differs
        assert a[key] == b[key], f"{key} differs between the server and the in-process run"


@dataclass(frozen=True)
class Run:
    """One backtest's arguments, to run remotely and in process alike."""

    symbols: tuple[str, ...]
    start: str
    end: str
    params: Mapping[str, Any]
    engine: Mapping[str, Any]


def run_local(server: EmbeddedServer, strategy: Strategy, run: Run) -> BacktestResults:
    """In process, over the bars in the server's home (SIMUTRADOR_HOME)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMUTRADOR_HOME", str(home_of(server)))
        return run_backtest(
            strategy,
            list(run.symbols),
            run.start,
            run.end,
            CAPITAL,
            params=dict(run.params),
            **run.engine,
        )


def run_remote(
    server: EmbeddedServer, key: str, strategy: Strategy, run: Run, window: int | None = None
) -> BacktestResults:
    return run_backtest(
        strategy,
        list(run.symbols),
        run.start,
        run.end,
        CAPITAL,
        params=dict(run.params),
        server=server.http_url,
        api_key=key,
        window=window,
        **run.engine,
    )


@pytest.fixture(scope="module")
def key(shared_server: EmbeddedServer) -> str:
    return shared_server.create_api_key("remote-backtester", Plan.ENTERPRISE)


# ---------------------------------------------------------------- the shipped examples


@pytest.mark.parametrize(
    ("file", "run"),
    [
        (
            "buy_and_hold.py",
            Run(
                ("AAPL", "MSFT"), "2023-01-03", "2023-03-31", {}, {"commission_per_share": "0.005"}
            ),
        ),
        (
            "sma_cross.py",
            Run(
                ("AAPL",),
                "2022-01-03",
                "2022-12-30",
                {"fast": 5, "slow": 20},
                {"commission_pct": "0.001"},
            ),
        ),
        (
            "bracket_orders.py",
            Run(("AAPL", "JPM"), "2022-01-03", "2022-12-30", {"lookback": 10}, {"slippage_bps": 5}),
        ),
    ],
)
@pytest.mark.parametrize("window", [1, None, 7])
def test_examples_give_the_same_results_remotely(
    shared_server: EmbeddedServer, key: str, file: str, run: Run, window: int | None
) -> None:
    """One bar at a time, in windows of the default size, and in small windows."""
    example = load_strategy(EXAMPLES / file)
    remote = run_remote(shared_server, key, example(), run, window)
    local = run_local(shared_server, example(), run)
    assert any(r.fill_quantity for r in remote.executions), "the example must trade"
    assert_same(remote, local)


# ---------------------------------------------------------------- random orders


class RandomOrders(Strategy):
    """Orders of every kind at random, from a seed: market, limit, stop and stop_limit,
    prices around the last close, sizes by quantity or notional, every time in force,
    brackets, and cancels of earlier orders (filled or not), some of them refused. A
    `clean` one only places orders the engine accepts and never cancels."""

    def __init__(self, seed: int, rate: float = 0.3, clean: bool = False) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.clean = clean
        self.placed: list[str] = []
        self.events: list[tuple[Any, ...]] = []

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        rng = self.rng
        # Every bar as the strategy sees it, to the digit (repr tells 1.0 from 1.00).
        seen = [(symbol, repr(bar)) for symbol, bar in bars.items()]
        self.events.append(("bar", ctx.time, ctx.cash, ctx.equity, seen))
        for symbol, bar in sorted(bars.items()):
            if rng.random() < self.rate:
                self.placed.append(self._order(ctx, symbol, bar.close))
        if self.placed and not self.clean and rng.random() < 0.1:
            ctx.cancel(rng.choice(self.placed))

    def _order(self, ctx: Context, symbol: str, close: Decimal) -> str:
        rng = self.rng

        def near(spread: float) -> Decimal:
            return (close * D(str(round(1 + rng.uniform(-spread, spread), 4)))).quantize(CENT)

        side = rng.choice(["buy", "sell"])
        kind = rng.choice(["market", "limit", "stop", "stop_limit"])
        prices: dict[str, Decimal] = {}
        if kind in ("limit", "stop_limit"):
            prices["limit_price"] = near(0.03)
        if kind in ("stop", "stop_limit"):
            prices["stop_price"] = near(0.03)
        size: dict[str, Decimal | int] = (
            {"notional": D(rng.randint(500, 5000))}
            if rng.random() < 0.2
            else {"quantity": rng.randint(1, 40)}
        )
        bracket: dict[str, Decimal] = {}
        if rng.random() < 0.25:
            if self.clean:
                mid = near(0.02)
                low, high = mid - D(1), mid + D(1)
            else:  # independent: sometimes the wrong way round (INVALID_ORDER)
                low, high = near(0.02) - D(1), near(0.02) + D(1)
            bracket = (
                {"stop_loss": low, "take_profit": high}
                if side == "buy"
                else {"stop_loss": high, "take_profit": low}
            )
        place = ctx.buy if side == "buy" else ctx.sell
        return place(
            symbol,
            type=kind,
            time_in_force=rng.choice(["gtc", "gtc", "day", "ioc"]),
            **size,
            **prices,
            **bracket,
        )

    def on_fill(self, ctx: Context, report: Any) -> None:
        self.events.append(("report", report.execution_id, report.status))

    def on_reject(self, ctx: Context, order_id: str, code: str, message: str) -> None:
        self.events.append(("reject", order_id, code))


RUNS = st.builds(
    Run,
    symbols=st.sampled_from([("AAPL",), ("AAPL", "MSFT"), ("JPM", "GOOGL")]),
    start=st.sampled_from(["2022-02-01", "2022-06-01", "2023-03-01"]),
    end=st.sampled_from(["2022-04-29", "2022-07-29", "2023-05-31"]),
    params=st.just({}),
    engine=st.fixed_dictionaries(
        {},
        optional={
            "slippage_bps": st.sampled_from(["0", "5", "12.5"]),
            "commission_pct": st.sampled_from(["0", "0.001"]),
            "commission_min": st.sampled_from(["0", "1"]),
            "commission_per_share": st.sampled_from(["0", "0.01"]),
            "max_volume_pct": st.sampled_from(["0.000002", "0.5"]),
            "allow_short": st.booleans(),
        },
    ),
).filter(lambda r: r.start < r.end)


@given(
    seed=st.integers(0, 2**32 - 1),
    run=RUNS,
    window=st.sampled_from([1, 2, 5, None]),
    rate=st.sampled_from([0.3, 0.05]),
)
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_random_orders_give_the_same_results_remotely(
    shared_server: EmbeddedServer, key: str, seed: int, run: Run, window: int | None, rate: float
) -> None:
    """Random orders (resting limits and stops that fill, expire or are cancelled inside
    what would be a window), one bar at a time or in windows."""
    remote_strategy, local_strategy = RandomOrders(seed, rate), RandomOrders(seed, rate)
    remote = run_remote(shared_server, key, remote_strategy, run, window)
    local = run_local(shared_server, local_strategy, run)
    assert_same(remote, local)
    # The strategy saw exactly the same things, in the same order, in both runs.
    assert remote_strategy.events == local_strategy.events


# ---------------------------------------------------------------- concurrency and faults


def local_driver(server: EmbeddedServer, run: Run) -> LocalDriver:
    return LocalDriver(
        list(run.symbols),
        run.start,
        run.end,
        CAPITAL,
        engine_settings=dict(run.engine),
        container=build_container(home_of(server)),
    )


def remote_driver(auth: AuthClient, run: Run, window: int = DEFAULT_WINDOW) -> RemoteDriver:
    return RemoteDriver(
        auth,
        list(run.symbols),
        run.start,
        run.end,
        CAPITAL,
        engine_settings=dict(run.engine),
        window=window,
    )


async def drive_closing(
    strategy: Strategy, driver: Any, params: Mapping[str, Any]
) -> BacktestResults:
    try:
        return await drive(strategy, driver, params=params)
    finally:
        await driver.close()


async def test_two_simulations_of_one_user_at_once(shared_server: EmbeddedServer) -> None:
    key = shared_server.create_api_key("two-at-once", Plan.PROFESSIONAL)
    auth = AuthClient(shared_server.http_url, key)
    runs = [
        Run(("AAPL",), "2022-01-03", "2022-09-30", {"fast": 5, "slow": 15}, {}),
        Run(("MSFT", "GOOGL"), "2022-03-01", "2022-12-30", {}, {"slippage_bps": "3"}),
    ]
    sma_cross = load_strategy(EXAMPLES / "sma_cross.py")

    def make(i: int) -> Strategy:
        return sma_cross() if i == 0 else RandomOrders(1234)

    drivers = [remote_driver(auth, run) for run in runs]
    remote = await asyncio.gather(
        *(drive_closing(make(i), d, runs[i].params) for i, d in enumerate(drivers))
    )
    # Two connections, two sessions, one user.
    assert drivers[0].client is not drivers[1].client
    assert remote[0].session_id != remote[1].session_id
    for i, run in enumerate(runs):
        local = await drive_closing(make(i), local_driver(shared_server, run), run.params)
        assert_same(remote[i], local)


class Cutter:
    """Cuts an SDK's socket (no close frame: the transport is aborted), either at once, so
    the ack of the current tick never leaves (`before_ack`), or just after the next frame
    was written, so the server handles the ack while its replies are lost (`after_ack`)."""

    def __init__(self, driver: RemoteDriver) -> None:
        self.driver = driver
        self.cuts = 0

    def cut(self, when: str) -> None:
        ws = self.driver.client._ws
        assert ws is not None, "the SDK is connected while the strategy runs"
        self.cuts += 1
        if when == "before_ack":
            ws.transport.abort()
            return
        send = ws.send

        async def send_then_cut(message: Any, *args: Any, **kwargs: Any) -> None:
            await send(message, *args, **kwargs)
            ws.transport.abort()

        ws.send = send_then_cut  # type: ignore[method-assign]


class Dropping(RandomOrders):
    """RandomOrders whose `on_bar` also cuts the connection at random ticks, drawn from its
    own random stream (the orders are those of `RandomOrders(seed)`), never on the ticks
    in `spare`."""

    def __init__(
        self, seed: int, cutter: Cutter, when: str, spare: frozenset[int], clean: bool = False
    ) -> None:
        super().__init__(seed, clean=clean)
        self.cutter = cutter
        self.when = when
        self.drops = random.Random(seed + 1)
        self.spare = spare
        self.bars = 0

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        super().on_bar(ctx, bars)
        self.bars += 1
        if self.drops.random() < 0.08 and self.bars not in self.spare:
            self.cutter.cut(self.when)


DROP_RUN = Run(("AAPL", "MSFT"), "2022-01-03", "2022-06-30", {}, {"commission_pct": "0.001"})


async def dropped_vs_local(
    server: EmbeddedServer, seed: int, when: str, clean: bool, window: int
) -> tuple[BacktestResults, Dropping, BacktestResults, RandomOrders]:
    local_strategy = RandomOrders(seed, clean=clean)
    local = await drive_closing(local_strategy, local_driver(server, DROP_RUN), {})
    key = server.create_api_key(f"dropper-{seed}-{when}-{window}", Plan.PROFESSIONAL)
    driver = remote_driver(AuthClient(server.http_url, key), DROP_RUN, window)
    # A cut after the last ack is a case of its own (test_a_cut_after_the_last_ack_…).
    dropping = Dropping(seed, Cutter(driver), when, frozenset({local.total_ticks}), clean)
    remote = await drive_closing(dropping, driver, {})
    assert dropping.cutter.cuts > 0
    assert driver.resumes > 0
    assert driver.client.connections_opened > 1
    return remote, dropping, local, local_strategy


@pytest.mark.parametrize(("seed", "window"), [(7, DEFAULT_WINDOW), (2024, DEFAULT_WINDOW), (7, 1)])
async def test_connections_cut_before_the_ack_change_nothing(
    shared_server: EmbeddedServer, seed: int, window: int
) -> None:
    """The server never saw the ack: the SDK resumes and sends it again (in a window, the
    server sends the same window again and the ack names a bar of it)."""
    remote, dropping, local, local_strategy = await dropped_vs_local(
        shared_server, seed, "before_ack", False, window
    )
    assert_same(remote, local)
    assert dropping.events == local_strategy.events


@pytest.mark.parametrize(("seed", "window"), [(7, DEFAULT_WINDOW), (2024, DEFAULT_WINDOW), (7, 1)])
async def test_connections_cut_after_the_ack_change_nothing(
    shared_server: EmbeddedServer, seed: int, window: int
) -> None:
    """The server handled the ack, its replies were lost: the fills of the next bar come
    back in state_sync.missed_executions. (Orders all valid and no cancels here; the tests
    below cover the cancels and refusals an ack itself answers.)"""
    remote, dropping, local, local_strategy = await dropped_vs_local(
        shared_server, seed, "after_ack", True, window
    )
    assert_same(remote, local)
    assert dropping.events == local_strategy.events


class Scripted(Strategy):
    """Runs `actions[n](ctx)` on tick n and cuts the connection after the ack of the ticks
    in `cut_after`; records every hook call."""

    def __init__(
        self,
        actions: Mapping[int, Callable[[Context], object]],
        cut_after: Collection[int] = (),
        cutter: Cutter | None = None,
    ) -> None:
        self.actions = dict(actions)
        self.cut_after = set(cut_after)
        self.cutter = cutter
        self.n = 0
        self.events: list[tuple[Any, ...]] = []

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.n += 1
        self.events.append(("bar", self.n, ctx.cash, ctx.position("AAPL")))
        action = self.actions.get(self.n)
        if action is not None:
            action(ctx)
        if self.cutter is not None and self.n in self.cut_after:
            self.cutter.cut("after_ack")

    def on_fill(self, ctx: Context, report: Any) -> None:
        self.events.append(("report", report.execution_id, report.status, report.reason))

    def on_reject(self, ctx: Context, order_id: str, code: str, message: str) -> None:
        self.events.append(("reject", order_id, code))


JANUARY = Run(("AAPL",), "2023-01-03", "2023-01-31", {}, {})
JANUARY_TICKS = 20


async def scripted_vs_local(
    server: EmbeddedServer,
    name: str,
    actions: Mapping[int, Callable[[Context], object]],
    cut_after: Collection[int],
) -> tuple[BacktestResults, Scripted, BacktestResults, Scripted]:
    local_strategy = Scripted(actions)
    local = await drive_closing(local_strategy, local_driver(server, JANUARY), {})
    assert local.total_ticks == JANUARY_TICKS
    key = server.create_api_key(name, Plan.PROFESSIONAL)
    driver = remote_driver(AuthClient(server.http_url, key), JANUARY)
    remote_strategy = Scripted(actions, cut_after, Cutter(driver))
    remote = await drive_closing(remote_strategy, driver, {})
    # Each cut cost a connection: the SDK reconnected (to resume, or for the results).
    assert driver.client.connections_opened == 1 + len(set(cut_after))
    return remote, remote_strategy, local, local_strategy


def far_limit(ctx: Context) -> str:
    return ctx.buy("AAPL", 1, type="limit", limit_price="1.00")


async def test_fills_of_the_bar_after_a_lost_reply_come_back(
    shared_server: EmbeddedServer,
) -> None:
    actions = {2: lambda ctx: ctx.buy("AAPL", 10), 5: lambda ctx: ctx.sell("AAPL", 10)}
    remote, remote_strategy, local, local_strategy = await scripted_vs_local(
        shared_server, "scripted-fills", actions, cut_after={2, 5, 9}
    )
    assert [r.sequence_id for r in remote.executions if r.fill_quantity] == [3, 6]
    assert_same(remote, local)
    assert remote_strategy.events == local_strategy.events


async def test_a_cancel_whose_reply_was_lost_is_reported(shared_server: EmbeddedServer) -> None:
    state: dict[str, str] = {}
    actions = {
        2: lambda ctx: state.update(order=far_limit(ctx)),
        4: lambda ctx: ctx.cancel(state["order"]),
    }
    remote, remote_strategy, local, local_strategy = await scripted_vs_local(
        shared_server, "scripted-cancel", actions, cut_after={4}
    )
    assert [(r.status, r.reason) for r in local.executions] == [("cancelled", "CANCELLED")]
    assert_same(remote, local)
    assert remote_strategy.events == local_strategy.events


async def test_a_refusal_whose_reply_was_lost_is_reported(shared_server: EmbeddedServer) -> None:
    def wrong_way_bracket(ctx: Context) -> str:
        return ctx.buy("AAPL", 1, stop_loss="500", take_profit="100")

    remote, remote_strategy, local, local_strategy = await scripted_vs_local(
        shared_server, "scripted-refusal", {3: wrong_way_bracket}, cut_after={3}
    )
    assert ("reject", "o1", "INVALID_ORDER") in local_strategy.events
    assert_same(remote, local)
    assert remote_strategy.events == local_strategy.events


async def test_a_cut_after_the_last_ack_loses_nothing(shared_server: EmbeddedServer) -> None:
    remote, remote_strategy, local, local_strategy = await scripted_vs_local(
        shared_server, "scripted-last", {2: far_limit}, cut_after={JANUARY_TICKS}
    )
    assert [(r.status, r.reason) for r in local.executions] == [("cancelled", "END_OF_DATA")]
    assert_same(remote, local)
    assert remote_strategy.events == local_strategy.events
