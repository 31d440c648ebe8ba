"""The simulated broker of one simulation: its order book, cash and positions, advanced bar by
bar under the fill rules of PROTOCOL.md §4.5 (the rules themselves live in domain.fills). What
it reports and its account's values live in domain.reports and domain.account, re-exported
here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from domain.account import (
    AccountView,
    BrokerState,
    Position,
    PositionState,
    PositionView,
)
from domain.errors import DomainError, DuplicateOrderId, OrderFailed, OrderNotFound
from domain.fills import (
    BarQuote,
    PriceMatch,
    commission,
    match_order,
    notional_quantity,
    triggers_stop_limit,
    volume_cap,
)
from domain.money import (
    AVG_PRICE_PLACES,
    MONEY_CONTEXT,
    check_step_size,
    divide_places,
    exact,
)
from domain.orders import (
    Order,
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    TimeInForce,
    exit_order_id,
    validate_order,
)
from domain.reports import ExecutionReport, ReportReason
from domain.session import EngineSettings

__all__ = [
    "AccountView",
    "BarQuote",
    "Broker",
    "BrokerState",
    "ExecutionReport",
    "PositionState",
    "PositionView",
    "ReportReason",
]

log = logging.getLogger("simutrador.engine")

ZERO = Decimal(0)
SHORT_MARGIN_FRACTION = Decimal("0.5")
"""Equity must stay at least this share of the gross short value after a short sale (§4.5)."""


class Broker:
    """Order book and portfolio of one simulation.

    Open orders are kept in acceptance order, which is the order they fill in on a bar
    (§4.5), across symbols too, because one fill's cash decides whether the next is funded.
    Bracket exits are ordinary open orders linked to their entry; cancelling one leg by hand
    cancels only that leg.
    """

    def __init__(
        self,
        initial_cash: Decimal,
        lot_sizes: Mapping[str, Decimal],
        settings: EngineSettings,
        tick_sizes: Mapping[str, Decimal] | None = None,
        *,
        session_id: str = "",
    ) -> None:
        """`tick_sizes` (per symbol) makes prices that are not a multiple of the tick
        invalid; `session_id` names the simulation in the log of an engine fault."""
        for name, sizes in (("lot_size", lot_sizes), ("tick_size", tick_sizes or {})):
            for size in sizes.values():
                check_step_size(name, size)
        self._settings = settings
        self._lot_sizes = dict(lot_sizes)
        self._tick_sizes = None if tick_sizes is None else dict(tick_sizes)
        self.session_id = session_id
        self._cash = initial_cash
        self._realized_pnl = ZERO
        self._total_commission = ZERO
        self._total_slippage = ZERO
        self._positions: dict[str, Position] = {}
        self._open_orders: dict[str, Order] = {}
        self._used_order_ids: set[str] = set()
        self._executions = 0
        self._last_sequence_id = 0
        self._last_sim_time: datetime | None = None

    # -- orders -------------------------------------------------------------------------

    def submit(self, request: OrderRequest, live_from_sequence: int) -> Order:
        """Accept an order, live from the first bar whose sequence is >= live_from_sequence.

        Raises InvalidOrder, or DuplicateOrderId for an id this broker has seen, including
        the `-sl`/`-tp` ids a bracket reserves for its exits; OrderFailed (logged) if the
        engine itself fails on the order, which then changes nothing. (No arithmetic: the
        checks compare and count digits, so no money context is needed.)
        """
        try:
            validate_order(request, self._lot_sizes, self._tick_sizes)
        except DomainError:
            raise
        except Exception as exc:
            self._fault(request.order_id, exc)
            raise OrderFailed(request.order_id) from None
        order_ids = [request.order_id]
        if request.stop_loss is not None or request.take_profit is not None:
            order_ids += [exit_order_id(request.order_id, role) for role in request.exit_roles]
        for order_id in order_ids:
            if order_id in self._used_order_ids:
                raise DuplicateOrderId(order_id)
        self._used_order_ids.update(order_ids)
        order = Order.accept(request, live_from_sequence)
        self._open_orders[order.order_id] = order
        return order

    @exact
    def cancel(self, order_id: str) -> ExecutionReport:
        """Cancel an open order as of the last bar processed. A cancelled entry never
        creates its bracket; cancelling one exit leaves its sibling open."""
        order = self._open_orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        try:
            return self._end(order, OrderStatus.CANCELLED, ReportReason.CANCELLED)
        except Exception as exc:  # a fault of ours costs this cancel, not the simulation
            self._fault(order_id, exc)
            self._open_orders.pop(order_id, None)
            raise OrderFailed(order_id) from None

    def process_bar(
        self, sequence_id: int, sim_time: datetime, quotes: Mapping[str, BarQuote]
    ) -> list[ExecutionReport]:
        """Fill every live order of each quoted symbol against its bar, apply time in force,
        then mark positions to the quoted closes. Unquoted symbols keep their last mark."""
        if sequence_id <= self._last_sequence_id:
            raise ValueError(f"bar {sequence_id} does not follow bar {self._last_sequence_id}")
        self._last_sequence_id, self._last_sim_time = sequence_id, sim_time
        reports: list[ExecutionReport] = []
        if self._open_orders:
            self._work_orders(sequence_id, quotes, reports)
        for symbol, position in self._positions.items():
            quote = quotes.get(symbol)
            if quote is not None:
                position.mark = quote.close
        return reports

    def _work_orders(
        self, sequence_id: int, quotes: Mapping[str, BarQuote], reports: list[ExecutionReport]
    ) -> None:
        for order in list(self._open_orders.values()):
            quote = quotes.get(order.symbol)
            # An order may have been closed earlier in this loop (the other leg of an OCO).
            if quote is None or not order.is_open or not order.go_live(sequence_id):
                continue
            try:
                self._work(order, quote, reports)
            except Exception as exc:  # a fault of ours costs this order, not the simulation
                self._fault(order.order_id, exc)
                if order.order_id in self._open_orders:
                    self._reject_after_fault(order, reports)

    def _reject_after_fault(self, order: Order, reports: list[ExecutionReport]) -> None:
        try:
            reports.append(self._end(order, OrderStatus.REJECTED, ReportReason.INTERNAL_ERROR))
        except Exception:  # not even that: the order leaves the book without a report
            self._open_orders.pop(order.order_id, None)

    def _fault(self, order_id: str, exc: Exception) -> None:
        log.error(
            "engine fault on order %s of session %s; the order is refused",
            order_id,
            self.session_id or "?",
            exc_info=exc,
        )

    def at(self, sequence_id: int, sim_time: datetime) -> None:
        """Note a bar with nothing to fill (reports of later cancels carry its time)."""
        self._last_sequence_id, self._last_sim_time = sequence_id, sim_time

    @exact
    def finish(self, sequence_id: int, sim_time: datetime) -> list[ExecutionReport]:
        """End of data: cancel every open order (END_OF_DATA). Positions stay as they are."""
        self._last_sequence_id, self._last_sim_time = sequence_id, sim_time
        return [
            self._end(order, OrderStatus.CANCELLED, ReportReason.END_OF_DATA)
            for order in list(self._open_orders.values())
        ]

    # -- account ------------------------------------------------------------------------

    @property
    def cash(self) -> Decimal:
        return self._cash

    @property
    def buying_power(self) -> Decimal:
        return self._cash

    @property
    def equity(self) -> Decimal:
        if not self._positions:
            return self._cash
        # Explicitly in MONEY_CONTEXT (cheaper than entering it: this runs every tick).
        add, multiply = MONEY_CONTEXT.add, MONEY_CONTEXT.multiply
        equity = self._cash
        for p in self._positions.values():
            equity = add(equity, multiply(p.quantity, p.mark))
        return equity

    @property
    def realized_pnl(self) -> Decimal:
        return self._realized_pnl

    @property
    @exact
    def unrealized_pnl(self) -> Decimal:
        return sum((p.unrealized_pnl for p in self._positions.values()), ZERO)

    @property
    def total_commission(self) -> Decimal:
        return self._total_commission

    @property
    def total_slippage(self) -> Decimal:
        return self._total_slippage

    @property
    def is_idle(self) -> bool:
        """No open order and no position: a bar can change nothing."""
        return not self._open_orders and not self._positions

    @property
    def active_symbols(self) -> frozenset[str]:
        """Symbols with an open order or a position: the only ones process_bar needs."""
        return frozenset(o.symbol for o in self._open_orders.values()).union(self._positions)

    @property
    def has_positions(self) -> bool:
        return bool(self._positions)

    @property
    def has_open_orders(self) -> bool:
        """Whether a bar can fill or end anything (without open orders it cannot)."""
        return bool(self._open_orders)

    @property
    def order_symbols(self) -> frozenset[str]:
        """Symbols with an open order: the only ones `process_bar` needs quotes of."""
        return frozenset(o.symbol for o in self._open_orders.values())

    @property
    def held_symbols(self) -> tuple[str, ...]:
        return tuple(self._positions)

    def mark(self, closes: Mapping[str, Decimal]) -> None:
        """Mark positions to the given closes (the last bar of each symbol seen); a caller
        that skips `process_bar` on bars without open orders marks before reading equity."""
        for symbol, close in closes.items():
            position = self._positions.get(symbol)
            if position is not None:
                position.mark = close

    def position_quantity(self, symbol: str) -> Decimal:
        position = self._positions.get(symbol)
        return ZERO if position is None else position.quantity

    def open_order(self, order_id: str) -> OrderSnapshot | None:
        order = self._open_orders.get(order_id)
        return None if order is None else order.snapshot()

    @exact
    def account(self) -> AccountView:
        positions = tuple(
            PositionView(
                symbol=p.symbol,
                quantity=p.quantity,
                avg_price=divide_places(p.cost_basis, p.quantity, AVG_PRICE_PLACES),
                market_price=p.mark,
                market_value=p.market_value,
                unrealized_pnl=p.unrealized_pnl,
            )
            for p in self._positions.values()
        )
        return AccountView(
            cash=self._cash,
            equity=self.equity,
            buying_power=self.buying_power,
            realized_pnl=self._realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            total_commission=self._total_commission,
            total_slippage=self._total_slippage,
            positions=positions,
            open_orders=tuple(o.snapshot() for o in self._open_orders.values()),
        )

    # -- snapshot -----------------------------------------------------------------------

    def state(self) -> BrokerState:
        """Everything to restore the broker from: its savepoint and the order ids used."""
        return replace(self.savepoint(), used_order_ids=tuple(sorted(self._used_order_ids)))

    @classmethod
    def restore(
        cls,
        state: BrokerState,
        lot_sizes: Mapping[str, Decimal],
        settings: EngineSettings,
        tick_sizes: Mapping[str, Decimal] | None = None,
        *,
        session_id: str = "",
    ) -> Broker:
        broker = cls(state.cash, lot_sizes, settings, tick_sizes, session_id=session_id)
        broker._realized_pnl = state.realized_pnl
        broker._total_commission = state.total_commission
        broker._total_slippage = state.total_slippage
        broker._positions = {
            p.symbol: Position(p.symbol, p.quantity, p.cost_basis, p.mark) for p in state.positions
        }
        broker._open_orders = {o.order_id: Order.from_snapshot(o) for o in state.open_orders}
        broker._used_order_ids = set(state.used_order_ids)
        broker._executions = state.executions
        broker._last_sequence_id = state.last_sequence_id
        broker._last_sim_time = state.last_sim_time
        return broker

    def savepoint(self) -> BrokerState:
        """`state()` without the order ids used so far: a bar adds none (only `submit`
        does), so rewinding to a savepoint taken between bars needs them not (see
        `rewind`). Costs the open orders and positions, not the orders ever placed."""
        return BrokerState(
            cash=self._cash,
            realized_pnl=self._realized_pnl,
            total_commission=self._total_commission,
            total_slippage=self._total_slippage,
            positions=tuple(
                PositionState(p.symbol, p.quantity, p.cost_basis, p.mark)
                for p in self._positions.values()
            ),
            open_orders=tuple(o.snapshot() for o in self._open_orders.values()),
            used_order_ids=(),
            executions=self._executions,
            last_sequence_id=self._last_sequence_id,
            last_sim_time=self._last_sim_time,
        )

    def rewind(self, point: BrokerState) -> None:
        """Back, in place, to exactly where `savepoint` was taken, provided no order was
        submitted since (bars were processed, orders filled, expired or cancelled by the
        engine). The order ids used stay as they are: no bar changed them."""
        self._cash = point.cash
        self._realized_pnl = point.realized_pnl
        self._total_commission = point.total_commission
        self._total_slippage = point.total_slippage
        self._positions = {
            p.symbol: Position(p.symbol, p.quantity, p.cost_basis, p.mark) for p in point.positions
        }
        self._open_orders = {o.order_id: Order.from_snapshot(o) for o in point.open_orders}
        self._executions = point.executions
        self._last_sequence_id = point.last_sequence_id
        self._last_sim_time = point.last_sim_time

    def used_order_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._used_order_ids))

    # -- filling ------------------------------------------------------------------------

    def _work(self, order: Order, quote: BarQuote, reports: list[ExecutionReport]) -> None:
        triggered_now = triggers_stop_limit(order, quote)
        match = match_order(order, quote, self._settings)
        if match is not None:
            self._try_fill(order, match, quote, reports)
        if triggered_now:
            # Whatever the open did, from the next bar on it rests as a plain limit.
            order.stop_triggered = True
        if order.is_open and self._time_in_force_ends(order, quote):
            reports.append(self._end(order, OrderStatus.EXPIRED, ReportReason.TIME_IN_FORCE))

    @staticmethod
    def _time_in_force_ends(order: Order, quote: BarQuote) -> bool:
        time_in_force = order.request.time_in_force
        # An ioc is only ever worked on its bar B, so reaching here ends it.
        return time_in_force is TimeInForce.IOC or (
            time_in_force is TimeInForce.DAY and quote.last_of_day
        )

    @exact  # entered only when an order matches: a resting order costs no context switch
    def _try_fill(
        self, order: Order, match: PriceMatch, quote: BarQuote, reports: list[ExecutionReport]
    ) -> None:
        request = order.request
        lot_size = self._lot_sizes[request.symbol]
        settings = self._settings
        cap = (
            None
            if settings.max_volume_pct is None
            else volume_cap(quote.volume, lot_size, settings.max_volume_pct)
        )
        if cap == 0:
            return  # too thin a bar for one lot: nothing fills, the order stays as it is
        if order.quantity is None:  # a notional order, sized at its first fill
            quantity = self._unfilled_quantity(order, match, lot_size)
        else:
            quantity = order.quantity - order.filled_quantity
        if cap is not None:
            quantity = min(quantity, cap)
        fee = commission(quantity, match.price, settings)
        refusal = (
            ReportReason.INSUFFICIENT_FUNDS
            if not quantity
            else self._refusal(order, quantity, match.price, fee)
        )
        if refusal is not None:
            reports.append(self._end(order, OrderStatus.REJECTED, refusal))
            return
        slippage = self._book_fill(order, quantity, match, fee)
        reports.append(
            self._report(order, fill_quantity=quantity, match=match, fee=fee, slippage=slippage)
        )
        if order.parent_id is not None:  # an exit: its bracket's other leg is cancelled
            sibling_id = order.sibling_id
            if sibling_id is not None and sibling_id in self._open_orders:
                sibling = self._open_orders[sibling_id]
                reports.append(self._end(sibling, OrderStatus.CANCELLED, ReportReason.OCO))
        if order.status is OrderStatus.FILLED:
            del self._open_orders[request.order_id]
            if request.stop_loss is not None or request.take_profit is not None:
                self._create_exits(order)

    def _unfilled_quantity(self, order: Order, match: PriceMatch, lot_size: Decimal) -> Decimal:
        """What is left to fill; a notional order is sized here, at its first fill's price
        (0 when not one lot fits, which §4.3 rejects as INSUFFICIENT_FUNDS)."""
        if order.quantity is None:
            notional = order.request.notional
            if notional is None:  # validate_order guarantees one of quantity and notional
                raise ValueError(f"order {order.order_id} has neither quantity nor notional")
            sized = notional_quantity(notional, match.price, lot_size, self._settings)
            if not sized:
                return ZERO
            order.quantity = sized
        return order.quantity - order.filled_quantity

    def _refusal(
        self, order: Order, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> ReportReason | None:
        if order.request.side is OrderSide.BUY:
            funded = quantity * price + fee <= self._cash
            return None if funded else ReportReason.INSUFFICIENT_FUNDS
        held = self.position_quantity(order.symbol)
        if quantity <= held:
            return None
        if not self._settings.allow_short:
            return ReportReason.SHORT_NOT_ALLOWED
        if self._margin_holds_after_sale(order.symbol, held, quantity, price, fee):
            return None
        return ReportReason.INSUFFICIENT_MARGIN

    def _margin_holds_after_sale(
        self, symbol: str, held: Decimal, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> bool:
        """Equity >= 50 % of the gross short value once `quantity` is sold at `price` (the
        symbol sold is valued at that price, every other position at its mark)."""
        equity = self._cash - fee + held * price
        gross_short = (quantity - held) * price
        for other in self._positions.values():
            if other.symbol == symbol:
                continue
            equity += other.market_value
            if other.quantity < 0:
                gross_short -= other.market_value
        return equity >= SHORT_MARGIN_FRACTION * gross_short

    def _book_fill(
        self, order: Order, quantity: Decimal, match: PriceMatch, fee: Decimal
    ) -> Decimal:
        """Book one fill; returns its slippage (money), which its report carries too.

        Every new amount is computed before any is stored, so a failure here (see
        _work_orders) leaves the account as it was."""
        signed_quantity = quantity * order.request.side.sign
        cash = self._cash - (signed_quantity * match.price + fee)
        total_commission = self._total_commission + fee
        slippage = match.slippage_cost(quantity)
        total_slippage = self._total_slippage + slippage
        symbol = order.symbol
        held = self._positions.get(symbol)
        position = (
            Position(symbol, ZERO, ZERO, match.price)
            if held is None
            else Position(symbol, held.quantity, held.cost_basis, held.mark)
        )
        realized_pnl = self._realized_pnl + position.apply_fill(signed_quantity, match.price)
        self._cash, self._realized_pnl = cash, realized_pnl
        self._total_commission, self._total_slippage = total_commission, total_slippage
        if position.quantity:
            self._positions[symbol] = position
        else:
            self._positions.pop(symbol, None)
        order.record_fill(quantity, match.price)
        return slippage

    def _create_exits(self, entry: Order) -> None:
        """Open the bracket legs for what `entry` filled, live from the next bar."""
        for role in entry.request.exit_roles:
            exit_order = Order.bracket_exit(
                entry, role, entry.filled_quantity, self._last_sequence_id + 1
            )
            self._open_orders[exit_order.order_id] = exit_order

    def _end(self, order: Order, status: OrderStatus, reason: ReportReason) -> ExecutionReport:
        """Close an open order. An entry the market ended after some fills (expired or
        rejected) still gets its bracket for what it filled; one cancelled does not."""
        order.close(status)
        del self._open_orders[order.order_id]
        if status is not OrderStatus.CANCELLED and order.filled_quantity:
            self._create_exits(order)
        return self._report(order, reason=reason)

    def _report(
        self,
        order: Order,
        *,
        fill_quantity: Decimal = ZERO,
        match: PriceMatch | None = None,
        fee: Decimal = ZERO,
        slippage: Decimal = ZERO,
        reason: ReportReason | None = None,
    ) -> ExecutionReport:
        self._executions += 1
        request = order.request
        return ExecutionReport(  # (positional: one per fill, keywords cost more)
            f"exec_{self._executions:06d}",  # execution_id
            request.order_id,
            request.symbol,
            request.side,
            order.status,
            order.quantity,
            fill_quantity,
            order.filled_quantity,
            order.remaining_quantity,
            None if match is None else match.price,
            fee,  # commission
            slippage,
            self._last_sim_time,
            self._last_sequence_id,
            None if match is None else match.reason,  # fill_reason
            reason,
            order.parent_id,
        )
