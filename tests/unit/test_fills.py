"""The fill rules of PROTOCOL.md §4.5, case by case: prices, costs, sizes and order lifetimes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.broker import Broker
from domain.fills import (
    BarQuote,
    FillReason,
    PriceMatch,
    commission,
    match_order,
    notional_quantity,
    slipped_price,
    triggers_stop_limit,
    volume_cap,
)
from domain.orders import Order, OrderRequest, OrderSide, OrderType, TimeInForce
from domain.session import EngineSettings

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
MARKET, LIMIT, STOP, STOP_LIMIT = (
    OrderType.MARKET,
    OrderType.LIMIT,
    OrderType.STOP,
    OrderType.STOP_LIMIT,
)
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def bar(
    open_: str, high: str, low: str, close: str, volume: str = "1000000", last: bool = False
) -> BarQuote:
    return BarQuote(D(open_), D(high), D(low), D(close), D(volume), last_of_day=last)


def order(
    order_type: OrderType,
    side: OrderSide,
    *,
    limit: str | None = None,
    stop: str | None = None,
    triggered: bool = False,
) -> Order:
    request = OrderRequest(
        "o1",
        "AAPL",
        side,
        order_type,
        quantity=D(10),
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
    )
    live = Order.accept(request, 1)
    live.stop_triggered = triggered
    return live


# Bar used by the price table: opens at 100, trades 95..105, closes at 102.
BAR = bar("100", "105", "95", "102")

PRICE_CASES = [
    # id, order, slippage bps, expected (price, base price, reason) or None
    ("market buy", order(MARKET, BUY), "0", ("100", "100", FillReason.MARKET_OPEN)),
    ("market buy slipped", order(MARKET, BUY), "10", ("100.1", "100", FillReason.MARKET_OPEN)),
    ("market sell slipped", order(MARKET, SELL), "10", ("99.9", "100", FillReason.MARKET_OPEN)),
    ("limit buy gap", order(LIMIT, BUY, limit="101"), "0", ("100", "100", FillReason.LIMIT_GAP)),
    ("limit buy at open", order(LIMIT, BUY, limit="100"), "0", ("100", "100", "limit_gap")),
    ("limit buy touched", order(LIMIT, BUY, limit="97"), "0", ("97", "97", "limit_touched")),
    ("limit buy at low", order(LIMIT, BUY, limit="95"), "0", ("95", "95", "limit_touched")),
    ("limit buy missed", order(LIMIT, BUY, limit="94.99"), "0", None),
    ("limit buy unslipped", order(LIMIT, BUY, limit="97"), "50", ("97", "97", "limit_touched")),
    ("limit sell gap", order(LIMIT, SELL, limit="99"), "0", ("100", "100", "limit_gap")),
    ("limit sell touched", order(LIMIT, SELL, limit="104"), "0", ("104", "104", "limit_touched")),
    ("limit sell missed", order(LIMIT, SELL, limit="105.01"), "0", None),
    ("limit sell unslipped", order(LIMIT, SELL, limit="99"), "50", ("100", "100", "limit_gap")),
    ("stop buy gap", order(STOP, BUY, stop="99"), "0", ("100", "100", FillReason.STOP_GAP)),
    ("stop buy gap slipped", order(STOP, BUY, stop="99"), "10", ("100.1", "100", "stop_gap")),
    ("stop buy triggered", order(STOP, BUY, stop="103"), "0", ("103", "103", "stop_triggered")),
    ("stop buy slipped", order(STOP, BUY, stop="103"), "10", ("103.103", "103", "stop_triggered")),
    ("stop buy missed", order(STOP, BUY, stop="105.01"), "0", None),
    ("stop sell gap", order(STOP, SELL, stop="101"), "0", ("100", "100", "stop_gap")),
    ("stop sell triggered", order(STOP, SELL, stop="96"), "10", ("95.904", "96", "stop_triggered")),
    ("stop sell missed", order(STOP, SELL, stop="94.99"), "0", None),
    (
        "stop_limit buy gap on trigger bar",
        order(STOP_LIMIT, BUY, stop="99", limit="101"),
        "10",  # stop_limit fills carry no slippage
        ("100", "100", FillReason.STOP_LIMIT_GAP),
    ),
    (
        "stop_limit buy open triggers but misses limit",
        order(STOP_LIMIT, BUY, stop="99", limit="99.5"),
        "0",
        None,
    ),
    (
        "stop_limit buy triggered intrabar rests even if limit touched",
        order(STOP_LIMIT, BUY, stop="103", limit="104"),
        "0",
        None,
    ),
    (
        "stop_limit sell gap on trigger bar",
        order(STOP_LIMIT, SELL, stop="101", limit="99"),
        "0",
        ("100", "100", "stop_limit_gap"),
    ),
    (
        "stop_limit sell open triggers but misses limit",
        order(STOP_LIMIT, SELL, stop="101", limit="100.5"),
        "0",
        None,
    ),
    ("stop_limit never triggered", order(STOP_LIMIT, BUY, stop="106", limit="107"), "0", None),
    (
        "triggered stop_limit rests as limit (touched)",
        order(STOP_LIMIT, BUY, stop="110", limit="97", triggered=True),
        "10",
        ("97", "97", "limit_touched"),
    ),
    (
        "triggered stop_limit rests as limit (gap)",
        order(STOP_LIMIT, SELL, stop="90", limit="99", triggered=True),
        "0",
        ("100", "100", "limit_gap"),
    ),
    (
        "triggered stop_limit misses its limit",
        order(STOP_LIMIT, BUY, stop="90", limit="94", triggered=True),
        "0",
        None,
    ),
]


@pytest.mark.parametrize(
    ("live_order", "slippage_bps", "expected"),
    [case[1:] for case in PRICE_CASES],
    ids=[case[0] for case in PRICE_CASES],
)
def test_fill_price_and_reason(
    live_order: Order, slippage_bps: str, expected: tuple[str, str, str] | None
) -> None:
    settings = EngineSettings(slippage_bps=D(slippage_bps))
    match = match_order(live_order, BAR, settings)
    if expected is None:
        assert match is None
    else:
        price, base, reason = expected
        assert match == PriceMatch(D(price), D(base), FillReason(reason))


@pytest.mark.parametrize(
    ("live_order", "triggers"),
    [
        (order(STOP_LIMIT, BUY, stop="105", limit="106"), True),  # at the high
        (order(STOP_LIMIT, BUY, stop="105.5", limit="106"), False),
        (order(STOP_LIMIT, SELL, stop="95", limit="94"), True),  # at the low
        (order(STOP_LIMIT, SELL, stop="94", limit="93"), False),
        (order(STOP_LIMIT, BUY, stop="99", limit="101", triggered=True), False),  # already
        (order(STOP, BUY, stop="99"), False),  # only stop_limits keep a trigger state
    ],
)
def test_stop_limit_trigger(live_order: Order, triggers: bool) -> None:
    assert triggers_stop_limit(live_order, BAR) is triggers


@pytest.mark.parametrize(
    ("price", "side", "bps", "expected"),
    [
        ("100", BUY, "0", "100"),
        ("100", BUY, "25", "100.25"),
        ("100", SELL, "25", "99.75"),
        ("12.34", BUY, "1", "12.341234"),
    ],
)
def test_slippage_moves_the_price_against_the_trader(
    price: str, side: OrderSide, bps: str, expected: str
) -> None:
    assert slipped_price(D(price), side, D(bps)) == D(expected)


@pytest.mark.parametrize(
    ("quantity", "price", "settings", "expected"),
    [
        ("10", "100", EngineSettings(), "0.00"),
        ("10", "100", EngineSettings(commission_min=D("1")), "1.00"),
        # 0.005 is exactly half a cent: half-up gives 0.01 where banker's rounding gives 0.00
        ("1", "100", EngineSettings(commission_per_share=D("0.005")), "0.01"),
        ("5", "1", EngineSettings(commission_pct=D("0.001")), "0.01"),
        ("1", "100", EngineSettings(commission_per_share=D("0.004")), "0.00"),
        ("99", "100", EngineSettings(commission_pct=D("0.001")), "9.90"),
        ("100", "1", EngineSettings(commission_per_share=D("0.001"), commission_min=D(1)), "1.00"),
        ("500", "1", EngineSettings(commission_per_share=D("0.01"), commission_min=D(1)), "5.00"),
        (
            "100",
            "50",
            EngineSettings(commission_per_share=D("0.01"), commission_pct=D("0.001")),
            "6.00",
        ),
    ],
)
def test_commission(quantity: str, price: str, settings: EngineSettings, expected: str) -> None:
    fee = commission(D(quantity), D(price), settings)
    assert fee == D(expected)
    assert fee.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("notional", "price", "lot", "settings", "expected"),
    [
        # backtesting.py's classic: 100 shares would cost 10,010 with commission
        ("10000", "100", "1", EngineSettings(commission_pct=D("0.001")), "99"),
        ("10000", "100", "1", EngineSettings(), "100"),
        ("100", "3", "10", EngineSettings(), "30"),
        ("100", "10", "1", EngineSettings(commission_min=D(5)), "9"),
        ("100", "1", "1", EngineSettings(commission_per_share=D("0.01")), "99"),
        ("50", "100", "1", EngineSettings(), "0"),
        # the cent rounding makes 100 shares' commission 0.00, so all 100 fit exactly
        ("100", "1", "1", EngineSettings(commission_pct=D("0.00004")), "100"),
        ("1000", "30000", "0.001", EngineSettings(commission_pct=D("0.001")), "0.033"),
    ],
)
def test_notional_buys_the_most_whole_lots_that_fit(
    notional: str, price: str, lot: str, settings: EngineSettings, expected: str
) -> None:
    quantity = notional_quantity(D(notional), D(price), D(lot), settings)
    assert quantity == D(expected)
    cost = quantity * D(price) + commission(quantity, D(price), settings)
    assert cost <= D(notional)
    one_more = quantity + D(lot)
    assert one_more * D(price) + commission(one_more, D(price), settings) > D(notional)


def most_lots_that_fit(
    notional: Decimal, price: Decimal, lot: Decimal, engine: EngineSettings
) -> Decimal:
    """The answer lot by lot, for comparison."""
    lots = 0
    while True:
        quantity = (lots + 1) * lot
        if quantity * price + commission(quantity, price, engine) > notional:
            return lots * lot
        lots += 1


@settings(max_examples=300, deadline=None)
@given(
    notional=st.integers(0, 300_000).map(lambda c: D(c) / 100),
    price=st.integers(1, 2_000_000).map(lambda c: D(c) / 10_000),
    lot=st.sampled_from([D(1), D(10), D("0.001"), D("0.5")]),
    per_share=st.sampled_from([D(0), D("0.005"), D("0.01")]),
    pct=st.sampled_from([D(0), D("0.001"), D("0.00004"), D("0.02")]),
    minimum=st.sampled_from([D(0), D(1), D(5), D(40)]),
)
def test_notional_sizing_matches_counting_lot_by_lot(
    notional: Decimal,
    price: Decimal,
    lot: Decimal,
    per_share: Decimal,
    pct: Decimal,
    minimum: Decimal,
) -> None:
    engine = EngineSettings(
        commission_per_share=per_share, commission_pct=pct, commission_min=minimum
    )
    if notional // (lot * price) > 5_000:  # keep the lot-by-lot count short
        return
    expected = most_lots_that_fit(notional, price, lot, engine)
    assert notional_quantity(notional, price, lot, engine) == expected


@pytest.mark.parametrize(
    ("volume", "lot", "pct", "expected"),
    [
        ("1000", "1", None, None),
        ("1000", "1", "0.1", "100"),
        ("1005", "10", "0.1", "100"),
        ("50", "1", "0.01", "0"),
        ("0.0035", "0.001", "0.5", "0.001"),
    ],
)
def test_volume_cap(volume: str, lot: str, pct: str | None, expected: str | None) -> None:
    cap = volume_cap(D(volume), D(lot), None if pct is None else D(pct))
    assert cap == (None if expected is None else D(expected))


# -- order lifetimes through the broker -------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One expected report: bar, order, status, this fill's quantity, its price, why."""

    sequence: int
    order_id: str
    status: str
    fill_quantity: Decimal
    price: Decimal | None
    why: str | None


def ev(
    sequence: int,
    order_id: str,
    status: str,
    fill_quantity: str = "0",
    price: str | None = None,
    why: str | None = None,
) -> Event:
    return Event(sequence, order_id, status, D(fill_quantity), _decimal(price), why)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else D(value)


def run(
    requests: Sequence[OrderRequest],
    bars: Sequence[BarQuote],
    settings: EngineSettings | None = None,
    live_from: int = 1,
) -> list[Event]:
    """Submit `requests`, feed `bars` as sequences 1..n, finish; every report as an Event."""
    broker = Broker(D(1_000_000), {"AAPL": D(1)}, settings or EngineSettings())
    for request in requests:
        broker.submit(request, live_from)
    reports = []
    for sequence, quote in enumerate(bars, start=1):
        reports += broker.process_bar(sequence, T0 + timedelta(days=sequence), {"AAPL": quote})
    reports += broker.finish(len(bars), T0 + timedelta(days=len(bars)))
    return [
        Event(
            r.sequence_id,
            r.order_id,
            r.status,
            r.fill_quantity,
            r.price,
            r.fill_reason or r.reason,
        )
        for r in reports
    ]


def req(
    order_type: OrderType,
    side: OrderSide = BUY,
    quantity: str = "100",
    *,
    limit: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    stop_loss: str | None = None,
    take_profit: str | None = None,
    order_id: str = "e",
) -> OrderRequest:
    return OrderRequest(
        order_id,
        "AAPL",
        side,
        order_type,
        quantity=D(quantity),
        limit_price=_decimal(limit),
        stop_price=_decimal(stop),
        time_in_force=tif,
        stop_loss=_decimal(stop_loss),
        take_profit=_decimal(take_profit),
    )


QUIET = bar("100", "101", "99", "100")  # touches nothing below 99 or above 101
CAP = EngineSettings(max_volume_pct=D("0.1"))

LIFETIME_CASES = [
    (
        "gtc limit rests until touched",
        [req(LIMIT, limit="98")],
        [QUIET, QUIET, bar("100", "100", "97", "99")],
        None,
        [ev(3, "e", "filled", "100", "98", "limit_touched")],
    ),
    (
        "gtc lives until the end of data",
        [req(LIMIT, limit="90")],
        [QUIET, QUIET],
        None,
        [ev(2, "e", "cancelled", why="END_OF_DATA")],
    ),
    (
        "ioc that misses expires on bar B",
        [req(LIMIT, limit="90", tif=TimeInForce.IOC)],
        [QUIET, bar("100", "100", "80", "85")],
        None,
        [ev(1, "e", "expired", why="TIME_IN_FORCE")],
    ),
    (
        "ioc partly filled by the volume cap expires the rest",
        [req(MARKET, quantity="250", tif=TimeInForce.IOC)],
        [bar("100", "101", "99", "100", volume="1000"), QUIET],
        CAP,
        [
            ev(1, "e", "partially_filled", "100", "100", "market_open"),
            ev(1, "e", "expired", why="TIME_IN_FORCE"),
        ],
    ),
    (
        "day order expires after the last bar of its day",
        [req(LIMIT, limit="90", tif=TimeInForce.DAY)],
        [QUIET, bar("100", "101", "99", "100", last=True), bar("95", "95", "80", "85")],
        None,
        [ev(2, "e", "expired", why="TIME_IN_FORCE")],
    ),
    (
        "day order fills on a bar of its day",
        [req(LIMIT, limit="99", tif=TimeInForce.DAY)],
        [QUIET, bar("100", "101", "98", "100", last=True)],
        None,
        [ev(1, "e", "filled", "100", "99", "limit_touched")],
    ),
    (
        "volume cap spreads a fill across bars",
        [req(MARKET, quantity="250")],
        [bar("100", "101", "99", "100", volume="1000")] * 2 + [bar("102", "102", "101", "101")],
        CAP,
        [
            ev(1, "e", "partially_filled", "100", "100", "market_open"),
            ev(2, "e", "partially_filled", "100", "100", "market_open"),
            ev(3, "e", "filled", "50", "102", "market_open"),
        ],
    ),
    (
        "a bar too thin for one lot fills nothing",
        [req(MARKET, quantity="10")],
        [bar("100", "101", "99", "100", volume="5"), bar("101", "101", "99", "100")],
        CAP,
        [ev(2, "e", "filled", "10", "101", "market_open")],
    ),
    (
        "stop_limit triggers, then rests as a limit from the next bar",
        [req(STOP_LIMIT, stop="102", limit="101")],
        [bar("100", "103", "100", "102"), bar("102", "102", "100.5", "101")],
        None,
        [ev(2, "e", "filled", "100", "101", "limit_touched")],
    ),
    (
        "stop_limit gap fill on its trigger bar",
        [req(STOP_LIMIT, stop="102", limit="104")],
        [QUIET, bar("103", "105", "102", "104")],
        None,
        [ev(2, "e", "filled", "100", "103", "stop_limit_gap")],
    ),
    (
        "stop_limit that never triggers",
        [req(STOP_LIMIT, stop="110", limit="111")],
        [QUIET, QUIET],
        None,
        [ev(2, "e", "cancelled", why="END_OF_DATA")],
    ),
    (
        "orders on one bar fill in acceptance order",
        [req(MARKET, order_id="first"), req(LIMIT, limit="100", order_id="second")],
        [QUIET],
        None,
        [
            ev(1, "first", "filled", "100", "100", "market_open"),
            ev(1, "second", "filled", "100", "100", "limit_gap"),
        ],
    ),
    (
        "bracket: both exits hit on one bar, the stop-loss fills",
        [req(MARKET, stop_loss="95", take_profit="105")],
        # the entry bar itself spans both exits: they are not live on it
        [bar("100", "106", "94", "100"), bar("100", "106", "94", "100")],
        EngineSettings(slippage_bps=D(10)),
        [
            ev(1, "e", "filled", "100", "100.1", "market_open"),
            ev(2, "e-sl", "filled", "100", "94.905", "stop_loss"),
            ev(2, "e-tp", "cancelled", why="OCO"),
        ],
    ),
    (
        "bracket: take-profit fills and cancels the stop-loss",
        [req(MARKET, stop_loss="95", take_profit="105")],
        [QUIET, bar("104", "106", "103", "105")],
        EngineSettings(slippage_bps=D(10)),
        [
            ev(1, "e", "filled", "100", "100.1", "market_open"),
            ev(2, "e-tp", "filled", "100", "105", "take_profit"),
            ev(2, "e-sl", "cancelled", why="OCO"),
        ],
    ),
    (
        "bracket of a short entry protects above",
        [req(MARKET, SELL, stop_loss="105", take_profit="95")],
        [QUIET, QUIET, bar("106", "107", "104", "105")],
        EngineSettings(allow_short=True),
        [
            ev(1, "e", "filled", "100", "100", "market_open"),
            ev(3, "e-sl", "filled", "100", "106", "stop_loss"),
            ev(3, "e-tp", "cancelled", why="OCO"),
        ],
    ),
    (
        "bracket exits cover what an ioc entry filled",
        [req(MARKET, quantity="250", tif=TimeInForce.IOC, stop_loss="90")],
        [bar("100", "101", "99", "100", volume="1000"), bar("89", "90", "88", "89")],
        CAP,
        [
            ev(1, "e", "partially_filled", "100", "100", "market_open"),
            ev(1, "e", "expired", why="TIME_IN_FORCE"),
            ev(2, "e-sl", "filled", "100", "89", "stop_loss"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("requests", "bars", "settings", "expected"),
    [case[1:] for case in LIFETIME_CASES],
    ids=[str(case[0]) for case in LIFETIME_CASES],
)
def test_order_lifetime(
    requests: list[OrderRequest],
    bars: list[BarQuote],
    settings: EngineSettings | None,
    expected: list[Event],
) -> None:
    assert run(requests, bars, settings) == expected


def test_an_order_is_not_worked_before_its_first_live_bar() -> None:
    ioc = req(MARKET, tif=TimeInForce.IOC)
    assert run(
        [ioc], [bar("100", "101", "99", "100"), bar("110", "111", "109", "110")], None, 2
    ) == [ev(2, "e", "filled", "100", "110", "market_open")]
