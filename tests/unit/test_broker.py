"""The broker's accounting, funds and shorting rules, order validation, cancels and snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from domain.broker import BarQuote, Broker, BrokerState, ExecutionReport, ReportReason
from domain.errors import DuplicateOrderId, InvalidOrder, OrderNotFound
from domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from domain.session import EngineSettings

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
LOTS = {"AAPL": D(1), "MSFT": D(1), "BTC-USD": D("0.001")}


def flat(price: str, volume: str = "1000000") -> BarQuote:
    """A bar that opens, trades and closes at one price."""
    p = D(price)
    return BarQuote(p, p, p, p, D(volume))


def market(
    order_id: str, side: OrderSide, quantity: str, symbol: str = "AAPL", **extra: object
) -> OrderRequest:
    return OrderRequest(
        order_id,
        symbol,
        side,
        OrderType.MARKET,
        quantity=D(quantity),
        **extra,  # type: ignore[arg-type]
    )


class Desk:
    """A broker plus a bar counter, so a test reads as a list of trades."""

    def __init__(self, cash: str = "100000", **settings: object) -> None:
        self.broker = Broker(D(cash), LOTS, EngineSettings(**settings))  # type: ignore[arg-type]
        self.sequence = 0

    def bar(self, quotes: Mapping[str, BarQuote]) -> list[ExecutionReport]:
        self.sequence += 1
        return self.broker.process_bar(self.sequence, T0 + timedelta(days=self.sequence), quotes)

    def trade(
        self, side: OrderSide, quantity: str, price: str, symbol: str = "AAPL"
    ) -> ExecutionReport:
        """Send a market order and fill it on the next bar, which trades flat at `price`."""
        order_id = f"t{self.sequence + 1}-{symbol}"
        self.broker.submit(market(order_id, side, quantity, symbol), self.sequence + 1)
        (report,) = self.bar({symbol: flat(price)})
        return report


# -- accounting ---------------------------------------------------------------------------


def test_a_buy_moves_cash_by_cost_plus_commission_and_marks_to_the_close() -> None:
    desk = Desk(commission_per_share=D("0.01"), commission_min=D(1))
    report = desk.trade(BUY, "150", "100.25")
    assert report.status is OrderStatus.FILLED
    assert report.commission == D("1.50")
    assert desk.broker.cash == D(100000) - D(150) * D("100.25") - D("1.50")
    desk.bar({"AAPL": BarQuote(D(101), D(103), D(100), D("102.5"), D(1000))})
    account = desk.broker.account()
    (position,) = account.positions
    assert (position.quantity, position.avg_price, position.market_price) == (
        D(150),
        D("100.25"),
        D("102.5"),
    )
    assert position.unrealized_pnl == D(150) * (D("102.5") - D("100.25"))
    assert account.equity == D("84961.00") + D(150) * D("102.5")
    assert account.buying_power == account.cash


def test_average_cost_and_realized_pnl_when_reducing() -> None:
    desk = Desk()
    desk.trade(BUY, "100", "100")
    desk.trade(BUY, "100", "110")
    desk.trade(SELL, "50", "120")
    account = desk.broker.account()
    (position,) = account.positions
    assert position.quantity == D(150)
    assert position.avg_price == D(105)
    assert account.realized_pnl == D(50) * (D(120) - D(105))
    assert account.unrealized_pnl == D(150) * (D(120) - D(105))


def test_closing_a_position_removes_it_and_realizes_everything() -> None:
    desk = Desk(commission_pct=D("0.001"))
    desk.trade(BUY, "30", "10")
    desk.trade(BUY, "70", "13")
    desk.trade(SELL, "100", "12")
    account = desk.broker.account()
    assert account.positions == ()
    assert account.realized_pnl == D(1200) - D(300) - D(910)
    assert account.total_commission == D("0.30") + D("0.91") + D("1.20")
    assert account.cash == D(100000) + account.realized_pnl - account.total_commission
    assert desk.broker.active_symbols == frozenset()


def test_a_sell_through_zero_flips_to_a_short_at_the_fill_price() -> None:
    desk = Desk(allow_short=True)
    desk.trade(BUY, "100", "100")
    desk.trade(SELL, "150", "110")
    account = desk.broker.account()
    (position,) = account.positions
    assert (position.quantity, position.avg_price) == (D(-50), D(110))
    assert account.realized_pnl == D(1000)
    desk.bar({"AAPL": flat("104")})
    assert desk.broker.unrealized_pnl == D(50) * D(6)
    desk.trade(BUY, "80", "100")
    (position,) = desk.broker.account().positions
    assert (position.quantity, position.avg_price) == (D(30), D(100))
    assert desk.broker.realized_pnl == D(1000) + D(50) * D(10)


def test_equity_is_initial_cash_plus_pnl_minus_commission() -> None:
    desk = Desk(allow_short=True, commission_per_share=D("0.013"), slippage_bps=D(7))
    desk.trade(BUY, "37", "101.37")
    desk.trade(SELL, "12", "99.11")
    desk.trade(SELL, "3", "120.5", symbol="MSFT")
    desk.trade(SELL, "40", "97.03")
    desk.bar({"AAPL": flat("95.5"), "MSFT": flat("118")})
    broker = desk.broker
    expected = D(100000) + broker.realized_pnl + broker.unrealized_pnl - broker.total_commission
    assert broker.equity == expected
    assert broker.equity == broker.cash + D(-15) * D("95.5") + D(-3) * D(118)


def test_slippage_is_charged_in_the_price_and_totalled_in_money() -> None:
    desk = Desk(slippage_bps=D(20))
    buy = desk.trade(BUY, "10", "50")
    assert (buy.price, buy.slippage) == (D("50.1"), D("1.0"))
    sell = desk.trade(SELL, "10", "60")
    assert (sell.price, sell.slippage) == (D("59.88"), D("1.2"))
    assert desk.broker.total_slippage == D("2.2")
    assert desk.broker.realized_pnl == D(10) * (D("59.88") - D("50.1"))


def test_a_symbol_left_out_of_a_bar_keeps_its_last_mark() -> None:
    desk = Desk()
    desk.trade(BUY, "10", "50")
    desk.trade(BUY, "10", "200", symbol="MSFT")
    assert desk.broker.active_symbols == {"AAPL", "MSFT"}
    desk.bar({"MSFT": flat("210")})
    marks = {p.symbol: p.market_price for p in desk.broker.account().positions}
    assert marks == {"AAPL": D(50), "MSFT": D(210)}


# -- funds and shorting -------------------------------------------------------------------


def test_a_buy_beyond_cash_is_rejected_at_the_fill() -> None:
    desk = Desk(cash="10000", commission_min=D(1))
    rejected = desk.trade(BUY, "100", "100")
    assert (rejected.status, rejected.reason) == (
        OrderStatus.REJECTED,
        ReportReason.INSUFFICIENT_FUNDS,
    )
    assert (rejected.fill_quantity, rejected.price) == (D(0), None)
    assert desk.broker.cash == D(10000)
    filled = desk.trade(BUY, "99", "100")
    assert filled.status is OrderStatus.FILLED
    assert desk.broker.cash == D(99)


def test_a_notional_order_is_sized_at_its_fill_price() -> None:
    desk = Desk(commission_pct=D("0.001"))
    desk.broker.submit(
        OrderRequest("n", "AAPL", BUY, OrderType.MARKET, notional=D(10000)), live_from_sequence=1
    )
    (report,) = desk.bar({"AAPL": flat("100")})
    assert (report.quantity, report.fill_quantity, report.commission) == (D(99), D(99), D("9.90"))
    assert desk.broker.cash == D(100000) - D(9900) - D("9.90")


def test_a_notional_too_small_for_one_lot_is_rejected_for_funds() -> None:
    desk = Desk()
    desk.broker.submit(OrderRequest("n", "AAPL", BUY, OrderType.MARKET, notional=D(99)), 1)
    (report,) = desk.bar({"AAPL": flat("100")})
    assert (report.status, report.reason, report.quantity) == (
        OrderStatus.REJECTED,
        ReportReason.INSUFFICIENT_FUNDS,
        None,
    )


@pytest.mark.parametrize("held", ["0", "10"])
def test_selling_more_than_held_is_refused_without_allow_short(held: str) -> None:
    desk = Desk()
    if held != "0":
        desk.trade(BUY, held, "100")
    report = desk.trade(SELL, "11", "100")
    assert (report.status, report.reason) == (OrderStatus.REJECTED, ReportReason.SHORT_NOT_ALLOWED)
    assert desk.broker.position_quantity("AAPL") == D(held)


@pytest.mark.parametrize(
    ("quantity", "accepted"),
    [("200", True), ("201", False)],  # equity 10,000 carries at most 20,000 of shorts
)
def test_a_short_needs_equity_of_half_its_gross_value(quantity: str, accepted: bool) -> None:
    desk = Desk(cash="10000", allow_short=True)
    report = desk.trade(SELL, quantity, "100")
    if accepted:
        assert report.status is OrderStatus.FILLED
        assert desk.broker.cash == D(30000)
        assert desk.broker.equity == D(10000)
    else:
        assert (report.status, report.reason) == (
            OrderStatus.REJECTED,
            ReportReason.INSUFFICIENT_MARGIN,
        )
        assert desk.broker.cash == D(10000)


def test_the_margin_rule_counts_shorts_in_other_symbols() -> None:
    desk = Desk(cash="10000", allow_short=True)
    assert desk.trade(SELL, "100", "100", symbol="MSFT").status is OrderStatus.FILLED
    # gross short would be 10,000 (MSFT) + 10,100 (AAPL); equity stays 10,000
    refused = desk.trade(SELL, "101", "100")
    assert refused.reason is ReportReason.INSUFFICIENT_MARGIN
    assert desk.trade(SELL, "100", "100").status is OrderStatus.FILLED


# -- validation ---------------------------------------------------------------------------

VALID = OrderRequest("ok", "AAPL", BUY, OrderType.MARKET, quantity=D(10))


def variant(**changes: object) -> OrderRequest:
    fields: dict[str, object] = {
        "order_id": VALID.order_id,
        "symbol": VALID.symbol,
        "side": VALID.side,
        "type": VALID.type,
        "quantity": VALID.quantity,
    }
    fields.update(changes)
    return OrderRequest(**fields)  # type: ignore[arg-type]


LIMIT, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (variant(order_id=""), "order_id"),
        (variant(order_id="x" * 65), "order_id"),
        (variant(symbol="TSLA"), "symbol"),
        (variant(quantity=None), "quantity"),
        (variant(notional=D(1000)), "quantity"),
        (variant(quantity=D(0)), "quantity"),
        (variant(quantity=D(-5)), "quantity"),
        (variant(quantity=D("1.5")), "quantity"),
        (variant(quantity=D("NaN")), "quantity"),
        (variant(symbol="BTC-USD", quantity=D("0.0015")), "quantity"),
        (variant(quantity=None, notional=D(0)), "notional"),
        (variant(quantity=None, notional=D("Infinity")), "notional"),
        (variant(type=LIMIT), "limit_price"),
        (variant(type=STOP), "stop_price"),
        (variant(type=STOP_LIMIT, limit_price=D(10)), "stop_price"),
        (variant(type=STOP_LIMIT, stop_price=D(10)), "limit_price"),
        (variant(type=LIMIT, limit_price=D(0)), "limit_price"),
        (variant(type=LIMIT, limit_price=D("-1")), "limit_price"),
        (variant(type=STOP, stop_price=D("sNaN")), "stop_price"),
        (variant(type=STOP, stop_price=D("Infinity")), "stop_price"),
        (variant(limit_price=D(10)), "limit_price"),
        (variant(stop_price=D(10)), "stop_price"),
        (variant(type=LIMIT, limit_price=D(10), stop_price=D(9)), "stop_price"),
        (variant(type=STOP, stop_price=D(10), limit_price=D(11)), "limit_price"),
        (variant(stop_loss=D(0)), "stop_loss"),
        (variant(take_profit=D("NaN")), "take_profit"),
        (variant(stop_loss=D(110), take_profit=D(105)), "stop_loss"),
        (variant(side=SELL, stop_loss=D(95), take_profit=D(105)), "stop_loss"),
    ],
)
def test_invalid_orders_are_refused_naming_the_field(request_: OrderRequest, field: str) -> None:
    broker = Broker(D(1000), LOTS, EngineSettings())
    with pytest.raises(InvalidOrder) as refused:
        broker.submit(request_, 1)
    assert refused.value.field == field
    assert refused.value.details["field"] == field
    assert broker.account().open_orders == ()


@pytest.mark.parametrize(
    "request_",
    [
        VALID,
        variant(order_id="x" * 64),
        variant(symbol="BTC-USD", quantity=D("0.003")),
        variant(quantity=None, notional=D("2500.50")),
        variant(
            type=STOP_LIMIT, stop_price=D(10), limit_price=D("10.5"), time_in_force=TimeInForce.DAY
        ),
        variant(stop_loss=D(90), take_profit=D(110)),
        variant(side=SELL, stop_loss=D(110)),
    ],
)
def test_valid_orders_are_accepted(request_: OrderRequest) -> None:
    broker = Broker(D(1000), LOTS, EngineSettings())
    order = broker.submit(request_, 3)
    assert order.status is OrderStatus.ACCEPTED
    assert [o.order_id for o in broker.account().open_orders] == [request_.order_id]


def test_an_order_id_is_never_reused_even_after_the_order_ended() -> None:
    desk = Desk()
    desk.broker.submit(market("a", BUY, "1"), 1)
    with pytest.raises(DuplicateOrderId):
        desk.broker.submit(market("a", BUY, "1"), 1)
    desk.bar({"AAPL": flat("10")})
    desk.broker.submit(market("b", BUY, "1"), 2)
    desk.broker.cancel("b")
    for used in ("a", "b"):
        with pytest.raises(DuplicateOrderId) as refused:
            desk.broker.submit(market(used, BUY, "1"), 3)
        assert refused.value.details == {"order_id": used}


def test_a_bracket_reserves_the_ids_of_its_exits() -> None:
    broker = Broker(D(1000), LOTS, EngineSettings())
    broker.submit(market("e", BUY, "1", stop_loss=D(5)), 1)
    with pytest.raises(DuplicateOrderId):
        broker.submit(market("e-sl", BUY, "1"), 1)
    broker.submit(market("e-tp", BUY, "1"), 1)  # no take-profit was asked for
    with pytest.raises(DuplicateOrderId):
        broker.submit(market("e", BUY, "1", take_profit=D(50)), 1)


# -- cancels and the end of data ----------------------------------------------------------


def test_cancel_reports_the_order_and_closes_it() -> None:
    desk = Desk()
    desk.bar({"AAPL": flat("10")})
    desk.broker.submit(
        OrderRequest("l", "AAPL", BUY, OrderType.LIMIT, quantity=D(5), limit_price=D(9)), 2
    )
    report = desk.broker.cancel("l")
    assert (report.status, report.reason, report.remaining_quantity) == (
        OrderStatus.CANCELLED,
        ReportReason.CANCELLED,
        D(5),
    )
    assert (report.sequence_id, report.sim_time) == (1, T0 + timedelta(days=1))
    assert desk.bar({"AAPL": flat("8")}) == []
    with pytest.raises(OrderNotFound):
        desk.broker.cancel("l")
    with pytest.raises(OrderNotFound):
        desk.broker.cancel("never-sent")


def test_a_filled_order_cannot_be_cancelled() -> None:
    desk = Desk()
    desk.trade(BUY, "1", "10")
    with pytest.raises(OrderNotFound):
        desk.broker.cancel("t1-AAPL")


def test_cancelling_an_entry_drops_its_bracket() -> None:
    desk = Desk(max_volume_pct=D("0.5"))
    desk.broker.submit(market("e", BUY, "10", stop_loss=D(5), take_profit=D(20)), 1)
    (partial,) = desk.bar({"AAPL": flat("10", volume="8")})
    assert partial.status is OrderStatus.PARTIALLY_FILLED
    desk.broker.cancel("e")
    assert desk.broker.account().open_orders == ()
    assert desk.bar({"AAPL": flat("4")}) == []
    assert desk.broker.position_quantity("AAPL") == D(4)


def test_cancelling_one_exit_leaves_its_sibling() -> None:
    desk = Desk()
    desk.broker.submit(market("e", BUY, "10", stop_loss=D(5), take_profit=D(20)), 1)
    desk.bar({"AAPL": flat("10")})
    exits = desk.broker.account().open_orders
    assert [(o.order_id, o.quantity, o.parent_id, o.live_from_sequence) for o in exits] == [
        ("e-sl", D(10), "e", 2),
        ("e-tp", D(10), "e", 2),
    ]
    desk.broker.cancel("e-tp")
    (stopped,) = desk.bar({"AAPL": flat("4")})
    assert (stopped.order_id, stopped.price, stopped.fill_reason) == ("e-sl", D(4), "stop_loss")


def test_finish_cancels_open_orders_and_keeps_positions() -> None:
    desk = Desk()
    desk.trade(BUY, "10", "10")
    desk.broker.submit(
        OrderRequest("l", "AAPL", SELL, OrderType.LIMIT, quantity=D(10), limit_price=D(50)), 2
    )
    (report,) = desk.broker.finish(1, T0)
    assert (report.order_id, report.status, report.reason) == (
        "l",
        OrderStatus.CANCELLED,
        ReportReason.END_OF_DATA,
    )
    assert desk.broker.position_quantity("AAPL") == D(10)
    assert desk.broker.equity == D(100000)


def test_execution_ids_count_up_across_fills_and_closes() -> None:
    desk = Desk()
    ids = [desk.trade(BUY, "1", "10").execution_id for _ in range(3)]
    desk.broker.submit(market("x", BUY, "1"), 9)
    ids.append(desk.broker.cancel("x").execution_id)
    assert ids == ["exec_000001", "exec_000002", "exec_000003", "exec_000004"]


def test_bars_must_come_in_sequence() -> None:
    desk = Desk()
    desk.bar({})
    with pytest.raises(ValueError, match="does not follow"):
        desk.broker.process_bar(1, T0, {})


# -- snapshot and restore -----------------------------------------------------------------


def scripted_orders(sequence: int) -> list[OrderRequest]:
    """A deterministic mix of orders to send after bar `sequence`."""
    n = sequence
    return [
        OrderRequest(
            f"lim{n}",
            "AAPL",
            BUY if n % 2 else SELL,
            OrderType.LIMIT,
            quantity=D(7),
            limit_price=D(100) + D(n % 5) - 2,
            time_in_force=TimeInForce.DAY if n % 3 else TimeInForce.GTC,
        ),
        OrderRequest(
            f"stp{n}",
            "MSFT",
            BUY,
            OrderType.STOP_LIMIT,
            quantity=D(3),
            stop_price=D(201) + D(n % 4),
            limit_price=D(203),
            stop_loss=D(195),
            take_profit=D(210),
        ),
        OrderRequest(
            f"mkt{n}", "MSFT", SELL, OrderType.MARKET, quantity=D(2), time_in_force=TimeInForce.IOC
        ),
    ]


def scripted_bar(sequence: int) -> dict[str, BarQuote]:
    swing = D((sequence * 7) % 11) - 5
    aapl = D(100) + swing / 2
    msft = D(200) + swing
    return {
        "AAPL": BarQuote(aapl, aapl + 2, aapl - 3, aapl + 1, D(500), last_of_day=sequence % 4 == 0),
        "MSFT": BarQuote(msft, msft + 4, msft - 2, msft - 1, D(25), last_of_day=sequence % 4 == 0),
    }


def drive(broker: Broker, first: int, last: int) -> list[ExecutionReport]:
    reports = []
    for sequence in range(first, last + 1):
        reports += broker.process_bar(
            sequence, T0 + timedelta(hours=sequence), scripted_bar(sequence)
        )
        for request in scripted_orders(sequence):
            broker.submit(request, sequence + 1)
        if sequence % 5 == 0:
            open_ids = [o.order_id for o in broker.account().open_orders]
            reports.append(broker.cancel(open_ids[0]))
    return reports


SCRIPTED_SETTINGS = EngineSettings(
    commission_per_share=D("0.01"),
    commission_min=D(1),
    slippage_bps=D(5),
    max_volume_pct=D("0.1"),
    allow_short=True,
)


def new_broker() -> Broker:
    return Broker(D(50000), LOTS, SCRIPTED_SETTINGS)


def test_restoring_a_snapshot_continues_exactly_as_if_never_stopped() -> None:
    uninterrupted = new_broker()
    expected = drive(uninterrupted, 1, 40)
    assert sum(r.is_fill for r in expected) > 40  # the script really trades

    first = new_broker()
    before = drive(first, 1, 17)
    encoded = msgspec.json.encode(first.state())
    state = msgspec.json.decode(encoded, type=BrokerState)
    assert state == first.state()
    second = Broker.restore(state, LOTS, SCRIPTED_SETTINGS)
    after = drive(second, 18, 40)

    assert before + after == expected
    assert second.account() == uninterrupted.account()
    assert second.state() == uninterrupted.state()
