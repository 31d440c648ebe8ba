"""The strategy `Context` on its own: the orders it queues, number parsing, closing a
position, history and its limits, positions followed from execution reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.bars import Bar
from entrypoints.protocol.messages import ExecutionReportData, OrderData
from entrypoints.sdk.strategy import Context, StrategyUsageError

D = Decimal
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def bar(i: int, close: str = "") -> Bar:
    c = D(close) if close else D(100 + i)
    return Bar(T0 + timedelta(days=i), c - 1, c + 2, c - 2, c, D(1000 + i))


def report(
    symbol: str, side: str, fill: str, *, quantity: str | None = None, status: str = "filled"
) -> ExecutionReportData:
    filled = D(fill)
    return ExecutionReportData(
        session_id="s",
        execution_id="e",
        order_id="o",
        symbol=symbol,
        side=side,
        status=status,
        quantity=D(quantity or fill),
        fill_quantity=filled,
        filled_quantity=filled,
        remaining_quantity=D(quantity or fill) - filled,
        price=D(100) if filled else None,
        commission=D(0),
        slippage=D(0),
        sim_time=T0,
        sequence_id=1,
    )


@pytest.fixture
def ctx() -> Context:
    return Context(("AAPL", "MSFT"), {"fast": 3})


# ---------------------------------------------------------------- orders


def test_buy_and_sell_queue_orders_with_sequential_ids(ctx: Context) -> None:
    assert ctx.buy("AAPL", 10) == "o1"
    assert ctx.sell("MSFT", "5", type="limit", limit_price="310.25", time_in_force="day") == "o2"
    assert (
        ctx.buy(
            "AAPL",
            notional=1000,
            type="stop_limit",
            stop_price=D("101.5"),
            limit_price=102,
            stop_loss="95",
            take_profit=110.5,
        )
        == "o3"
    )
    orders, cancels = ctx._take_orders()
    assert cancels == []
    assert list(orders) == [
        OrderData(order_id="o1", symbol="AAPL", side="buy", type="market", quantity=D(10)),
        OrderData(
            order_id="o2",
            symbol="MSFT",
            side="sell",
            type="limit",
            quantity=D(5),
            limit_price=D("310.25"),
            time_in_force="day",
        ),
        OrderData(
            order_id="o3",
            symbol="AAPL",
            side="buy",
            type="stop_limit",
            notional=D(1000),
            stop_price=D("101.5"),
            limit_price=D(102),
            stop_loss=D(95),
            take_profit=D("110.5"),
        ),
    ]


def test_floats_become_the_decimal_they_look_like(ctx: Context) -> None:
    ctx.buy("AAPL", 0.1, type="limit", limit_price=0.3, stop_loss=1e-5, take_profit=1.1)
    (order,), _ = ctx._take_orders()
    assert str(order.quantity) == "0.1"
    assert order.quantity == D("0.1")  # not 0.1000000000000000055511151231257827…
    assert order.limit_price == D("0.3")
    assert order.stop_loss == D("0.00001")
    assert order.take_profit == D("1.1")


def test_text_numbers_are_stripped(ctx: Context) -> None:
    ctx.sell("AAPL", " 7 ", notional=None)
    (order,), _ = ctx._take_orders()
    assert order.quantity == D(7)
    assert order.notional is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", "ten"),
        ("quantity", ""),
        ("notional", "1,000"),
        ("limit_price", "$5"),
        ("stop_price", [1]),
        ("take_profit", "1e"),
    ],
)
def test_something_that_is_not_a_number_is_a_usage_error(
    ctx: Context, field: str, value: object
) -> None:
    with pytest.raises(StrategyUsageError) as refused:
        ctx.buy("AAPL", **{field: value})  # type: ignore[arg-type]
    assert refused.value.code == "STRATEGY_USAGE"
    assert field in refused.value.message
    assert ctx._take_orders() == ((), ())  # nothing half-made was queued


def test_an_order_for_a_symbol_outside_the_simulation_is_a_usage_error(ctx: Context) -> None:
    with pytest.raises(StrategyUsageError) as refused:
        ctx.buy("TSLA", 1)
    assert "TSLA" in refused.value.message
    assert "AAPL, MSFT" in refused.value.message
    assert ctx.buy("AAPL", 1) == "o1"  # the refused order took no id


def test_engine_rules_are_left_to_the_engine(ctx: Context) -> None:
    """The context does not judge the order's rules (unknown type, lot size): the engine
    refuses them with INVALID_ORDER, which reaches on_reject."""
    ctx.buy("AAPL", "0.5", type="bogus", time_in_force="forever")
    (order,), _ = ctx._take_orders()
    assert (order.quantity, order.type, order.time_in_force) == (D("0.5"), "bogus", "forever")
    assert ctx._take_refused() == {}


LIMIT = {"type": "limit"}


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"quantity": 0}, "quantity", "must be above 0"),
        ({"quantity": 1e308}, "quantity", "must be at most 10,000,000,000"),
        ({"quantity": float("inf")}, "quantity", "must be a finite number"),
        ({"quantity": "1e9999"}, "quantity", "must be at most"),
        ({"quantity": "1" * 50}, "quantity", "must be at most"),
        ({"quantity": "0.000000001"}, "quantity", "has at most 8 decimal places"),
        ({"notional": "1e13"}, "notional", "must be at most 1,000,000,000,000"),
        ({"quantity": 1, **LIMIT, "limit_price": "600." + "1" * 40}, "limit_price", "8 decimal"),
        ({"quantity": 1, "stop_loss": "-1"}, "stop_loss", "must be above 0"),
        ({"quantity": 1, "take_profit": "NaN"}, "take_profit", "must be a finite number"),
    ],
)
def test_numbers_out_of_bounds_are_refused_before_sending(
    ctx: Context, kwargs: dict[str, Any], field: str, says: str
) -> None:
    """The server's bounds (domain.money.ORDER_BOUNDS): such an order is never sent, and
    comes back through on_reject as the INVALID_ORDER the server would give."""
    order_id = ctx.buy("AAPL", **kwargs)
    assert ctx._take_orders() == ((), ())
    refused = ctx._take_refused()
    assert list(refused) == [order_id]
    code, message = refused[order_id]
    assert code == "INVALID_ORDER"
    assert message.startswith(field)
    assert says in message
    assert ctx._take_refused() == {}


def test_close_flattens_a_long_or_a_short_and_does_nothing_when_flat(ctx: Context) -> None:
    assert ctx.close("AAPL") is None
    assert ctx._take_orders() == ((), ())
    ctx._apply_report(report("AAPL", "buy", "12"))
    ctx._apply_report(report("MSFT", "sell", "4"))
    assert ctx.close("AAPL") == "o1"
    assert ctx.close("MSFT") == "o2"
    orders, _ = ctx._take_orders()
    assert [(o.symbol, o.side, o.type, o.quantity, o.time_in_force) for o in orders] == [
        ("AAPL", "sell", "market", D(12), "gtc"),
        ("MSFT", "buy", "market", D(4), "gtc"),
    ]


def test_closing_a_symbol_outside_the_simulation_is_a_usage_error(ctx: Context) -> None:
    with pytest.raises(StrategyUsageError):
        ctx.close("TSLA")


def test_cancels_queue_with_the_orders_and_taking_them_empties_the_queue(ctx: Context) -> None:
    ctx.buy("AAPL", 1)
    ctx.cancel("o1")
    ctx.cancel("o9")
    orders, cancels = ctx._take_orders()
    assert [o.order_id for o in orders] == ["o1"]
    assert list(cancels) == ["o1", "o9"]
    assert ctx._take_orders() == ((), ())
    ctx.cancel("o1")
    assert ctx._take_orders() == ([], ["o1"])
    assert ctx.buy("MSFT", 1) == "o2"  # ids keep counting across batches


# ---------------------------------------------------------------- what it sees


def test_history_returns_the_last_n_values_of_a_field(ctx: Context) -> None:
    for i in range(5):
        ctx._add_bars({"AAPL": bar(i)})
    ctx._add_bars({"MSFT": bar(0, "50")})
    assert ctx.history("AAPL", 3) == [D(102), D(103), D(104)]
    assert ctx.history("AAPL", 2, "open") == [D(102), D(103)]
    assert ctx.history("AAPL", 1, "high") == [D(106)]
    assert ctx.history("AAPL", 1, "low") == [D(102)]
    assert ctx.history("AAPL", 2, "volume") == [D(1003), D(1004)]
    assert ctx.history("AAPL", 50) == [D(100 + i) for i in range(5)]  # fewer at the start
    assert ctx.history("MSFT", 3) == [D(50)]
    assert ctx.history("AAPL", 0) == []


def test_history_refuses_an_unknown_field_or_symbol(ctx: Context) -> None:
    ctx._add_bars({"AAPL": bar(0)})
    with pytest.raises(StrategyUsageError) as bad_field:
        ctx.history("AAPL", 1, "vwap")
    assert "open, high, low, close, volume" in bad_field.value.message
    with pytest.raises(StrategyUsageError) as bad_symbol:
        ctx.history("GOOG", 1)
    assert "GOOG" in bad_symbol.value.message


def test_history_keeps_history_size_bars_and_refuses_to_look_further() -> None:
    ctx = Context(("AAPL",), history_size=3)
    for i in range(10):
        ctx._add_bars({"AAPL": bar(i)})
        assert ctx.history("AAPL", 3) == [D(100 + j) for j in range(max(0, i - 2), i + 1)]
    with pytest.raises(StrategyUsageError) as refused:
        ctx.history("AAPL", 4)
    assert "history_size" in refused.value.message


def test_warmup_history_is_seen_before_the_first_bar() -> None:
    ctx = Context(("AAPL", "MSFT"), history_size=4)
    ctx._add_bars_history({"AAPL": [bar(i) for i in range(6)], "MSFT": []})
    assert ctx.history("AAPL", 4) == [D(102), D(103), D(104), D(105)]
    assert ctx.history("MSFT", 4) == []
    with pytest.raises(StrategyUsageError):
        ctx._add_bars_history({"TSLA": [bar(0)]})


def test_params_time_cash_and_equity(ctx: Context) -> None:
    assert ctx.params == {"fast": 3}
    assert (ctx.time, ctx.cash, ctx.equity) == (None, D(0), D(0))
    ctx._mark(T0, D("900.50"), D("1000.25"))
    assert (ctx.time, ctx.cash, ctx.equity) == (T0, D("900.50"), D("1000.25"))
    ctx.params["mine"] = True  # the strategy's own copy
    assert Context(("AAPL",), {"fast": 3}).params == {"fast": 3}


def test_positions_follow_fills_partial_fills_and_flips(ctx: Context) -> None:
    assert ctx.position("AAPL") == 0
    ctx._apply_report(report("AAPL", "buy", "30", quantity="100", status="partially_filled"))
    ctx._apply_report(report("AAPL", "buy", "70", quantity="100"))
    assert ctx.position("AAPL") == D(100)
    ctx._apply_report(report("AAPL", "sell", "0", quantity="5", status="cancelled"))
    assert ctx.position("AAPL") == D(100)
    ctx._apply_report(report("AAPL", "sell", "150"))  # flips to short
    assert ctx.position("AAPL") == D(-50)
    ctx._apply_report(report("MSFT", "sell", "2.5"))
    assert ctx.position("MSFT") == D("-2.5")
    ctx._apply_report(report("AAPL", "buy", "50"))
    assert ctx.position("AAPL") == 0
    assert ctx.close("AAPL") is None  # flat again: nothing to close
    assert ctx.position("MSFT") == D("-2.5")


def test_a_notional_is_cut_down_to_eight_places_as_a_budget(ctx: Context) -> None:
    """`ctx.cash / 3` has 28 digits; as a budget it is cut (never rounded up) to 8 places."""
    ctx.buy("AAPL", notional=D("100000.01") / 3)
    ctx.sell("AAPL", notional="2.999999999999")
    orders, _ = ctx._take_orders()
    assert [o.notional for o in orders] == [D("33333.33666666"), D("2.99999999")]
    assert ctx._take_refused() == {}
