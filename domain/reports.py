"""What a broker reports: one execution report per event in an order's life (a fill or its
end), and why an order ended unfilled. Re-exported from `domain.broker`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from domain.fills import FillReason
from domain.orders import OrderSide, OrderStatus


class ReportReason(StrEnum):
    """Why an order ended without (completely) filling."""

    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    SHORT_NOT_ALLOWED = "SHORT_NOT_ALLOWED"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    END_OF_DATA = "END_OF_DATA"
    TIME_IN_FORCE = "TIME_IN_FORCE"
    CANCELLED = "CANCELLED"
    OCO = "OCO"
    """The other leg of its bracket filled."""
    INTERNAL_ERROR = "INTERNAL_ERROR"
    """The engine failed on this order (a fault of ours, logged); the simulation goes on."""


@dataclass(slots=True)  # never changed once built; not frozen: one is built per order or
# fill, and a frozen dataclass costs three times as much to build (docs/guide/performance.md)
class ExecutionReport:
    """One event in an order's life: a fill (`fill_reason` set, `price` set) or its end
    (`reason` set). `slippage` is money: |price - unslipped price| * fill_quantity."""

    execution_id: str
    order_id: str
    symbol: str
    side: OrderSide
    status: OrderStatus
    quantity: Decimal | None
    fill_quantity: Decimal
    filled_quantity: Decimal
    remaining_quantity: Decimal | None
    price: Decimal | None
    commission: Decimal
    slippage: Decimal
    sim_time: datetime | None
    sequence_id: int
    fill_reason: FillReason | None = None
    reason: ReportReason | None = None
    parent_id: str | None = None

    @property
    def is_fill(self) -> bool:
        return self.fill_quantity > 0
