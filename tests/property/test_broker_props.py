"""Properties of the broker over random bars and orders: exact money, fills inside the bar,
no order filled before it is live, and no short without allow_short."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.broker import BarQuote, Broker, ExecutionReport
from domain.orders import OrderRequest, OrderSide, OrderType, TimeInForce
from domain.session import EngineSettings

D = Decimal
LOTS = {"AAPL": D(1), "BTC-USD": D("0.01")}
INITIAL_CASH = D(20000)
T0 = datetime(2024, 1, 2, tzinfo=UTC)

prices = st.decimals(min_value=D(80), max_value=D(120), places=2)
fractions = st.decimals(min_value=D(0), max_value=D("0.05"), places=4)

engine_settings = st.builds(
    EngineSettings,
    commission_per_share=fractions,
    commission_pct=st.decimals(min_value=D(0), max_value=D("0.01"), places=4),
    commission_min=st.decimals(min_value=D(0), max_value=D(5), places=2),
    slippage_bps=st.decimals(min_value=D(0), max_value=D(50), places=1),
    max_volume_pct=st.none() | st.decimals(min_value=D("0.05"), max_value=D(1), places=2),
    allow_short=st.booleans(),
)


@st.composite
def bar_quotes(draw: st.DrawFn) -> BarQuote:
    """A bar that keeps §5's shape: high >= max(open, close), low <= min(open, close)."""
    open_, close = draw(prices), draw(prices)
    high = max(open_, close) + draw(st.decimals(min_value=D(0), max_value=D(8), places=2))
    low = min(open_, close) - draw(st.decimals(min_value=D(0), max_value=D(8), places=2))
    volume = draw(st.decimals(min_value=D(0), max_value=D(2000), places=0))
    return BarQuote(open_, high, low, close, volume, last_of_day=draw(st.booleans()))


@st.composite
def order_requests(draw: st.DrawFn, order_id: str) -> OrderRequest:
    symbol = draw(st.sampled_from(sorted(LOTS)))
    side = draw(st.sampled_from(list(OrderSide)))
    order_type = draw(st.sampled_from(list(OrderType)))
    quantity = notional = None
    if draw(st.booleans()):
        quantity = draw(st.integers(min_value=1, max_value=60)) * LOTS[symbol]
    else:
        notional = draw(st.decimals(min_value=D(50), max_value=D(6000), places=2))
    bracket: tuple[Decimal | None, Decimal | None] = (None, None)
    if draw(st.booleans()):
        low, high = sorted(draw(st.lists(prices, min_size=2, max_size=2, unique=True)))
        bracket = (low, high) if side is OrderSide.BUY else (high, low)
        if draw(st.booleans()):  # sometimes only one leg
            bracket = draw(st.sampled_from([(bracket[0], None), (None, bracket[1])]))
    return OrderRequest(
        order_id,
        symbol,
        side,
        order_type,
        quantity=quantity,
        notional=notional,
        limit_price=draw(prices) if order_type.uses_limit_price else None,
        stop_price=draw(prices) if order_type.uses_stop_price else None,
        time_in_force=draw(st.sampled_from(list(TimeInForce))),
        stop_loss=bracket[0],
        take_profit=bracket[1],
    )


@dataclass
class Ledger:
    """What the reports say happened, added up independently of the broker."""

    cash: Decimal = INITIAL_CASH
    commission: Decimal = Decimal(0)
    positions: dict[str, Decimal] = field(default_factory=dict)
    closes: dict[str, Decimal] = field(default_factory=dict)

    def record(self, report: ExecutionReport) -> None:
        if not report.is_fill:
            return
        assert report.price is not None
        signed = report.fill_quantity if report.side is OrderSide.BUY else -report.fill_quantity
        self.cash -= signed * report.price + report.commission
        self.commission += report.commission
        self.positions[report.symbol] = self.positions.get(report.symbol, D(0)) + signed

    def marked_value(self) -> Decimal:
        return sum(
            (qty * self.closes[symbol] for symbol, qty in self.positions.items() if qty),
            D(0),
        )


def unslipped_price(report: ExecutionReport) -> Decimal:
    """The fill price before slippage, recovered from the report's slippage money."""
    assert report.price is not None
    per_unit = report.slippage / report.fill_quantity
    return report.price - per_unit if report.side is OrderSide.BUY else report.price + per_unit


@settings(max_examples=200, deadline=None)
@given(engine=engine_settings, data=st.data())
def test_money_is_exact_fills_stay_in_the_bar_and_nothing_fills_early(
    engine: EngineSettings, data: st.DataObject
) -> None:
    broker = Broker(INITIAL_CASH, LOTS, engine)
    ledger = Ledger()
    live_from: dict[str, int] = {}
    first_fill: dict[str, int] = {}
    for sequence in range(1, data.draw(st.integers(min_value=1, max_value=25)) + 1):
        for k in range(data.draw(st.integers(min_value=0, max_value=3))):
            request = data.draw(order_requests(f"o{sequence}-{k}"))
            # sent after tick sequence-1: live from this bar, or later when sent in advance
            live_from[request.order_id] = sequence + data.draw(st.integers(0, 2))
            broker.submit(request, live_from[request.order_id])
        open_ids = [o.order_id for o in broker.account().open_orders]
        if open_ids and data.draw(st.integers(0, 4)) == 0:
            ledger.record(broker.cancel(data.draw(st.sampled_from(open_ids))))

        symbols = data.draw(st.lists(st.sampled_from(sorted(LOTS)), unique=True))
        quotes = {symbol: data.draw(bar_quotes()) for symbol in symbols}
        reports = broker.process_bar(sequence, T0 + timedelta(hours=sequence), quotes)

        for report in reports:
            ledger.record(report)
            if not report.is_fill:
                continue
            quote = quotes[report.symbol]
            assert quote.low <= unslipped_price(report) <= quote.high
            if report.parent_id is None:
                assert report.sequence_id >= live_from[report.order_id]
            else:  # an exit is live only from the bar after its entry's first fill
                assert report.sequence_id > first_fill[report.parent_id]
            first_fill.setdefault(report.order_id, report.sequence_id)
        ledger.closes.update({symbol: quote.close for symbol, quote in quotes.items()})

        assert broker.cash == ledger.cash
        assert broker.equity == ledger.cash + ledger.marked_value()
        assert broker.total_commission == ledger.commission
        held = {p.symbol: p.quantity for p in broker.account().positions}
        assert held == {s: q for s, q in ledger.positions.items() if q}
        if not engine.allow_short:
            assert all(q > 0 for q in held.values())
        pnl = broker.realized_pnl + broker.unrealized_pnl - broker.total_commission
        assert INITIAL_CASH + pnl == broker.equity  # exactly (domain.money)


@settings(max_examples=100, deadline=None)
@given(engine=engine_settings, quote=bar_quotes(), data=st.data())
def test_an_order_live_from_the_next_bar_does_not_fill_on_this_one(
    engine: EngineSettings, quote: BarQuote, data: st.DataObject
) -> None:
    broker = Broker(INITIAL_CASH, LOTS, engine)
    request = data.draw(order_requests("late"))
    broker.submit(request, live_from_sequence=2)
    reports = broker.process_bar(1, T0, dict.fromkeys(LOTS, quote))
    assert reports == []
    assert broker.open_order("late") is not None
    assert broker.cash == INITIAL_CASH
