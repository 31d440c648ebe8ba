"""A broker's account as values: the live position (average-cost accounting), the views of
positions and account that §4.3 shows, and the state a broker is saved as. Re-exported from
`domain.broker`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain.money import BASIS_PLACES, divide_places
from domain.orders import OrderSnapshot

ZERO = Decimal(0)


@dataclass(slots=True)
class Position:
    """A net position with average-cost accounting. `cost_basis` is the signed cost of the
    open quantity (negative for a short), so unrealized P&L is quantity * mark - cost_basis.

    The basis is exact: what the fills paid, less what closes released. A partial close
    releases its share of the basis rounded to BASIS_PLACES; whatever that rounding leaves
    stays in the basis, so realized + unrealized always adds up to the cash that moved."""

    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    mark: Decimal

    @property
    def market_value(self) -> Decimal:
        return self.quantity * self.mark

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.market_value - self.cost_basis

    def apply_fill(self, signed_quantity: Decimal, price: Decimal) -> Decimal:
        """Trade `signed_quantity` (+ buys) at `price`; returns the P&L realized by it."""
        realized = ZERO
        if self.quantity and (self.quantity > 0) != (signed_quantity > 0):
            held = abs(self.quantity)
            closing = min(abs(signed_quantity), held)
            # Releasing all of the basis on a full close leaves no rounding residue behind.
            released = (
                self.cost_basis
                if closing == held
                else divide_places(self.cost_basis * closing, held, BASIS_PLACES)
            )
            direction = 1 if self.quantity > 0 else -1
            realized = direction * closing * price - released
            self.cost_basis -= released
            self.quantity -= direction * closing
            signed_quantity += direction * closing
        if signed_quantity:
            self.quantity += signed_quantity
            self.cost_basis += signed_quantity * price
        self.mark = price
        return realized


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    market_price: Decimal
    market_value: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account as §4.3's account_snapshot shows it. `realized_pnl` is before
    commission, so equity = initial cash + realized + unrealized - total_commission."""

    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    total_commission: Decimal
    total_slippage: Decimal
    positions: tuple[PositionView, ...]
    open_orders: tuple[OrderSnapshot, ...]


@dataclass(frozen=True, slots=True)
class PositionState:
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    mark: Decimal


@dataclass(frozen=True, slots=True)
class BrokerState:
    """Everything a broker needs to continue exactly where it stopped (msgspec-encodable)."""

    cash: Decimal
    realized_pnl: Decimal
    total_commission: Decimal
    total_slippage: Decimal
    positions: tuple[PositionState, ...]
    open_orders: tuple[OrderSnapshot, ...]
    used_order_ids: tuple[str, ...]
    executions: int
    last_sequence_id: int
    last_sim_time: datetime | None
