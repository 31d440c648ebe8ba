"""The simulation shapes both directions share (PROTOCOL.md §4.3): an order, an execution
report, a simulation's metrics, its closed trades and its results."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from msgspec import Struct


class OrderData(Struct, kw_only=True, forbid_unknown_fields=True):
    """An order as the client sends it; numbers may be JSON numbers or decimal strings."""

    order_id: str
    symbol: str
    side: str
    type: str = "market"
    quantity: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "gtc"
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


class ExecutionReportData(Struct, kw_only=True):
    """One execution report (protocol §7.3 `execution_report`): a fill of an order, or the end of
    one that did not fill (`status`: `filled`, `partially_filled`, `cancelled`, `expired` or
    `rejected`), with price, quantity, commission and the simulated time."""

    session_id: str
    execution_id: str
    order_id: str
    symbol: str
    side: str
    status: str
    quantity: Decimal | None
    fill_quantity: Decimal
    filled_quantity: Decimal
    remaining_quantity: Decimal | None
    price: Decimal | None
    commission: Decimal
    slippage: Decimal
    sim_time: datetime | None
    sequence_id: int
    fill_reason: str | None = None
    reason: str | None = None


class MetricsData(Struct, kw_only=True):
    """A simulation's performance figures (protocol §7.12: how each is computed). Ratios are
    floats; `None` where a figure is undefined or not finite (e.g. a Calmar ratio without a
    drawdown)."""

    total_return_pct: float | None
    annual_return_pct: float | None
    annual_volatility_pct: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    max_drawdown_pct: float | None
    calmar_ratio: float | None
    final_equity: Decimal
    total_trades: int
    winning_trades: int
    win_rate_pct: float | None
    profit_factor: float | None
    avg_trade_pct: float | None
    best_trade_pct: float | None
    worst_trade_pct: float | None
    exposure_pct: float | None
    total_commission: Decimal
    total_slippage: Decimal
    # backtesting.py's statistics (§7.12); absent from an older server's results: null.
    equity_peak: Decimal | None = None
    buy_and_hold_return_pct: float | None = None
    cagr_pct: float | None = None
    avg_drawdown_pct: float | None = None
    max_drawdown_duration_days: float | None = None
    avg_drawdown_duration_days: float | None = None
    max_trade_duration_days: float | None = None
    avg_trade_duration_days: float | None = None
    expectancy_pct: float | None = None
    sqn: float | None = None
    kelly_criterion: float | None = None
    alpha_pct: float | None = None
    beta: float | None = None


class TradeData(Struct, kw_only=True):
    """One closed round trip, matched FIFO (protocol §7.13): entry and exit time and price,
    quantity, P&L and commission."""

    symbol: str
    side: str
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime
    exit_price: Decimal
    pnl: Decimal
    return_pct: float
    commission: Decimal


class SimulationResultsData(Struct, kw_only=True):
    """A completed simulation's results (protocol §7.3 `simulation_results`): metrics, the
    daily equity curve as (day, equity) pairs, closed trades, and the number of executions."""

    session_id: str
    metrics: MetricsData
    equity_curve: list[tuple[date, Decimal]]
    trades: list[TradeData]
    executions: int
