"""The engine's domain objects to and from their wire shapes (PROTOCOL.md §4.3): one place,
shared by the server and the in-process runner so both speak exactly the same shapes."""

from __future__ import annotations

from typing import TypeVar

from application.simulation import SimulationResults
from domain.broker import ExecutionReport
from domain.errors import InvalidOrder
from domain.metrics import Metrics
from domain.orders import OrderRequest, OrderSide, OrderType, TimeInForce
from domain.trades import ClosedTrade
from entrypoints.protocol import messages as m


def order_request(data: m.OrderData) -> OrderRequest:
    """Wire order → domain request; an unknown enum value is INVALID_ORDER on its field."""
    return OrderRequest(
        order_id=data.order_id,
        symbol=data.symbol,
        side=_enum(OrderSide, data.side, "side"),
        type=_enum(OrderType, data.type, "type"),
        quantity=data.quantity,
        notional=data.notional,
        limit_price=data.limit_price,
        stop_price=data.stop_price,
        time_in_force=_enum(TimeInForce, data.time_in_force, "time_in_force"),
        stop_loss=data.stop_loss,
        take_profit=data.take_profit,
    )


E = TypeVar("E", OrderSide, OrderType, TimeInForce)


def _enum(kind: type[E], value: str, field: str) -> E:
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise InvalidOrder(
            field, f"{field} '{value}' is not one of {', '.join(kind)}", value=value
        ) from None


def report_data(session_id: str, r: ExecutionReport) -> m.ExecutionReportData:
    return m.ExecutionReportData(
        session_id=session_id,
        execution_id=r.execution_id,
        order_id=r.order_id,
        symbol=r.symbol,
        side=r.side.value,
        status=r.status.value,
        quantity=r.quantity,
        fill_quantity=r.fill_quantity,
        filled_quantity=r.filled_quantity,
        remaining_quantity=r.remaining_quantity,
        price=r.price,
        commission=r.commission,
        slippage=r.slippage,
        sim_time=r.sim_time,
        sequence_id=r.sequence_id,
        fill_reason=r.fill_reason.value if r.fill_reason is not None else None,
        reason=r.reason.value if r.reason is not None else None,
    )


def metrics_data(x: Metrics) -> m.MetricsData:
    return m.MetricsData(
        total_return_pct=x.total_return_pct,
        annual_return_pct=x.annual_return_pct,
        annual_volatility_pct=x.annual_volatility_pct,
        sharpe_ratio=x.sharpe_ratio,
        sortino_ratio=x.sortino_ratio,
        max_drawdown_pct=x.max_drawdown_pct,
        calmar_ratio=x.calmar_ratio,
        final_equity=x.final_equity,
        total_trades=x.total_trades,
        winning_trades=x.winning_trades,
        win_rate_pct=x.win_rate_pct,
        profit_factor=x.profit_factor,
        avg_trade_pct=x.avg_trade_pct,
        best_trade_pct=x.best_trade_pct,
        worst_trade_pct=x.worst_trade_pct,
        exposure_pct=x.exposure_pct,
        total_commission=x.total_commission,
        total_slippage=x.total_slippage,
    )


def trade_data(t: ClosedTrade) -> m.TradeData:
    return m.TradeData(
        symbol=t.symbol,
        side=t.side,
        quantity=t.quantity,
        entry_time=t.entry_time,
        entry_price=t.entry_price,
        exit_time=t.exit_time,
        exit_price=t.exit_price,
        pnl=t.pnl,
        return_pct=t.return_pct,
        commission=t.commission,
    )


def results_data(session_id: str, results: SimulationResults) -> m.SimulationResultsData:
    return m.SimulationResultsData(
        session_id=session_id,
        metrics=metrics_data(results.metrics),
        equity_curve=[(day, equity) for day, equity in results.equity_curve],
        trades=[trade_data(t) for t in results.trades],
        executions=results.executions,
    )
