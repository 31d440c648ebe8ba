"""Closed round trips (PROTOCOL.md §4.3 `trades`): fills matched FIFO per symbol into trades."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from domain.money import divide_places, exact, ratio

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)

TradeSide = Literal["long", "short"]


@dataclass(slots=True)  # never changed once built; not frozen: one is built per order or
# fill, and a frozen dataclass costs three times as much to build (docs/guide/performance.md)
class ClosedTrade:
    """One closed round trip, in the shape `simulation_results.trades` carries.

    `commission` is this trade's share of its entry fill's commission plus its share of
    its exit fill's; `pnl` is net of it. `return_pct` is the gross price move in percent,
    signed for the trade's direction.
    """

    symbol: str
    side: TradeSide
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime
    exit_price: Decimal
    pnl: Decimal
    return_pct: float
    commission: Decimal


@dataclass(slots=True)  # never changed once built; not frozen: one is built per order or
# fill, and a frozen dataclass costs three times as much to build (docs/guide/performance.md)
class OpenLot:
    """What is left of one opening fill.

    `entry_commission` is the part of the fill's commission not yet charged to a trade.
    """

    side: TradeSide
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    entry_commission: Decimal


@dataclass(frozen=True, slots=True)
class ClosedTradeRecord:
    """A closed trade as the ledger snapshot stores it: exact fields only (no float)."""

    symbol: str
    side: TradeSide
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime
    exit_price: Decimal
    pnl: Decimal
    commission: Decimal


@dataclass(frozen=True, slots=True)
class LedgerState:
    """A snapshot of a `TradeLedger`, encodable with msgspec and restorable exactly."""

    open_lots: dict[str, list[OpenLot]] = field(default_factory=dict)
    trades: list[ClosedTradeRecord] = field(default_factory=list)


def _return_pct(side: TradeSide, entry_price: Decimal, exit_price: Decimal) -> float:
    """A round trip's gross return, in percent.

    (exit/entry - 1)*100 for a long, (entry/exit - 1)*100 for a short.
    """
    if side == "long":
        return ratio(_HUNDRED * (exit_price - entry_price), entry_price)
    return ratio(_HUNDRED * (entry_price - exit_price), exit_price)


return_pct = exact(_return_pct)


def _split_pro_rata(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split `amount` by `weights` into cent-rounded (half-up) shares summing exactly to it.

    Shares are rounded cumulatively (each piece is the rounded running total minus the
    previous one), so every share is within a cent of its exact pro-rata value, none is
    negative for a non-negative amount, and the last piece takes whatever residue is left.
    """
    if not weights:
        raise ValueError("nothing to split across")
    total = sum(weights, _ZERO)
    if total <= 0 or any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    shares: list[Decimal] = []
    running = _ZERO
    allocated = _ZERO
    for weight in weights[:-1]:
        running += weight
        rounded_total = divide_places(amount * running, total, 2, ROUND_HALF_UP)
        shares.append(rounded_total - allocated)
        allocated = rounded_total
    shares.append(amount - allocated)
    return shares


split_pro_rata = exact(_split_pro_rata)


def _trade_from_record(record: ClosedTradeRecord) -> ClosedTrade:
    return ClosedTrade(
        symbol=record.symbol,
        side=record.side,
        quantity=record.quantity,
        entry_time=record.entry_time,
        entry_price=record.entry_price,
        exit_time=record.exit_time,
        exit_price=record.exit_price,
        pnl=record.pnl,
        return_pct=return_pct(record.side, record.entry_price, record.exit_price),
        commission=record.commission,
    )


def _record_from_trade(trade: ClosedTrade) -> ClosedTradeRecord:
    return ClosedTradeRecord(
        symbol=trade.symbol,
        side=trade.side,
        quantity=trade.quantity,
        entry_time=trade.entry_time,
        entry_price=trade.entry_price,
        exit_time=trade.exit_time,
        exit_price=trade.exit_price,
        pnl=trade.pnl,
        commission=trade.commission,
    )


class TradeLedger:
    """Matches fills into closed round trips, first in first out, one queue of lots per symbol.

    A fill against the open position closes the oldest lots first, possibly several, and
    whatever it has left over opens a lot the other way (a flip). A fill's commission is
    split across the pieces it closes and opens, pro rata by quantity.
    """

    def __init__(self) -> None:
        self._lots: dict[str, list[OpenLot]] = {}
        self._trades: list[ClosedTrade] = []

    @property
    def trades(self) -> list[ClosedTrade]:
        """Every closed trade, in the order it closed."""
        return list(self._trades)

    def open_lots(self, symbol: str) -> list[OpenLot]:
        """The open lots of `symbol`, oldest first (all on one side)."""
        return list(self._lots.get(symbol, ()))

    @exact
    def position(self, symbol: str) -> Decimal:
        """The net open quantity of `symbol`: positive long, negative short."""
        lots = self._lots.get(symbol, [])
        net = sum((lot.quantity for lot in lots), _ZERO)
        return -net if lots and lots[0].side == "short" else net

    @exact
    def record_fill(
        self,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        time: datetime,
    ) -> list[ClosedTrade]:
        """Apply one fill; return the trades it closed (oldest lot first).

        `side` is "buy" or "sell" (an `OrderSide`, being a `StrEnum`, is accepted as is).
        """
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', not {side!r}")
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        if price <= 0:
            raise ValueError("price must be positive")
        if commission < 0:
            raise ValueError("commission must not be negative")
        if time.tzinfo is None:
            raise ValueError("time must be timezone-aware")

        opening_side: TradeSide = "long" if side == "buy" else "short"
        lots = self._lots.get(symbol, [])
        if not lots or lots[0].side == opening_side:  # adds to the position: one new lot
            # (a new list: lists are replaced, never changed in place; see `savepoint`)
            lot = OpenLot(opening_side, quantity, time, price, commission - _ZERO)
            self._lots[symbol] = [*lots, lot]
            return []
        if len(lots) == 1 and lots[0].quantity == quantity:  # closes its one lot, exactly
            lot = lots[0]
            share = lot.entry_commission + (commission - _ZERO)  # (as the general case adds)
            trade = self._close(symbol, lot, quantity, price, time, share)
            del self._lots[symbol]
            self._trades.append(trade)
            return [trade]

        # The lots this fill closes, oldest first, with how much of each; the rest opens.
        pieces: list[tuple[OpenLot, Decimal]] = []
        left = quantity
        if lots and lots[0].side != opening_side:
            for lot in lots:
                if left <= 0:
                    break
                taken = min(lot.quantity, left)
                pieces.append((lot, taken))
                left -= taken
        opening = left

        weights = [taken for _, taken in pieces] + ([opening] if opening > 0 else [])
        # One piece (a plain open, or a close of one whole lot) takes the whole commission:
        # what _split_pro_rata returns for a single positive weight, without the loop.
        fill_shares = (
            [commission - _ZERO]
            if len(weights) == 1 and weights[0] > 0
            else _split_pro_rata(commission, weights)
        )

        closed: list[ClosedTrade] = []
        leftover: list[OpenLot] = []
        for (lot, taken), exit_share in zip(pieces, fill_shares, strict=False):
            entry_share = lot.entry_commission
            if taken < lot.quantity:  # only the last piece can be partial
                entry_share = min(
                    lot.entry_commission,
                    divide_places(lot.entry_commission * taken, lot.quantity, 2, ROUND_HALF_UP),
                )
                leftover.append(
                    OpenLot(
                        side=lot.side,
                        quantity=lot.quantity - taken,
                        entry_time=lot.entry_time,
                        entry_price=lot.entry_price,
                        entry_commission=lot.entry_commission - entry_share,
                    )
                )
            closed.append(self._close(symbol, lot, taken, price, time, entry_share + exit_share))

        new_lots = leftover + lots[len(pieces) :]
        if opening > 0:
            new_lots.append(
                OpenLot(
                    side=opening_side,
                    quantity=opening,
                    entry_time=time,
                    entry_price=price,
                    entry_commission=fill_shares[-1],
                )
            )
        if new_lots:
            self._lots[symbol] = new_lots
        else:
            self._lots.pop(symbol, None)
        self._trades.extend(closed)
        return closed

    @staticmethod
    def _close(
        symbol: str,
        lot: OpenLot,
        quantity: Decimal,
        exit_price: Decimal,
        exit_time: datetime,
        commission: Decimal,
    ) -> ClosedTrade:
        if lot.side == "long":
            gross = (exit_price - lot.entry_price) * quantity
        else:
            gross = (lot.entry_price - exit_price) * quantity
        return ClosedTrade(  # (positional: one per close, keywords cost more)
            symbol,
            lot.side,
            quantity,
            lot.entry_time,
            lot.entry_price,
            exit_time,
            exit_price,
            gross - commission,  # pnl
            _return_pct(lot.side, lot.entry_price, exit_price),
            commission,
        )

    def state(self) -> LedgerState:
        """A snapshot that shares nothing mutable with the ledger."""
        return LedgerState(
            open_lots={symbol: list(lots) for symbol, lots in self._lots.items()},
            trades=[_record_from_trade(trade) for trade in self._trades],
        )

    def savepoint(self) -> tuple[dict[str, list[OpenLot]], int]:
        """The open lots and how many trades are closed: enough to `rewind` to (lots are
        immutable and each symbol's list is replaced, never changed in place; trades are
        only ever appended)."""
        return dict(self._lots), len(self._trades)

    def rewind(self, point: tuple[dict[str, list[OpenLot]], int]) -> None:
        lots, trades = point
        self._lots = dict(lots)
        del self._trades[trades:]

    def state_at(self, point: tuple[dict[str, list[OpenLot]], int]) -> LedgerState:
        """`state()` as it was at `point` (taken from this ledger, which has only gone on)."""
        lots, trades = point
        return LedgerState(
            open_lots={symbol: list(held) for symbol, held in lots.items()},
            trades=[_record_from_trade(trade) for trade in self._trades[:trades]],
        )

    @classmethod
    def restore(cls, state: LedgerState) -> TradeLedger:
        """A ledger that continues exactly where the one `state` was taken from stopped."""
        ledger = cls()
        ledger._lots = {symbol: list(lots) for symbol, lots in state.open_lots.items() if lots}
        ledger._trades = [_trade_from_record(record) for record in state.trades]
        return ledger
