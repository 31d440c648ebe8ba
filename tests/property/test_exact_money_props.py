"""Exact money at any size (issue 15): random order streams with numbers at the edges of
their bounds (domain.money), partial fills, shorts and brackets. At every bar the broker's
cash agrees with an independent rational ledger of its reports, and the identity
equity = initial + realized - commissions + unrealized holds exactly, whatever decimal
context the caller happens to run in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from typing import TypeVar

from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.broker import BarQuote, Broker, ExecutionReport
from domain.money import AVG_PRICE_PLACES, NOTIONAL, PRICE, QUANTITY
from domain.orders import OrderRequest, OrderSide, OrderType, TimeInForce
from domain.session import EngineSettings

D = Decimal
T0 = datetime(2024, 1, 2, tzinfo=UTC)
LOTS = {"BRK": D(1), "SAT": D("0.00000001"), "FX": D(1000)}
TICKS = {"BRK": D("0.01"), "SAT": D("0.00000001"), "FX": D("0.00001")}
BAR_PLACES = {"BRK": 2, "SAT": 12, "FX": 5}
"""Bars are stored with up to 12 places (§8.5); SAT's use all of them."""
PRICE_RANGE = {
    "BRK": (D(400_000), D(700_000)),
    "SAT": (D("0.00001"), D("0.001")),
    "FX": (D("0.9"), D("1.3")),
}

TINY = Context(prec=3)
"""A caller's context that would round almost everything: the broker must not care."""

R = TypeVar("R")


def as_caller(function: Callable[..., R], *args: object) -> R:
    with localcontext(TINY):
        return function(*args)


eight_places = st.decimals(min_value=D(0), max_value=D("0.01"), places=8)
engine_settings = st.builds(
    EngineSettings,
    commission_per_share=eight_places,
    commission_pct=eight_places,
    commission_min=st.decimals(min_value=D(0), max_value=D(5), places=8),
    slippage_bps=st.decimals(min_value=D(0), max_value=D(10_000), places=8),
    max_volume_pct=st.none() | st.decimals(min_value=D("0.00000001"), max_value=D(1), places=8),
    allow_short=st.booleans(),
)


def bar_price(symbol: str) -> st.SearchStrategy[Decimal]:
    low, high = PRICE_RANGE[symbol]
    return st.decimals(min_value=low, max_value=high, places=BAR_PLACES[symbol])


def order_price(symbol: str) -> st.SearchStrategy[Decimal]:
    """A price on the symbol's tick, inside the bars' range or at the bound itself."""
    low, high = PRICE_RANGE[symbol]
    tick = TICKS[symbol]
    in_range = st.integers(int(low / tick), int(high / tick)).map(lambda n: n * tick)
    return in_range | st.just(PRICE.maximum)


@st.composite
def bar_quotes(draw: st.DrawFn, symbol: str) -> BarQuote:
    open_, close = draw(bar_price(symbol)), draw(bar_price(symbol))
    high = max(open_, close, draw(bar_price(symbol)))
    low = min(open_, close, draw(bar_price(symbol)))
    volume = draw(st.decimals(min_value=D(0), max_value=D(10) ** 12, places=BAR_PLACES[symbol]))
    return BarQuote(open_, high, low, close, volume, last_of_day=draw(st.booleans()))


@st.composite
def order_requests(draw: st.DrawFn, order_id: str) -> OrderRequest:
    symbol = draw(st.sampled_from(sorted(LOTS)))
    lot = LOTS[symbol]
    side = draw(st.sampled_from(list(OrderSide)))
    order_type = draw(st.sampled_from(list(OrderType)))
    quantity = notional = None
    if draw(st.booleans()):
        most_lots = int(QUANTITY.maximum / lot)
        lots = draw(st.integers(1, 50) | st.integers(1, most_lots) | st.just(most_lots))
        quantity = lots * lot
    else:
        notional = draw(
            st.decimals(min_value=D("0.00000001"), max_value=NOTIONAL.maximum, places=8)
        )
    bracket: tuple[Decimal | None, Decimal | None] = (None, None)
    if draw(st.booleans()):
        low, high = sorted(draw(st.lists(order_price(symbol), min_size=2, max_size=2, unique=True)))
        bracket = (low, high) if side is OrderSide.BUY else (high, low)
        if draw(st.booleans()):
            bracket = draw(st.sampled_from([(bracket[0], None), (None, bracket[1])]))
    return OrderRequest(
        order_id,
        symbol,
        side,
        order_type,
        quantity=quantity,
        notional=notional,
        limit_price=draw(order_price(symbol)) if order_type.uses_limit_price else None,
        stop_price=draw(order_price(symbol)) if order_type.uses_stop_price else None,
        time_in_force=draw(st.sampled_from(list(TimeInForce))),
        stop_loss=bracket[0],
        take_profit=bracket[1],
    )


class RationalLedger:
    """The reports added up in fractions: no decimal context anywhere."""

    def __init__(self, initial: Decimal) -> None:
        self.cash = Fraction(initial)
        self.commission = Fraction(0)
        self.positions: dict[str, Fraction] = {}
        self.marks: dict[str, Fraction] = {}

    def record(self, report: ExecutionReport) -> None:
        if not report.is_fill:
            return
        assert report.price is not None
        signed = Fraction(report.fill_quantity) * report.side.sign
        self.cash -= signed * Fraction(report.price) + Fraction(report.commission)
        self.commission += Fraction(report.commission)
        self.positions[report.symbol] = self.positions.get(report.symbol, Fraction(0)) + signed
        self.marks[report.symbol] = Fraction(report.price)

    def equity(self) -> Fraction:
        return self.cash + sum(
            (q * self.marks[s] for s, q in self.positions.items() if q), Fraction(0)
        )


@settings(max_examples=150, deadline=None)
@given(
    engine=engine_settings,
    initial=st.decimals(min_value=D(1000), max_value=D(10) ** 15, places=2),
    data=st.data(),
)
def test_the_account_identity_holds_exactly_at_every_bar(
    engine: EngineSettings, initial: Decimal, data: st.DataObject
) -> None:
    broker = Broker(initial, LOTS, engine, TICKS)
    ledger = RationalLedger(initial)
    for sequence in range(1, data.draw(st.integers(min_value=1, max_value=20)) + 1):
        for k in range(data.draw(st.integers(min_value=0, max_value=3))):
            request = data.draw(order_requests(f"o{sequence}-{k}"))
            as_caller(broker.submit, request, sequence)  # within every bound: accepted
        open_ids = [o.order_id for o in broker.account().open_orders]
        if open_ids and data.draw(st.integers(0, 4)) == 0:
            ledger.record(as_caller(broker.cancel, data.draw(st.sampled_from(open_ids))))

        symbols = data.draw(st.lists(st.sampled_from(sorted(LOTS)), unique=True))
        quotes = {symbol: data.draw(bar_quotes(symbol)) for symbol in symbols}
        reports = as_caller(broker.process_bar, sequence, T0 + timedelta(hours=sequence), quotes)
        for report in reports:
            event(f"report {report.fill_reason or report.reason}")
            assert report.reason is None or report.reason.value != "INTERNAL_ERROR", report
            ledger.record(report)
        ledger.marks.update({s: Fraction(q.close) for s, q in quotes.items()})

        account = as_caller(broker.account)
        equity = as_caller(lambda: broker.equity)
        assert Fraction(account.cash) == ledger.cash
        assert Fraction(account.total_commission) == ledger.commission
        assert Fraction(equity) == Fraction(account.equity) == ledger.equity()
        identity = (
            Fraction(initial)
            + Fraction(account.realized_pnl)
            - Fraction(account.total_commission)
            + Fraction(account.unrealized_pnl)
        )
        assert identity == Fraction(account.equity)
        for position in account.positions:
            event("short held" if position.quantity < 0 else "long held")
            if position.quantity and account.realized_pnl:
                event("realized with a position open")
            assert Fraction(position.quantity) == ledger.positions[position.symbol]
            # avg_price is for display: rounded to AVG_PRICE_PLACES, never feeding P&L
            exponent = position.avg_price.as_tuple().exponent
            assert isinstance(exponent, int)
            assert -exponent <= AVG_PRICE_PLACES
            basis = Fraction(position.market_value) - Fraction(position.unrealized_pnl)
            exact_average = basis / Fraction(position.quantity)
            assert abs(Fraction(position.avg_price) - exact_average) <= Fraction(1, 2 * 10**12)
