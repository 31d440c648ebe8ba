"""The fill model of PROTOCOL.md §4.5 as pure functions: where an order fills on a bar, at
what price and cost, and how many lots it may take."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import NamedTuple

from domain.money import MONEY_CONTEXT, QUANTITY, round_places
from domain.orders import ExitRole, Order, OrderSide, OrderType
from domain.session import EngineSettings

ZERO = Decimal(0)
ONE = Decimal(1)


class FillReason(StrEnum):
    MARKET_OPEN = "market_open"
    LIMIT_TOUCHED = "limit_touched"
    LIMIT_GAP = "limit_gap"
    STOP_TRIGGERED = "stop_triggered"
    STOP_GAP = "stop_gap"
    STOP_LIMIT_GAP = "stop_limit_gap"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class BarQuote(NamedTuple):
    """One symbol's bar as the broker fills against it. `last_of_day` is true when this is
    the last bar of its trading day for that symbol (the application knows the calendar).
    A named tuple: one is made per symbol and bar, so it must be cheap."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    last_of_day: bool = False


@dataclass(slots=True)  # never changed once built; not frozen: one is built per order or
# fill, and a frozen dataclass costs three times as much to build (docs/guide/performance.md)
class PriceMatch:
    """Where an order fills on a bar: `price` is paid or received, `base_price` is that price
    before slippage (the two differ only for market and stop fills)."""

    price: Decimal
    base_price: Decimal
    reason: FillReason

    def slippage_cost(self, quantity: Decimal) -> Decimal:
        return abs(self.price - self.base_price) * quantity


def limit_match(
    side: OrderSide, limit: Decimal, bar: BarQuote
) -> tuple[Decimal, FillReason] | None:
    """A limit fills at the open when the bar gaps through it, else at the limit if touched."""
    if side is OrderSide.BUY:
        if bar.open <= limit:
            return bar.open, FillReason.LIMIT_GAP
        return (limit, FillReason.LIMIT_TOUCHED) if bar.low <= limit else None
    if bar.open >= limit:
        return bar.open, FillReason.LIMIT_GAP
    return (limit, FillReason.LIMIT_TOUCHED) if bar.high >= limit else None


def stop_match(side: OrderSide, stop: Decimal, bar: BarQuote) -> tuple[Decimal, FillReason] | None:
    """A stop fills at the open when the bar gaps through it, else at the stop if reached."""
    if side is OrderSide.BUY:
        if bar.open >= stop:
            return bar.open, FillReason.STOP_GAP
        return (stop, FillReason.STOP_TRIGGERED) if bar.high >= stop else None
    if bar.open <= stop:
        return bar.open, FillReason.STOP_GAP
    return (stop, FillReason.STOP_TRIGGERED) if bar.low <= stop else None


def triggers_stop_limit(order: Order, bar: BarQuote) -> bool:
    """Whether `bar` triggers the stop of a stop_limit not triggered before it."""
    request = order.request
    if request.type is not OrderType.STOP_LIMIT or order.stop_triggered:
        return False
    return stop_match(request.side, _required(request.stop_price), bar) is not None


def stop_limit_trigger_match(
    side: OrderSide, stop: Decimal, limit: Decimal, bar: BarQuote
) -> tuple[Decimal, FillReason] | None:
    """On its trigger bar a stop_limit fills only at an open that both triggers the stop and
    satisfies the limit; otherwise it rests as a limit from the next bar."""
    if side is OrderSide.BUY:
        return (bar.open, FillReason.STOP_LIMIT_GAP) if stop <= bar.open <= limit else None
    return (bar.open, FillReason.STOP_LIMIT_GAP) if limit <= bar.open <= stop else None


def slipped_price(price: Decimal, side: OrderSide, slippage_bps: Decimal) -> Decimal:
    """The price after slippage: a buy pays more, a sell receives less."""
    if not slippage_bps:
        return price
    # Basis points → a fraction, then the product: exact in MONEY_CONTEXT (domain.money),
    # given explicitly because a resting order is matched outside the broker's context.
    ctx = MONEY_CONTEXT
    fraction = slippage_bps.scaleb(-4, ctx)
    factor = ctx.add(ONE, fraction) if side is OrderSide.BUY else ctx.subtract(ONE, fraction)
    return ctx.multiply(price, factor)


def match_order(order: Order, bar: BarQuote, settings: EngineSettings) -> PriceMatch | None:
    """Where `order` fills on `bar` under §4.5, or None when it does not fill there.

    Uses the order's stop_limit trigger state but does not change it (see
    `triggers_stop_limit`).
    """
    request = order.request
    side = request.side
    found: tuple[Decimal, FillReason] | None
    slipped = False
    if request.type is OrderType.MARKET:
        found, slipped = (bar.open, FillReason.MARKET_OPEN), True
    elif request.type is OrderType.LIMIT:
        found = limit_match(side, _required(request.limit_price), bar)
    elif request.type is OrderType.STOP:
        found, slipped = stop_match(side, _required(request.stop_price), bar), True
    elif order.stop_triggered:
        found = limit_match(side, _required(request.limit_price), bar)
    else:
        stop, limit = _required(request.stop_price), _required(request.limit_price)
        found = stop_limit_trigger_match(side, stop, limit, bar)
    if found is None:
        return None
    base_price, reason = found
    if order.exit_role is not None:
        reason = _EXIT_REASONS[order.exit_role]
    price = slipped_price(base_price, side, settings.slippage_bps) if slipped else base_price
    return PriceMatch(price=price, base_price=base_price, reason=reason)


_EXIT_REASONS = {
    ExitRole.STOP_LOSS: FillReason.STOP_LOSS,
    ExitRole.TAKE_PROFIT: FillReason.TAKE_PROFIT,
}


def _required(price: Decimal | None) -> Decimal:
    if price is None:  # validate_order guarantees the type's prices; this is a broken invariant
        raise ValueError("order is missing a price its type needs")
    return price


def commission(quantity: Decimal, price: Decimal, settings: EngineSettings) -> Decimal:
    """Per fill: max(min, qty * per_share + pct * qty * price), rounded half-up to the cent
    (exactly, from the exact product; run in `MONEY_CONTEXT`, as the broker does)."""
    variable = quantity * settings.commission_per_share + settings.commission_pct * quantity * price
    return round_places(max(settings.commission_min, variable), 2, ROUND_HALF_UP)


def notional_quantity(
    notional: Decimal, price: Decimal, lot_size: Decimal, settings: EngineSettings
) -> Decimal:
    """The most whole lots whose cost plus commission fits in `notional` (0 when none does),
    never more than the largest quantity an order may have (`domain.money.QUANTITY`).

    Cost grows with the lot count, so a binary search over lots finds the answer exactly,
    whatever the minimum commission and cent rounding do to the linear estimate.
    """
    most_lots = int(QUANTITY.maximum // lot_size)
    lot_cost = lot_size * price
    low, high = 0, most_lots
    if lot_cost * most_lots > notional:
        high = int(notional // lot_cost)

    def fits(lots: int) -> bool:
        quantity = lots * lot_size
        return quantity * price + commission(quantity, price, settings) <= notional

    # Fast path: the linear estimate (commission without its minimum and rounding) is
    # almost always the answer; two checks prove it, else the search below decides.
    per_lot = (
        lot_cost + lot_size * settings.commission_per_share + settings.commission_pct * lot_cost
    )
    guess = min(high, int(notional // per_lot)) if per_lot > 0 else high
    if guess > 0 and fits(guess) and (guess == high or not fits(guess + 1)):
        return guess * lot_size
    while low < high:
        lots = (low + high + 1) // 2
        quantity = lots * lot_size
        if quantity * price + commission(quantity, price, settings) <= notional:
            low = lots
        else:
            high = lots - 1
    return low * lot_size


def volume_cap(
    volume: Decimal, lot_size: Decimal, max_volume_pct: Decimal | None
) -> Decimal | None:
    """The most one order may fill on a bar: floor(p * volume / lot) lots; None is no cap."""
    if max_volume_pct is None:
        return None
    return (max_volume_pct * volume // lot_size) * lot_size
