"""`Simulation` driven directly over small hand-made bars: ticks and sequence ids, the
tick/ack flow, no look-ahead, marking, the daily equity curve, warm-up, the end of data,
results, snapshots (through msgspec) and `day` orders on intraday bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from application.simulation import Simulation, SimulationState, Step, Tick
from domain.bars import Bar, BarSeries, Timeframe
from domain.broker import ExecutionReport, ReportReason
from domain.errors import InvalidSequence, InvalidState
from domain.exchanges import daily_close, exchange_hours
from domain.fills import FillReason
from domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from domain.session import EngineSettings
from domain.symbols import AssetClass

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
NEW_YORK = exchange_hours("NASDAQ", AssetClass.STOCK)
CAPITAL = D("10000")

Row = tuple[date | datetime, str, str, str, str]
"""(day, or close instant for intraday bars; open, high, low, close)."""


def series(symbol: str, rows: Sequence[Row], timeframe: Timeframe = Timeframe.D1) -> BarSeries:
    bars = [
        Bar(
            when if isinstance(when, datetime) else daily_close(when, NEW_YORK),
            D(o),
            D(h),
            D(lo),
            D(c),
            D(1000),
        )
        for when, o, h, lo, c in rows
    ]
    return BarSeries.from_bars(symbol, timeframe, bars)


def simulation(
    data: Mapping[str, BarSeries],
    first_tradable: Mapping[str, int] | None = None,
    **settings: Any,
) -> Simulation:
    return Simulation(
        "sess_test",
        data,
        first_tradable or dict.fromkeys(data, 0),
        dict.fromkeys(data, D(1)),
        NEW_YORK,
        CAPITAL,
        EngineSettings(**settings),
    )


def market(order_id: str, symbol: str, side: OrderSide, qty: str, **extra: Any) -> OrderRequest:
    return OrderRequest(order_id, symbol, side, OrderType.MARKET, quantity=D(qty), **extra)


def limit(
    order_id: str, symbol: str, side: OrderSide, qty: str, price: str, **extra: Any
) -> OrderRequest:
    return OrderRequest(
        order_id, symbol, side, OrderType.LIMIT, quantity=D(qty), limit_price=D(price), **extra
    )


# Two symbols with missing bars: AAA has none on Jan 4, BBB none on Jan 2 or Jan 8.
JAN = [date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9)]
AAA = series(
    "AAA",
    [
        (JAN[0], "10", "11", "9", "10.5"),
        (JAN[1], "10.6", "12", "10", "11"),
        (JAN[3], "11.2", "11.5", "10.5", "11.3"),
        (JAN[4], "11.4", "12.5", "11", "12"),
        (JAN[5], "12.2", "13", "11.8", "12.6"),
    ],
)
BBB = series(
    "BBB",
    [
        (JAN[1], "20", "21", "19", "20.5"),
        (JAN[2], "20.4", "22", "20", "21"),
        (JAN[3], "21.1", "21.5", "20.5", "21.2"),
        (JAN[5], "21.3", "21.8", "20.9", "21.6"),
    ],
)
TWO = {"AAA": AAA, "BBB": BBB}

RICH = series(
    "AAA",
    [
        (JAN[0], "100", "103", "97", "101"),
        (JAN[1], "102", "105", "99", "103"),
        (JAN[2], "101", "104", "98", "100"),
        (JAN[3], "105", "108", "102", "107"),
        (JAN[4], "108", "111", "105", "110"),
        (JAN[5], "104", "107", "96", "99"),
        (date(2024, 1, 10), "99", "104", "95", "103"),
        (date(2024, 1, 11), "103", "106", "100", "105"),
    ],
)
RICH_B = series(
    "BBB",
    [
        (JAN[1], "50", "52", "48", "51"),
        (JAN[2], "51", "53", "50", "52"),
        (JAN[4], "52", "56", "51", "55"),
        (JAN[5], "55", "56", "49", "50"),
        (date(2024, 1, 11), "50", "51", "47", "48"),
    ],
)


def run_to_end(sim: Simulation) -> list[Step]:
    steps = []
    while not sim.done_stepping:
        step = sim.advance()
        steps.append(step)
        sim.acknowledge(step.tick.sequence_id)
    return steps


# ---------------------------------------------------------------- ticks and flow control


def test_ticks_are_the_union_of_closes_numbered_without_gaps() -> None:
    sim = simulation(TWO)
    steps = run_to_end(sim)
    expected_times = [daily_close(d, NEW_YORK) for d in JAN]
    assert sim.total_ticks == 6
    assert [s.tick.sequence_id for s in steps] == [1, 2, 3, 4, 5, 6]
    assert [s.tick.sim_time for s in steps] == expected_times
    assert [int(s.tick.time) for s in steps] == [int(t.timestamp()) for t in expected_times]
    assert [sorted(s.tick.bars) for s in steps] == [
        ["AAA"],
        ["AAA", "BBB"],
        ["BBB"],
        ["AAA", "BBB"],
        ["AAA"],
        ["AAA", "BBB"],
    ]
    assert [s.tick.is_last for s in steps] == [False] * 5 + [True]
    # Each symbol's bars arrive exactly once and exact.
    assert [s.tick.bars["AAA"] for s in steps if "AAA" in s.tick.bars] == AAA.bars()
    assert [s.tick.bars["BBB"] for s in steps if "BBB" in s.tick.bars] == BBB.bars()


def test_an_ack_for_the_wrong_sequence_is_refused_and_nothing_moves() -> None:
    sim = simulation(TWO)
    with pytest.raises(InvalidSequence) as before_start:
        sim.acknowledge(1)
    assert before_start.value.details == {"expected": 1, "received": 1}
    sim.advance()
    for wrong in (0, 2, 7):
        with pytest.raises(InvalidSequence) as refused:
            sim.acknowledge(wrong, [market("x", "AAA", BUY, "1")])
        assert refused.value.code == "INVALID_SEQUENCE"
        assert refused.value.details == {"expected": 1, "received": wrong}
        assert (sim.sequence, sim.in_flight) == (1, 1)
    assert sim.broker.open_order("x") is None  # the refused ack's order was not taken
    sim.acknowledge(1)
    assert (sim.sequence, sim.in_flight) == (1, None)
    with pytest.raises(InvalidSequence) as again:
        sim.acknowledge(1)
    assert again.value.details["expected"] == 2
    assert sim.advance().tick.sequence_id == 2


def test_advancing_twice_without_an_ack_is_invalid_state() -> None:
    sim = simulation(TWO)
    sim.advance()
    with pytest.raises(InvalidState) as refused:
        sim.advance()
    assert refused.value.code == "INVALID_STATE"
    assert refused.value.details["state"] == "tick 1 awaiting ack"
    assert (sim.sequence, sim.in_flight) == (1, 1)


def test_advancing_past_the_last_tick_is_invalid_state() -> None:
    sim = simulation(TWO)
    run_to_end(sim)
    assert sim.done_stepping
    with pytest.raises(InvalidState):
        sim.advance()
    assert sim.sequence == 6


# ---------------------------------------------------------------- no look-ahead


@pytest.mark.parametrize("placed_at", [1, 2, 4])
def test_a_market_order_acked_at_n_fills_at_the_open_of_the_next_bar(placed_at: int) -> None:
    sim = simulation({"AAA": AAA})
    fills: list[ExecutionReport] = []
    while not sim.done_stepping:
        step = sim.advance()
        n = step.tick.sequence_id
        if n <= placed_at:
            assert step.reports == ()
        fills.extend(step.reports)
        orders = [market("m", "AAA", BUY, "10")] if n == placed_at else []
        sim.acknowledge(n, orders)
    (fill,) = fills
    assert fill.sequence_id == placed_at + 1
    assert fill.price == AAA.bar(placed_at).open  # bar placed_at + 1, zero-based
    assert fill.fill_reason is FillReason.MARKET_OPEN
    assert fill.sim_time == AAA.bar(placed_at).time


def test_a_limit_touched_only_by_the_bar_it_was_placed_on_does_not_fill() -> None:
    # Bar 1's low (9) reaches the limit, bar 2's (10) does not: the order is live from bar 2.
    sim = simulation({"AAA": AAA})
    sim.advance()
    sim.acknowledge(1, [limit("l", "AAA", BUY, "5", "9.5")])
    step = sim.advance()
    assert step.reports == ()
    assert sim.broker.open_order("l") is not None


def test_orders_taken_by_submit_between_ticks_are_live_from_the_next_bar() -> None:
    sim = simulation({"AAA": AAA})
    sim.acknowledge(sim.advance().tick.sequence_id)
    batch = sim.submit([market("m", "AAA", BUY, "3")])
    assert batch.accepted == ("m",)
    (fill,) = sim.advance().reports
    assert (fill.sequence_id, fill.price) == (2, D("10.6"))


def test_a_symbol_without_a_bar_at_a_tick_gets_no_fill_there() -> None:
    sim = simulation(TWO)
    sim.acknowledge(sim.advance().tick.sequence_id)  # tick 1: Jan 2
    sim.acknowledge(sim.advance().tick.sequence_id)  # tick 2: Jan 3
    step = sim.advance()  # tick 3: Jan 4, BBB only
    sim.acknowledge(3, [market("a", "AAA", BUY, "10"), market("b", "BBB", BUY, "10")])
    step = sim.advance()  # tick 4: Jan 5, both
    assert {r.order_id: r.price for r in step.reports} == {"a": D("11.2"), "b": D("21.1")}
    sim.acknowledge(4, [market("a2", "AAA", SELL, "10"), market("b2", "BBB", SELL, "10")])
    step = sim.advance()  # tick 5: Jan 8, AAA only: BBB's sell waits
    assert [(r.order_id, r.sequence_id) for r in step.reports] == [("a2", 5)]
    assert sim.broker.open_order("b2") is not None
    sim.acknowledge(5)
    step = sim.advance()  # tick 6: Jan 9
    assert [(r.order_id, r.price, r.sequence_id) for r in step.reports] == [("b2", D("21.3"), 6)]


def test_equity_is_cash_plus_positions_marked_to_the_last_close_after_every_tick() -> None:
    sim = simulation(TWO, commission_per_share=D("0.01"))
    script = {
        1: [market("a", "AAA", BUY, "100")],
        2: [market("b", "BBB", BUY, "50")],
        4: [market("a-", "AAA", SELL, "40")],
    }
    held = {"AAA": D(0), "BBB": D(0)}
    last_close: dict[str, Decimal] = {}
    cash = CAPITAL
    seen = 0
    while not sim.done_stepping:
        step = sim.advance()
        for r in step.reports:
            assert r.price is not None
            signed = r.fill_quantity * r.side.sign
            held[r.symbol] += signed
            cash -= signed * r.price + r.commission
        last_close.update((s, bar.close) for s, bar in step.tick.bars.items())
        marked = sum((q * last_close[s] for s, q in held.items() if q), D(0))
        assert step.tick.cash == cash
        assert step.tick.equity == cash + marked
        seen += len(step.reports)
        sim.acknowledge(step.tick.sequence_id, script.get(step.tick.sequence_id, []))
    assert seen == 3
    assert held == {"AAA": D(60), "BBB": D(50)}
    # Tick 5 has no BBB bar: BBB was marked at its Jan 5 close.
    assert sim.results().metrics.final_equity == cash + 60 * D("12.6") + 50 * D("21.6")


def test_a_symbol_on_another_calendar_interleaves_its_closes() -> None:
    """A crypto (closes at midnight UTC, every day) beside a stock (16:00 New York)."""
    crypto = series(
        "CCC",
        [
            (datetime(2024, 1, d, tzinfo=UTC), "5", "6", "4", f"5.{d}")
            for d in (6, 7, 8, 9)  # the bars of Jan 5, 6, 7 and 8
        ],
    )
    stock = series(
        "AAA", [(date(2024, 1, 5), "10", "11", "9", "10"), (JAN[4], "12", "13", "11", "12")]
    )
    sim = simulation({"AAA": stock, "CCC": crypto})
    steps = []
    while not sim.done_stepping:
        step = sim.advance()
        steps.append(step)
        orders = [market("a", "AAA", BUY, "10")] if step.tick.sequence_id == 1 else []
        sim.acknowledge(step.tick.sequence_id, orders)
    assert [(s.tick.sim_time, sorted(s.tick.bars)) for s in steps] == [
        (datetime(2024, 1, 5, 21, tzinfo=UTC), ["AAA"]),
        (datetime(2024, 1, 6, tzinfo=UTC), ["CCC"]),
        (datetime(2024, 1, 7, tzinfo=UTC), ["CCC"]),
        (datetime(2024, 1, 8, tzinfo=UTC), ["CCC"]),
        (datetime(2024, 1, 8, 21, tzinfo=UTC), ["AAA"]),
        (datetime(2024, 1, 9, tzinfo=UTC), ["CCC"]),
    ]
    # The stock order waits over the crypto-only ticks for Monday's open.
    assert [(r.order_id, r.sequence_id, r.price) for s in steps for r in s.reports] == [
        ("a", 5, D(12))
    ]
    # One point per New York trading day of the ticks, at its last tick (a midnight UTC
    # close belongs to the New York evening before).
    curve = sim.results().equity_curve
    assert [d for d, _ in curve] == [date(2024, 1, d) for d in (5, 6, 7, 8)]
    assert [e for _, e in curve] == [steps[i].tick.equity for i in (1, 2, 3, 5)]


# ---------------------------------------------------------------- the equity curve, metrics


def test_daily_bars_give_one_curve_point_per_tick_and_metrics_come_from_it() -> None:
    sim = simulation({"AAA": RICH, "BBB": BBB})
    ticks: list[Tick] = []
    while not sim.done_stepping:
        step = sim.advance()
        ticks.append(step.tick)
        orders = [market("a", "AAA", BUY, "50")] if step.tick.sequence_id == 1 else []
        sim.acknowledge(step.tick.sequence_id, orders)
    results = sim.results()
    days = [*JAN, date(2024, 1, 10), date(2024, 1, 11)]
    # 50 AAA bought at 102 on tick 2, marked to closes 103, 100, 107, 110, 99, 103, 105.
    values = [D(v) for v in (10000, 10050, 9900, 10250, 10400, 9850, 10050, 10150)]
    assert list(results.equity_curve) == list(zip(days, values, strict=True))
    assert [t.equity for t in ticks] == values
    m = results.metrics
    assert m.final_equity == D(10150)
    assert m.total_return_pct == pytest.approx(1.5)
    assert m.max_drawdown_pct == pytest.approx((9850 / 10400 - 1) * 100)
    annual = (1.015 ** (252 / 7) - 1) * 100
    assert m.annual_return_pct == pytest.approx(annual)
    assert m.calmar_ratio == pytest.approx(annual / ((1 - 9850 / 10400) * 100))
    assert m.exposure_pct == pytest.approx(7 / 8 * 100)  # in the market from tick 2 on


HOURS = (15, 18, 21)  # UTC closes: 10:00, 13:00, 16:00 in New York (winter)


def hourly(symbol: str, days: Sequence[int], prices: Sequence[str]) -> BarSeries:
    """Three bars a day; bar i trades flat-ish around prices[i]."""
    instants = [datetime(2024, 1, d, h, tzinfo=UTC) for d in days for h in HOURS]
    rows: list[Row] = []
    for when, p in zip(instants, prices, strict=True):
        price = D(p)
        rows.append((when, p, str(price + 1), str(price - 1), p))
    return series(symbol, rows, Timeframe.H1)


INTRADAY = hourly("AAA", (2, 3, 4), ["10", "11", "12", "13", "14", "15", "16", "17", "18"])


def test_intraday_bars_give_one_curve_point_per_day_at_its_last_bar() -> None:
    sim = simulation({"AAA": INTRADAY})
    equities = []
    while not sim.done_stepping:
        step = sim.advance()
        equities.append(step.tick.equity)
        orders = [market("a", "AAA", BUY, "100")] if step.tick.sequence_id == 1 else []
        sim.acknowledge(step.tick.sequence_id, orders)
    results = sim.results()
    assert results.total_ticks == 9
    # The position (bought at 11 on bar 2) is marked at each day's last close: 12, 15, 18.
    assert list(results.equity_curve) == [
        (date(2024, 1, 2), CAPITAL + 100),
        (date(2024, 1, 3), CAPITAL + 400),
        (date(2024, 1, 4), CAPITAL + 700),
    ]
    assert [e for _, e in results.equity_curve] == [equities[2], equities[5], equities[8]]
    m = results.metrics
    assert m.total_return_pct == pytest.approx(600 / 10100 * 100)
    returns = [300 / 10100, 300 / 10400]
    mean = sum(returns) / 2
    std = math.sqrt(sum((r - mean) ** 2 for r in returns))
    assert m.sharpe_ratio == pytest.approx(mean / std * math.sqrt(252))
    assert m.exposure_pct == pytest.approx(8 / 9 * 100)


# ---------------------------------------------------------------- warm-up


def test_warmup_bars_are_readable_but_produce_no_ticks() -> None:
    sim = simulation({"AAA": AAA}, first_tradable={"AAA": 2})
    assert sim.total_ticks == 3
    assert sim.bar("AAA", 0) == AAA.bar(0)
    assert sim.bar_window("AAA", 10) == [D("10.5"), D("11")]
    assert sim.bar_window("AAA", 1, "high") == [D("12")]
    step = sim.advance()
    assert step.tick.sequence_id == 1
    assert step.tick.bars == {"AAA": AAA.bar(2)}
    assert sim.bar_window("AAA", 10) == [D("10.5"), D("11"), D("11.3")]
    assert sim.bar_window("AAA", 2, "volume") == [D(1000), D(1000)]
    sim.acknowledge(1, [market("m", "AAA", BUY, "1")])
    (fill,) = sim.advance().reports
    assert (fill.sequence_id, fill.price) == (2, D("11.4"))
    sim.acknowledge(2)
    sim.acknowledge(sim.advance().tick.sequence_id)
    results = sim.results()
    assert [d for d, _ in results.equity_curve] == JAN[3:]  # warm-up days have no point


# ---------------------------------------------------------------- the end of data and results


def test_finish_cancels_open_orders_with_end_of_data_and_keeps_positions() -> None:
    sim = simulation({"AAA": AAA})
    sim.advance()
    sim.acknowledge(1, [market("m", "AAA", BUY, "10"), limit("far", "AAA", BUY, "5", "1")])
    sim.advance()
    with pytest.raises(InvalidState):
        sim.finish()  # tick 2 is not even acknowledged
    sim.acknowledge(2)
    run_to_end(sim)
    (cancel,) = sim.finish()
    assert cancel.order_id == "far"
    assert cancel.status is OrderStatus.CANCELLED
    assert cancel.reason is ReportReason.END_OF_DATA
    assert cancel.sequence_id == 5
    assert cancel.fill_quantity == 0
    assert sim.finished
    assert sim.broker.position_quantity("AAA") == 10
    assert sim.broker.open_order("far") is None
    assert sim.finish() == []  # idempotent
    assert sim.reports[-1] == cancel
    results = sim.results()
    assert results.metrics.final_equity == CAPITAL + 10 * (D("12.6") - D("10.6"))
    assert results.trades == ()  # an open position is not a trade
    assert results.executions == 1
    with pytest.raises(InvalidState):
        sim.submit([market("late", "AAA", BUY, "1")])


def test_results_agree_with_the_fills() -> None:
    sim = simulation(TWO, commission_pct=D("0.001"), commission_min=D(1))
    script = {
        1: [market("a", "AAA", BUY, "100")],
        2: [market("b", "BBB", BUY, "30")],
        4: [market("a-", "AAA", SELL, "100"), limit("never", "BBB", BUY, "1", "1")],
        5: [market("b-", "BBB", SELL, "10")],
    }
    while not sim.done_stepping:
        step = sim.advance()
        sim.acknowledge(step.tick.sequence_id, script.get(step.tick.sequence_id, []))
    sim.finish()
    results = sim.results()
    fills = [r for r in sim.reports if r.is_fill]
    assert results.executions == len(fills) == 4
    assert len(sim.reports) == 5  # and the END_OF_DATA cancel of "never"
    assert results.total_ticks == 6
    # a: 100 @ 10.6 (fee 1.06) → 100 @ 11.4 (fee 1.14); b: 10 of 30 @ 20.4 (fee 1, 1/3) →
    # 10 @ 21.3 (fee 1).
    a, b = results.trades
    assert (a.symbol, a.side, a.quantity, a.entry_price, a.exit_price) == (
        "AAA",
        "long",
        D(100),
        D("10.6"),
        D("11.4"),
    )
    assert a.commission == D("2.20")
    assert a.pnl == 100 * (D("11.4") - D("10.6")) - D("2.20")
    assert a.return_pct == pytest.approx((11.4 / 10.6 - 1) * 100)
    assert (b.symbol, b.quantity, b.entry_price, b.exit_price) == (
        "BBB",
        D(10),
        D("20.4"),
        D("21.3"),
    )
    assert b.commission == D("0.33") + D("1.00")
    assert b.entry_time == daily_close(JAN[2], NEW_YORK)
    assert b.exit_time == daily_close(JAN[5], NEW_YORK)
    m = results.metrics
    assert m.total_trades == 2
    assert m.winning_trades == 2
    assert m.total_commission == sum((r.commission for r in fills), D(0)) == D("4.20")
    assert m.final_equity == results.equity_curve[-1][1] == sim.broker.equity
    assert m.final_equity == CAPITAL + a.pnl + b.pnl + 20 * (D("21.6") - D("20.4")) - D("0.67")


def test_orders_refused_at_the_ack_are_reported_per_order() -> None:
    sim = simulation({"AAA": AAA})
    sim.advance()
    batch = sim.acknowledge(
        1,
        [
            market("ok", "AAA", BUY, "1"),
            market("ok", "AAA", BUY, "2"),
            market("elsewhere", "ZZZ", BUY, "1"),
            market("zero", "AAA", BUY, "0"),
        ],
        ["nothing-open"],
    )
    assert batch.accepted == ("ok",)
    assert {k: e.code for k, e in batch.rejected.items()} == {
        "ok": "DUPLICATE_ORDER_ID",
        "elsewhere": "INVALID_ORDER",
        "zero": "INVALID_ORDER",
        "nothing-open": "ORDER_NOT_FOUND",
    }
    assert batch.rejected["elsewhere"].details["field"] == "symbol"
    assert sim.in_flight is None  # the ack itself went through
    (fill,) = sim.advance().reports
    assert (fill.order_id, fill.fill_quantity) == ("ok", D(1))


# ---------------------------------------------------------------- snapshots


@dataclass
class Recording:
    """Everything a run hands out, in order."""

    ticks: list[Tick] = field(default_factory=list)
    reports: list[ExecutionReport] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)


SETTINGS: dict[str, Any] = {
    "commission_per_share": D("0.005"),
    "commission_min": D(1),
    "slippage_bps": D(5),
    "max_volume_pct": D("0.02"),  # 20 of a bar's 1000: bigger orders fill over several bars
    "allow_short": True,
}
SCRIPT: Mapping[int, tuple[list[OrderRequest], list[str]]] = {
    1: (
        [
            market("e", "AAA", BUY, "40", stop_loss=D("97"), take_profit=D("109")),
            limit("b", "BBB", BUY, "10", "50.5"),
            limit("d", "AAA", BUY, "5", "90", time_in_force=TimeInForce.DAY),
        ],
        [],
    ),
    2: (
        [
            OrderRequest(
                "sl",
                "BBB",
                BUY,
                OrderType.STOP_LIMIT,
                D(5),
                stop_price=D("52.5"),
                limit_price=D(53),
            ),
            limit("s", "AAA", SELL, "15", "200"),
        ],
        [],
    ),
    4: ([market("short", "BBB", SELL, "30")], ["s"]),
    6: ([OrderRequest("n", "AAA", BUY, OrderType.MARKET, notional=D("2000"))], []),
}


def scripted_run(
    sim: Simulation, recording: Recording, *, stop_after: int | None, in_flight: bool
) -> None:
    """Drive `sim` with SCRIPT from wherever it is. With `stop_after` n, return after tick n
    (acked unless `in_flight`)."""
    while not sim.done_stepping:
        if sim.in_flight is None:
            step = sim.advance()
            recording.ticks.append(step.tick)
            recording.reports.extend(step.reports)
        n = sim.sequence
        if stop_after == n and in_flight:
            return
        orders, cancels = SCRIPT.get(n, ([], []))
        batch = sim.acknowledge(n, orders, cancels)
        recording.reports.extend(batch.reports)
        recording.rejected.extend((n, k, e.code) for k, e in batch.rejected.items())
        if stop_after == n:
            return
    recording.reports.extend(sim.finish())


def rich_simulation() -> Simulation:
    return simulation({"AAA": RICH, "BBB": RICH_B}, **SETTINGS)


def test_the_scripted_run_exercises_the_engine() -> None:
    """Guards the snapshot test below against passing vacuously."""
    sim = rich_simulation()
    recording = Recording()
    scripted_run(sim, recording, stop_after=None, in_flight=False)
    statuses = {r.status for r in recording.reports}
    assert {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.EXPIRED} <= statuses
    assert OrderStatus.CANCELLED in statuses
    reasons = {r.fill_reason for r in recording.reports} | {r.reason for r in recording.reports}
    assert FillReason.MARKET_OPEN in reasons
    assert ReportReason.TIME_IN_FORCE in reasons
    assert sim.results().trades
    assert recording.rejected == []


@pytest.mark.parametrize(
    ("stop_after", "in_flight"),
    [(1, False), (2, True), (3, False), (5, True), (6, False), (8, True)],
)
def test_state_restored_through_msgspec_continues_exactly_like_an_uninterrupted_run(
    stop_after: int, in_flight: bool
) -> None:
    reference_sim = rich_simulation()
    reference = Recording()
    scripted_run(reference_sim, reference, stop_after=None, in_flight=False)

    first = rich_simulation()
    resumed = Recording()
    scripted_run(first, resumed, stop_after=stop_after, in_flight=in_flight)
    assert first.in_flight == (stop_after if in_flight else None)
    wire = msgspec.json.encode(first.state())
    state = msgspec.json.decode(wire, type=SimulationState)
    assert state == first.state()

    second = rich_simulation()
    second.restore(state)
    assert (second.sequence, second.in_flight) == (first.sequence, first.in_flight)
    assert second.bar_window("AAA", 3) == first.bar_window("AAA", 3)
    assert list(second.reports) == list(first.reports)
    scripted_run(second, resumed, stop_after=None, in_flight=False)

    assert resumed.reports == reference.reports
    assert resumed.ticks == reference.ticks
    assert resumed.rejected == reference.rejected
    assert list(second.reports) == list(reference_sim.reports)
    assert second.results() == reference_sim.results()


# ---------------------------------------------------------------- time in force on intraday bars


def test_day_orders_expire_at_the_last_bar_of_their_day_on_intraday_bars() -> None:
    sim = simulation({"AAA": INTRADAY})
    ended: dict[str, ExecutionReport] = {}
    script = {
        1: [
            limit("day1", "AAA", BUY, "1", "1", time_in_force=TimeInForce.DAY),
            limit("gtc", "AAA", BUY, "1", "1"),
        ],
        # Placed on the last bar of Jan 2: its bar B is Jan 3's first, so it lives all Jan 3.
        3: [limit("day2", "AAA", BUY, "1", "1", time_in_force=TimeInForce.DAY)],
        5: [limit("ioc", "AAA", BUY, "1", "1", time_in_force=TimeInForce.IOC)],
    }
    while not sim.done_stepping:
        step = sim.advance()
        ended.update((r.order_id, r) for r in step.reports)
        sim.acknowledge(step.tick.sequence_id, script.get(step.tick.sequence_id, []))
    assert {k: (r.status, r.reason, r.sequence_id) for k, r in ended.items()} == {
        "day1": (OrderStatus.EXPIRED, ReportReason.TIME_IN_FORCE, 3),
        "day2": (OrderStatus.EXPIRED, ReportReason.TIME_IN_FORCE, 6),
        "ioc": (OrderStatus.EXPIRED, ReportReason.TIME_IN_FORCE, 6),
    }
    assert ended["day2"].sim_time == datetime(2024, 1, 3, 21, tzinfo=UTC)
    assert sim.broker.open_order("gtc") is not None
    (gtc_end,) = sim.finish()
    assert (gtc_end.order_id, gtc_end.reason) == ("gtc", ReportReason.END_OF_DATA)


def test_day_orders_on_daily_bars_live_for_one_bar() -> None:
    sim = simulation({"AAA": AAA})
    sim.advance()
    sim.acknowledge(1, [limit("d", "AAA", BUY, "1", "1", time_in_force=TimeInForce.DAY)])
    (expired,) = sim.advance().reports
    assert (expired.order_id, expired.status, expired.sequence_id) == ("d", OrderStatus.EXPIRED, 2)


def test_a_cancel_taken_with_an_ack_is_reported_at_that_tick() -> None:
    sim = simulation({"AAA": AAA})
    for n in (1, 2):
        sim.advance()
        sim.acknowledge(n)
    sim.advance()
    batch = sim.acknowledge(3, [limit("l", "AAA", BUY, "1", "1")], ["l"])
    (report,) = batch.reports
    assert (report.order_id, report.status) == ("l", OrderStatus.CANCELLED)
    assert report.sequence_id == 3
    assert report.sim_time == AAA.bar(2).time
