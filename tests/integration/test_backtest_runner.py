"""`run_backtest` in process against a real SIMUTRADOR_HOME: hook order, no look-ahead, order
refusals, notional sizing, engine settings, params, warm-up, errors, the shipped examples,
and a property over random orders (fills only after they were placed, inside their bar)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.bars import Bar, BarSeries, Timeframe
from domain.calendar import is_trading_day
from domain.exchanges import daily_close, exchange_hours
from domain.symbols import AssetClass, Instrument, Symbol
from entrypoints.container import Container
from entrypoints.protocol.messages import ExecutionReportData, OrderData, SimulationResultsData
from entrypoints.sdk import BacktestResults, Context, Strategy, run_backtest
from entrypoints.sdk.backtest import Outcome, Started, drive
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.local import LocalDriver

D = Decimal
CENT = D("0.01")
NEW_YORK = exchange_hours("NASDAQ", AssetClass.STOCK)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIRST, LAST = date(2023, 1, 3), date(2023, 3, 31)
CAPITAL = D(100_000)


def trading_days(first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        if is_trading_day(day, AssetClass.STOCK.calendar):
            days.append(day)
        day += timedelta(days=1)
    return days


DAYS = trading_days(FIRST, LAST)


def make_bars(days: Sequence[date], base: int, step: int) -> list[Bar]:
    """Deterministic bars that move up and down: open o, high o+3, low o-3, close o+1."""
    bars = []
    for i, day in enumerate(days):
        o = D(base + (i * step) % 13) + D("0.25")
        bars.append(Bar(daily_close(day, NEW_YORK), o, o + 3, o - 3, o + 1, D(100_000)))
    return bars


AAPL = make_bars(DAYS, 100, 7)
MSFT_DAYS = [d for i, d in enumerate(DAYS) if i % 5 != 2]  # MSFT misses every fifth day
MSFT = make_bars(MSFT_DAYS, 200, 5)
LOTS = make_bars(DAYS, 50, 3)
LOTS_INSTRUMENT = Instrument(Symbol("LOTS", AssetClass.STOCK), "Lots Inc", "NYSE", "USD", D(10))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding only imported bars: AAPL and LOTS (lot size 10) every trading day of
    2023-Q1, MSFT with gaps."""
    path = tmp_path_factory.mktemp("runner-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMUTRADOR_HOME", str(path))
        container = Container()
        market = container.market_data_service()

        async def write() -> None:
            await market.register_instrument(LOTS_INSTRUMENT)
            for symbol, bars in (("AAPL", AAPL), ("MSFT", MSFT), ("LOTS", LOTS)):
                series = BarSeries.from_bars(symbol, Timeframe.D1, bars)
                await market.import_bars(series, replace=False)

        asyncio.run(write())
        container.bar_store().close()
    return path


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory: pytest.TempPathFactory, sample_bars: Path) -> Path:
    """A home holding the synthetic sample, as a fresh home gets it."""
    path = tmp_path_factory.mktemp("sample-runner-home")
    shutil.copyfile(sample_bars, path / "bars.db")
    return path


def backtest(
    home: Path,
    strategy: Strategy | type[Strategy],
    symbols: Sequence[str] | str = "AAPL",
    start: str = "2023-01-03",
    end: str = "2023-03-31",
    **options: Any,
) -> BacktestResults:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMUTRADOR_HOME", str(home))
        return run_backtest(strategy, symbols, start, end, CAPITAL, **options)


class Scripted(Strategy):
    """Places orders on given bars and records every hook call in order."""

    def __init__(self, orders: Mapping[int, Callable[[Context], object]] | None = None) -> None:
        self.orders = dict(orders or {})
        self.events: list[tuple[Any, ...]] = []
        self.n = 0
        self.reports: list[ExecutionReportData] = []
        self.positions: dict[int, Decimal] = {}
        self.cash: dict[int, Decimal] = {}

    def on_start(self, ctx: Context) -> None:
        self.events.append(("start",))

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.n += 1
        self.events.append(("bar", self.n))
        self.positions[self.n] = ctx.position("AAPL")
        self.cash[self.n] = ctx.cash
        place = self.orders.get(self.n)
        if place is not None:
            place(ctx)

    def on_fill(self, ctx: Context, report: ExecutionReportData) -> None:
        self.reports.append(report)
        self.events.append(("report", report.order_id, report.status, report.sequence_id))

    def on_reject(self, ctx: Context, order_id: str, code: str, message: str) -> None:
        assert message
        self.events.append(("reject", order_id, code))

    def on_finish(self, ctx: Context, results: BacktestResults) -> None:
        self.events.append(("finish", results.total_ticks))

    def fills(self) -> list[ExecutionReportData]:
        return [r for r in self.reports if r.fill_quantity]


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------- the loop


def test_hooks_run_in_order(home: Path) -> None:
    strategy = Scripted(
        {
            2: lambda ctx: ctx.buy("AAPL", 10),
            3: lambda ctx: ctx.buy("AAPL", 0),
            5: lambda ctx: ctx.buy("AAPL", 1, type="limit", limit_price=1),
        }
    )
    results = backtest(home, strategy)
    n = len(DAYS)
    assert results.total_ticks == n
    expected: list[tuple[Any, ...]] = [("start",), ("bar", 1), ("bar", 2)]
    expected += [("report", "o1", "filled", 3), ("bar", 3), ("reject", "o2", "INVALID_ORDER")]
    expected += [("bar", i) for i in range(4, n + 1)]
    expected += [("report", "o3", "cancelled", n), ("finish", n)]
    assert strategy.events == expected
    assert [r.order_id for r in results.executions] == ["o1", "o3"]
    assert results.executions[1].reason == "END_OF_DATA"


@pytest.mark.parametrize("placed_at", [1, 17, len(DAYS) - 1])
def test_an_order_placed_on_bar_n_fills_at_the_open_of_bar_n_plus_1(
    home: Path, placed_at: int
) -> None:
    strategy = Scripted({placed_at: lambda ctx: ctx.buy("AAPL", 10)})
    backtest(home, strategy)
    (fill,) = strategy.reports
    nxt = AAPL[placed_at]  # bar placed_at + 1, counted from 1
    assert fill.sequence_id == placed_at + 1
    assert (fill.price, fill.sim_time, fill.fill_reason) == (nxt.open, nxt.time, "market_open")
    assert strategy.positions[placed_at] == 0
    assert strategy.positions[placed_at + 1] == 10
    assert strategy.cash[placed_at + 1] == CAPITAL - 10 * nxt.open


def test_an_order_placed_on_the_last_bar_never_fills(home: Path) -> None:
    strategy = Scripted({len(DAYS): lambda ctx: ctx.buy("AAPL", 10)})
    results = backtest(home, strategy)
    (report,) = strategy.reports
    assert (report.status, report.reason, report.fill_quantity) == (
        "cancelled",
        "END_OF_DATA",
        D(0),
    )
    assert results.metrics.final_equity == CAPITAL


def test_refused_orders_reach_on_reject_and_never_the_book(home: Path) -> None:
    strategy = Scripted(
        {
            1: lambda ctx: (
                ctx.buy("AAPL", 0),
                ctx.buy("AAPL", 1, type="bogus"),
                ctx.buy("AAPL", 1, type="limit"),
                ctx.sell("AAPL", 1, time_in_force="forever"),
                ctx.buy("LOTS", 5),
                ctx.buy("AAPL", 1),
            )
        }
    )
    results = backtest(home, strategy, ["AAPL", "LOTS"])
    rejected = sorted(e[1:] for e in strategy.events if e[0] == "reject")
    assert rejected == [(f"o{i}", "INVALID_ORDER") for i in range(1, 6)]
    # All of them before the next bar.
    assert strategy.events.index(("bar", 2)) > max(
        strategy.events.index(("reject", *r)) for r in rejected
    )
    assert [r.order_id for r in results.executions] == ["o6"]


def test_a_notional_order_buys_the_most_whole_lots_that_fit(home: Path) -> None:
    strategy = Scripted(
        {
            1: lambda ctx: (ctx.buy("AAPL", notional="1000"), ctx.buy("LOTS", notional=5000)),
            2: lambda ctx: ctx.buy("LOTS", notional=100),  # not one lot of 10
        }
    )
    backtest(home, strategy, ["AAPL", "LOTS"], commission_per_share="0.5")
    aapl, lots, refused = strategy.reports

    def most_lots(notional: Decimal, price: Decimal, lot: int) -> Decimal:
        qty = D(0)
        while (qty + lot) * price + (qty + lot) * D("0.5") <= notional:
            qty += lot
        return qty

    assert aapl.price == AAPL[1].open
    assert aapl.fill_quantity == most_lots(D(1000), AAPL[1].open, 1) > 0
    assert lots.price == LOTS[1].open
    assert lots.fill_quantity == most_lots(D(5000), LOTS[1].open, 10)
    assert lots.fill_quantity % 10 == 0
    assert (refused.order_id, refused.status, refused.reason) == (
        "o3",
        "rejected",
        "INSUFFICIENT_FUNDS",
    )


# ---------------------------------------------------------------- engine settings


def test_commission_and_slippage_change_fills_as_the_fill_rules_say(home: Path) -> None:
    strategy = Scripted(
        {
            1: lambda ctx: ctx.buy("AAPL", 40),
            3: lambda ctx: ctx.sell("AAPL", 40),
            5: lambda ctx: ctx.buy("AAPL", 10, type="limit", limit_price=500),
        }
    )
    results = backtest(home, strategy, commission_pct="0.001", slippage_bps=25)
    buy, sell, limit = strategy.reports
    s = D(25) / D(10_000)
    assert buy.price == AAPL[1].open * (1 + s)
    assert buy.slippage == (buy.price - AAPL[1].open) * 40
    assert buy.commission == cents(D("0.001") * 40 * buy.price)
    assert sell.price == AAPL[3].open * (1 - s)
    assert sell.commission == cents(D("0.001") * 40 * sell.price)
    assert limit.price == AAPL[5].open  # a limit gets no slippage
    assert limit.slippage == 0
    (trade,) = results.trades
    assert trade.pnl == 40 * (sell.price - buy.price) - buy.commission - sell.commission
    m = results.metrics
    assert m.total_commission == buy.commission + sell.commission + limit.commission
    assert m.total_slippage == buy.slippage + sell.slippage


def test_without_settings_fills_are_at_the_open_and_free(home: Path) -> None:
    strategy = Scripted({1: lambda ctx: ctx.buy("AAPL", 40)})
    backtest(home, strategy)
    (buy,) = strategy.reports
    assert (buy.price, buy.commission, buy.slippage) == (AAPL[1].open, D(0), D(0))


def test_a_minimum_commission_and_a_volume_cap(home: Path) -> None:
    strategy = Scripted({1: lambda ctx: ctx.buy("AAPL", 25)})
    # 0.0001 of a 100,000 volume: at most 10 shares a bar.
    backtest(home, strategy, commission_min=2, max_volume_pct="0.0001")
    assert [(r.fill_quantity, r.status, r.sequence_id, r.commission) for r in strategy.reports] == [
        (D(10), "partially_filled", 2, D(2)),
        (D(10), "partially_filled", 3, D(2)),
        (D(5), "filled", 4, D(2)),
    ]
    assert [r.price for r in strategy.reports] == [AAPL[1].open, AAPL[2].open, AAPL[3].open]


def test_shorting_needs_allow_short(home: Path) -> None:
    refused = Scripted({1: lambda ctx: ctx.sell("AAPL", 5)})
    backtest(home, refused)
    (report,) = refused.reports
    assert (report.status, report.reason) == ("rejected", "SHORT_NOT_ALLOWED")
    allowed = Scripted({1: lambda ctx: ctx.sell("AAPL", 5)})
    backtest(home, allowed, allow_short=True)
    assert allowed.reports[0].status == "filled"
    assert allowed.positions[2] == -5


def test_an_unknown_engine_setting_is_a_type_error(home: Path) -> None:
    strategy = Scripted()
    with pytest.raises(TypeError, match="comission_pct"):
        backtest(home, strategy, comission_pct="0.001")
    assert strategy.events == []


# ---------------------------------------------------------------- params, warm-up, errors


def test_params_reach_the_context(home: Path) -> None:
    seen: list[dict[str, Any]] = []

    class Reads(Strategy):
        def on_start(self, ctx: Context) -> None:
            seen.append(dict(ctx.params))

    given_params = {"fast": 3, "name": "x", "ratio": D("0.5")}
    backtest(home, Reads, params=given_params)
    assert seen == [given_params]


def test_warmup_bars_are_history_before_the_first_bar(home: Path) -> None:
    seen: dict[str, Any] = {}

    class Reads(Strategy):
        def on_start(self, ctx: Context) -> None:
            seen["start"] = ctx.history("AAPL", 100)

        def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
            if "first" not in seen:
                seen["first"] = (ctx.time, ctx.history("AAPL", 100), ctx.history("MSFT", 2))

    # 2023-01-10 is the sixth trading day: five bars come before it.
    results = backtest(home, Reads, ["AAPL", "MSFT"], start="2023-01-10", warmup_bars=5)
    assert seen["start"] == [b.close for b in AAPL[:5]]
    when, closes, msft = seen["first"]
    assert when == AAPL[5].time
    assert closes == [b.close for b in AAPL[:6]]
    assert msft == [b.close for b in MSFT[3:5]]
    assert results.total_ticks == len(DAYS) - 5


def test_an_exception_in_the_strategy_propagates(home: Path) -> None:
    class Crashes(Strategy):
        def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
            if ctx.time == AAPL[2].time:
                raise ZeroDivisionError("strategy bug")

    with pytest.raises(ZeroDivisionError, match="strategy bug"):
        backtest(home, Crashes)
    # The home is still usable afterwards.
    assert backtest(home, Scripted()).total_ticks == len(DAYS)


# ---------------------------------------------------------------- the examples


class CapturingDriver:
    """A LocalDriver that keeps the server-side results (`executions` count included)."""

    def __init__(self, inner: LocalDriver) -> None:
        self.inner = inner
        self.final: SimulationResultsData | None = None

    async def start(self) -> tuple[Started, Outcome]:
        return await self.inner.start()

    async def acknowledge(
        self, sequence_id: int, orders: Sequence[OrderData], cancels: Sequence[str]
    ) -> Outcome:
        return await self.inner.acknowledge(sequence_id, orders, cancels)

    async def results(self) -> SimulationResultsData:
        self.final = await self.inner.results()
        return self.final

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class ExampleRun:
    results: BacktestResults
    final: SimulationResultsData
    last_close: dict[str, Decimal]


def run_example(
    home: Path, file: str, symbols: list[str], params: Mapping[str, Any], **engine: Any
) -> ExampleRun:
    loaded = load_strategy(EXAMPLES / file)
    last_close: dict[str, Decimal] = {}

    class Watched(loaded):  # type: ignore[misc, valid-type]
        def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
            last_close.update((s, b.close) for s, b in bars.items())
            super().on_bar(ctx, bars)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMUTRADOR_HOME", str(home))
        driver = CapturingDriver(
            LocalDriver(symbols, "2021-01-01", "2023-12-31", CAPITAL, engine_settings=engine)
        )

        async def go() -> BacktestResults:
            try:
                return await drive(Watched(), driver, params=params)
            finally:
                await driver.close()

        results = asyncio.run(go())
    assert driver.final is not None
    return ExampleRun(results, driver.final, last_close)


def realized_round_trips(executions: Sequence[ExecutionReportData]) -> Decimal:
    """P&L net of commission of every position opened and closed back to flat, from the
    fills alone (these examples never flip a position)."""
    held: dict[str, Decimal] = {}
    flow: dict[str, Decimal] = {}
    realized = D(0)
    for r in executions:
        if not r.fill_quantity:
            continue
        assert r.price is not None
        signed = r.fill_quantity if r.side == "buy" else -r.fill_quantity
        before = held.get(r.symbol, D(0))
        after = before + signed
        assert before * after >= 0, "a flip: this accounting does not apply"
        held[r.symbol] = after
        flow[r.symbol] = flow.get(r.symbol, D(0)) - signed * r.price - r.commission
        if after == 0:
            realized += flow.pop(r.symbol)
    return realized


@pytest.mark.parametrize(
    ("file", "symbols", "params", "engine"),
    [
        ("sma_cross.py", ["AAPL"], {"fast": 5, "slow": 20}, {"commission_pct": "0.001"}),
        ("buy_and_hold.py", ["AAPL", "MSFT"], {}, {"commission_per_share": "0.005"}),
        ("bracket_orders.py", ["AAPL", "JPM"], {"lookback": 10}, {"slippage_bps": 5}),
    ],
)
def test_the_examples_run_and_their_results_are_consistent(
    sample_home: Path,
    file: str,
    symbols: list[str],
    params: dict[str, Any],
    engine: dict[str, Any],
) -> None:
    run = run_example(sample_home, file, symbols, params, **engine)
    results, final = run.results, run.final
    fills = [r for r in results.executions if r.fill_quantity]
    assert fills, "the example must trade"
    assert final.executions == len(fills)
    m = results.metrics
    assert m.total_trades == len(results.trades)
    assert m.winning_trades == sum(1 for t in results.trades if t.pnl > 0)
    assert m.total_commission == sum((r.commission for r in fills), D(0))
    assert m.total_slippage == sum((r.slippage for r in fills), D(0))
    pnl = sum((t.pnl for t in results.trades), D(0))
    assert abs(pnl - realized_round_trips(results.executions)) <= CENT
    # Final equity: the cash left by every fill plus what is still held at the last close.
    cash = CAPITAL - sum(
        ((1 if r.side == "buy" else -1) * r.fill_quantity * r.price + r.commission)
        for r in fills
        if r.price is not None
    )
    held: dict[str, Decimal] = {}
    for r in fills:
        held[r.symbol] = held.get(r.symbol, D(0)) + (
            r.fill_quantity if r.side == "buy" else -r.fill_quantity
        )
    marked = sum((q * run.last_close[s] for s, q in held.items()), D(0))
    assert m.final_equity == cash + marked == results.equity_curve[-1][1]
    assert results.total_ticks == len(results.equity_curve)  # daily bars: a point per tick
    if file == "buy_and_hold.py":
        assert results.trades == []
        assert {r.symbol for r in fills} == {"AAPL", "MSFT"}
    else:
        assert len(results.trades) >= 2
    if file == "bracket_orders.py":
        reasons = {r.fill_reason for r in fills}
        assert reasons & {"stop_loss", "take_profit"}
        assert any(r.reason == "OCO" for r in results.executions)


# ---------------------------------------------------------------- property: no look-ahead

OrderPlan = tuple[int, str, str, str, int, int, int, str, bool]
"""(bar, symbol, side, type, price offset bps, second offset bps, quantity, tif, bracket)."""

order_plans = st.lists(
    st.tuples(
        st.integers(1, 40),
        st.sampled_from(["AAPL", "MSFT"]),
        st.sampled_from(["buy", "sell"]),
        st.sampled_from(["market", "limit", "stop", "stop_limit"]),
        st.integers(-400, 400),
        st.integers(-200, 200),
        st.integers(1, 30),
        st.sampled_from(["gtc", "day", "ioc"]),
        st.booleans(),
    ),
    max_size=12,
)


class RandomOrders(Strategy):
    """Places the planned orders, priced off the last close it has seen, and checks as it
    goes that every fill arrives right before the bar that produced it."""

    def __init__(self, plans: Sequence[OrderPlan]) -> None:
        self.plans = plans
        self.n = 0
        self.placed: dict[str, int] = {}
        self.bars: dict[int, Mapping[str, Bar]] = {}
        self.fills: list[ExecutionReportData] = []

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.n += 1
        self.bars[self.n] = dict(bars)
        for bar_no, symbol, side, kind, off, off2, qty, tif, bracket in self.plans:
            if bar_no != self.n or not ctx.history(symbol, 1):
                continue
            ref = ctx.history(symbol, 1)[0]

            def price(bps: int, ref: Decimal = ref) -> Decimal:
                return cents(ref * (1 + D(bps) / 10_000))

            stop = price(off) if kind in ("stop", "stop_limit") else None
            lim = price(off if kind == "limit" else off + off2) if "limit" in kind else None
            sign = 1 if side == "buy" else -1
            exits = (
                {"stop_loss": price(-300 * sign), "take_profit": price(300 * sign)}
                if bracket
                else {}
            )
            place = ctx.buy if side == "buy" else ctx.sell
            order_id = place(
                symbol,
                qty,
                type=kind,
                limit_price=lim,
                stop_price=stop,
                time_in_force=tif,
                **exits,
            )
            self.placed[order_id] = self.n

    def on_fill(self, ctx: Context, report: ExecutionReportData) -> None:
        if report.fill_quantity:
            # Reports come before the on_bar of the tick whose bar produced them.
            assert report.sequence_id == self.n + 1
            self.fills.append(report)


@settings(max_examples=25, deadline=None)
@given(plans=order_plans)
def test_random_orders_fill_after_they_were_placed_and_inside_their_bar(
    home: Path, plans: list[OrderPlan]
) -> None:
    strategy = RandomOrders(plans)
    results = backtest(home, strategy, ["AAPL", "MSFT"], end="2023-03-03", allow_short=True)
    assert [r for r in results.executions if r.fill_quantity] == strategy.fills
    event(f"fills: {min(len(strategy.fills), 5)}+")
    entry_fill: dict[str, int] = {}
    for fill in strategy.fills:
        parent = fill.order_id.removesuffix("-sl").removesuffix("-tp")
        assert fill.sequence_id > strategy.placed[parent]
        if parent != fill.order_id:  # a bracket exit: live from the bar after its entry
            assert fill.sequence_id > entry_fill[parent]
        else:
            entry_fill[parent] = fill.sequence_id
        bar = strategy.bars[fill.sequence_id][fill.symbol]  # the symbol had a bar there
        assert fill.price is not None
        assert bar.low <= fill.price <= bar.high
