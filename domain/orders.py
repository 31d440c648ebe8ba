"""Orders as the engine knows them: the client's request, its validation, and the live order
whose status and fills the broker advances (PROTOCOL.md §4.3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from domain.errors import InvalidOrder
from domain.money import (
    AVG_PRICE_PLACES,
    MONEY_CONTEXT,
    ORDER_BOUNDS,
    check_bound,
    check_step,
    divide_places,
)

MAX_ORDER_ID_LENGTH = 64
ZERO = Decimal(0)


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the direction a fill moves the position."""
        return 1 if self is OrderSide.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"

    @property
    def uses_limit_price(self) -> bool:
        return self in _LIMIT_PRICED

    @property
    def uses_stop_price(self) -> bool:
        return self in _STOP_PRICED


_LIMIT_PRICED = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_STOP_PRICED = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


class TimeInForce(StrEnum):
    GTC = "gtc"
    DAY = "day"
    IOC = "ioc"


class OrderStatus(StrEnum):
    """`accepted` and `partially_filled` are open; the others are final (§4.3)."""

    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})


class ExitRole(StrEnum):
    """Which leg of a bracket an exit order is; also its fill_reason."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"

    @property
    def id_suffix(self) -> str:
        return "-sl" if self is ExitRole.STOP_LOSS else "-tp"


def exit_order_id(entry_id: str, role: ExitRole) -> str:
    return entry_id + role.id_suffix


@dataclass(slots=True)  # never changed once built; not frozen: one is built per order or
# fill, and a frozen dataclass costs three times as much to build (docs/guide/performance.md)
class OrderRequest:
    """An order as the client sent it, parsed into exact values but not yet validated."""

    order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None

    @property
    def exit_roles(self) -> tuple[ExitRole, ...]:
        """The bracket legs this entry asks for, stop-loss first (it wins ties, §4.5)."""
        if self.stop_loss is None and self.take_profit is None:
            return ()  # (most orders: no bracket)
        roles = []
        if self.stop_loss is not None:
            roles.append(ExitRole.STOP_LOSS)
        if self.take_profit is not None:
            roles.append(ExitRole.TAKE_PROFIT)
        return tuple(roles)


def validate_order(
    request: OrderRequest,
    lot_sizes: Mapping[str, Decimal],
    tick_sizes: Mapping[str, Decimal] | None = None,
) -> None:
    """Refuse a request the engine cannot accept, naming the offending field.

    `lot_sizes` maps every symbol of the session to its lot size, `tick_sizes` to its tick
    size (a price must be a multiple of it; None checks no tick). Every number must be
    within its bound of `domain.money.ORDER_BOUNDS`, so every amount the engine forms
    from it stays exact. Rules that depend on the market at the fill (funds, shorting)
    are judged by the broker then, not here.
    """
    if not request.order_id or len(request.order_id) > MAX_ORDER_ID_LENGTH:
        raise InvalidOrder(
            "order_id", f"order_id must be 1 to {MAX_ORDER_ID_LENGTH} characters long"
        )
    lot_size = lot_sizes.get(request.symbol)
    if lot_size is None:
        raise InvalidOrder(
            "symbol", f"Symbol '{request.symbol}' is not in this session", symbol=request.symbol
        )
    tick_size = None if tick_sizes is None else tick_sizes.get(request.symbol)
    _validate_size(request, lot_size)
    _validate_prices(request, tick_size)
    _validate_bracket(request, tick_size)


def check_numbers(request: OrderRequest) -> None:
    """The bounds of every number the request carries (the protocol edge and the SDK check
    these before the order goes further; `validate_order` checks them again)."""
    for name, bound in ORDER_BOUNDS.items():
        value = getattr(request, name)
        if value is not None:
            check_bound(name, value, bound)


def _validate_size(request: OrderRequest, lot_size: Decimal) -> None:
    quantity, notional = request.quantity, request.notional
    if (quantity is None) == (notional is None):
        raise InvalidOrder("quantity", "Give exactly one of quantity and notional")
    if quantity is not None:
        check_bound("quantity", quantity, ORDER_BOUNDS["quantity"])
        check_step("quantity", quantity, lot_size, "lot_size")
    if notional is not None:
        check_bound("notional", notional, ORDER_BOUNDS["notional"])


def _validate_prices(request: OrderRequest, tick_size: Decimal | None) -> None:
    order_type = request.type
    for name, price, used in (
        ("limit_price", request.limit_price, order_type.uses_limit_price),
        ("stop_price", request.stop_price, order_type.uses_stop_price),
    ):
        if used and price is None:
            raise InvalidOrder(name, f"A {order_type} order needs {name}")
        if not used and price is not None:
            # Silently ignoring a price would fill the order differently from what was meant.
            raise InvalidOrder(name, f"A {order_type} order takes no {name}")
        if price is not None:
            _check_price(name, price, tick_size)


def _validate_bracket(request: OrderRequest, tick_size: Decimal | None) -> None:
    stop_loss, take_profit = request.stop_loss, request.take_profit
    if stop_loss is not None:
        _check_price("stop_loss", stop_loss, tick_size)
    if take_profit is not None:
        _check_price("take_profit", take_profit, tick_size)
    if stop_loss is None or take_profit is None:
        return
    # A long is protected below and takes profit above; a short the other way round.
    wrong_way = (
        stop_loss >= take_profit if request.side is OrderSide.BUY else stop_loss <= take_profit
    )
    if wrong_way:
        relation = "below" if request.side is OrderSide.BUY else "above"
        raise InvalidOrder(
            "stop_loss", f"For a {request.side} entry stop_loss must be {relation} take_profit"
        )


def _check_price(name: str, price: Decimal, tick_size: Decimal | None) -> None:
    check_bound(name, price, ORDER_BOUNDS[name])
    if tick_size is not None:
        check_step(name, price, tick_size, "tick_size")


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """Everything about a live order, frozen: for account views and for broker snapshots."""

    request: OrderRequest
    quantity: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    filled_value: Decimal
    live_from_sequence: int
    first_live_sequence: int | None
    stop_triggered: bool
    parent_id: str | None
    exit_role: ExitRole | None

    @property
    def order_id(self) -> str:
        return self.request.order_id

    @property
    def average_fill_price(self) -> Decimal | None:
        """For display, rounded to AVG_PRICE_PLACES; the exact figure is filled_value."""
        if not self.filled_quantity:
            return None
        return divide_places(self.filled_value, self.filled_quantity, AVG_PRICE_PLACES)


@dataclass(slots=True, eq=False)
class Order:
    """A live order. `quantity` is None for a notional order until it is sized at its first
    fill. `first_live_sequence` is bar B of §4.5; `stop_triggered` is a stop_limit's state.
    Identity is the order id."""

    request: OrderRequest
    live_from_sequence: int
    quantity: Decimal | None = None
    status: OrderStatus = OrderStatus.ACCEPTED
    filled_quantity: Decimal = ZERO
    filled_value: Decimal = ZERO
    first_live_sequence: int | None = None
    stop_triggered: bool = False
    parent_id: str | None = None
    exit_role: ExitRole | None = None

    @classmethod
    def accept(cls, request: OrderRequest, live_from_sequence: int) -> Order:
        return cls(request, live_from_sequence, quantity=request.quantity)

    @classmethod
    def bracket_exit(
        cls, entry: Order, role: ExitRole, quantity: Decimal, live_from_sequence: int
    ) -> Order:
        """One OCO leg protecting `entry`'s fills: a stop for the loss, a limit for the profit."""
        request = entry.request
        is_stop = role is ExitRole.STOP_LOSS
        exit_request = OrderRequest(
            order_id=exit_order_id(request.order_id, role),
            symbol=request.symbol,
            side=request.side.opposite,
            type=OrderType.STOP if is_stop else OrderType.LIMIT,
            quantity=quantity,
            stop_price=request.stop_loss if is_stop else None,
            limit_price=None if is_stop else request.take_profit,
        )
        return cls(
            exit_request,
            live_from_sequence,
            quantity=quantity,
            parent_id=request.order_id,
            exit_role=role,
        )

    @property
    def order_id(self) -> str:
        return self.request.order_id

    @property
    def symbol(self) -> str:
        return self.request.symbol

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_quantity(self) -> Decimal | None:
        if self.quantity is None:
            return None
        return MONEY_CONTEXT.subtract(self.quantity, self.filled_quantity)

    @property
    def average_fill_price(self) -> Decimal | None:
        """For display, rounded to AVG_PRICE_PLACES; the exact figure is filled_value."""
        if not self.filled_quantity:
            return None
        return divide_places(self.filled_value, self.filled_quantity, AVG_PRICE_PLACES)

    @property
    def sibling_id(self) -> str | None:
        """The other leg of this exit's bracket, or None for an ordinary order."""
        if self.parent_id is None or self.exit_role is None:
            return None
        other = ExitRole.TAKE_PROFIT if self.exit_role is ExitRole.STOP_LOSS else ExitRole.STOP_LOSS
        return exit_order_id(self.parent_id, other)

    def go_live(self, sequence_id: int) -> bool:
        """Whether the order is live on bar `sequence_id`; remembers its first live bar."""
        if sequence_id < self.live_from_sequence:
            return False
        if self.first_live_sequence is None:
            self.first_live_sequence = sequence_id
        return True

    def record_fill(self, quantity: Decimal, price: Decimal) -> None:
        self.filled_quantity += quantity
        self.filled_value += quantity * price
        complete = self.quantity is not None and self.filled_quantity >= self.quantity
        self.status = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED

    def close(self, status: OrderStatus) -> None:
        """End the order as cancelled, expired or rejected (its fills so far stand)."""
        if status.is_open or status is OrderStatus.FILLED:
            raise ValueError(f"{status} does not close an order")
        self.status = status

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(
            request=self.request,
            quantity=self.quantity,
            status=self.status,
            filled_quantity=self.filled_quantity,
            filled_value=self.filled_value,
            live_from_sequence=self.live_from_sequence,
            first_live_sequence=self.first_live_sequence,
            stop_triggered=self.stop_triggered,
            parent_id=self.parent_id,
            exit_role=self.exit_role,
        )

    @classmethod
    def from_snapshot(cls, snapshot: OrderSnapshot) -> Order:
        return cls(
            request=snapshot.request,
            live_from_sequence=snapshot.live_from_sequence,
            quantity=snapshot.quantity,
            status=snapshot.status,
            filled_quantity=snapshot.filled_quantity,
            filled_value=snapshot.filled_value,
            first_live_sequence=snapshot.first_live_sequence,
            stop_triggered=snapshot.stop_triggered,
            parent_id=snapshot.parent_id,
            exit_role=snapshot.exit_role,
        )
