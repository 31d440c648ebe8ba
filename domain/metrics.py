"""Performance metrics of a finished simulation (PROTOCOL.md §4.6), as empyrical defines them.

Equity arrives as exact decimals; every return is computed in decimal and rounded to a float
once, sums use `math.fsum`, and anything undefined (or not finite) is `None`, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from itertools import pairwise

from domain.money import exact, ratio
from domain.trades import ClosedTrade

TRADING_DAYS_PER_YEAR = 252
_PRECISION = 40  # decimal digits for return arithmetic: far beyond a float's 17
_RATIO_CONTEXT = Context(prec=_PRECISION)
"""A context of its own (not a copy of the caller's): returns are ratios, rounded anyway."""
_SQRT_YEAR = math.sqrt(TRADING_DAYS_PER_YEAR)


@dataclass(frozen=True, slots=True)
class Metrics:
    """The `metrics` object of `simulation_complete` / `simulation_results`."""

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


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def daily_returns(daily_equity: Sequence[Decimal]) -> list[float]:
    """Simple returns between consecutive equity values, each exact in decimal then rounded once."""
    with localcontext(_RATIO_CONTEXT):
        returns: list[float] = []
        for previous, current in pairwise(daily_equity):
            if previous == 0:
                raise ValueError("a return after zero equity is undefined")
            returns.append(float((current - previous) / previous))
        return returns


def total_return(daily_equity: Sequence[Decimal]) -> float | None:
    """E_T / E_0 - 1 as a fraction; `None` for fewer than two points."""
    if len(daily_equity) < 2:
        return None
    with localcontext(_RATIO_CONTEXT):
        return _finite(float((daily_equity[-1] - daily_equity[0]) / daily_equity[0]))


def annual_return(daily_equity: Sequence[Decimal]) -> float | None:
    """(E_T / E_0)^(252 / days) - 1 as a fraction; `None` if undefined or too large for a float."""
    growth = total_return(daily_equity)
    if growth is None or growth < -1.0:  # equity went negative: no real root
        return None
    if growth == -1.0:
        return -1.0
    days = len(daily_equity) - 1
    # expm1/log1p keep full relative accuracy when the growth is close to zero.
    try:
        return _finite(math.expm1(math.log1p(growth) * TRADING_DAYS_PER_YEAR / days))
    except OverflowError:
        return None


def max_drawdown(daily_equity: Sequence[Decimal]) -> float | None:
    """min(E / cummax(E) - 1) as a (non-positive) fraction; `None` for fewer than two points."""
    if len(daily_equity) < 2:
        return None
    with localcontext(_RATIO_CONTEXT):
        peak = daily_equity[0]
        deepest = Decimal(0)
        for equity in daily_equity:
            if equity > peak:
                peak = equity
            elif equity < peak:
                deepest = min(deepest, (equity - peak) / peak)
        return _finite(float(deepest))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _sample_std(values: Sequence[float]) -> float:
    """std with ddof 1; exactly 0 when all values are equal (no rounding residue)."""
    if max(values) == min(values):
        return 0.0
    mean = _mean(values)
    return math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (len(values) - 1))


def _return_ratios(
    returns: Sequence[float],
) -> tuple[float | None, float | None, float | None]:
    """(annual volatility, Sharpe, Sortino) from daily returns; each `None` where undefined."""
    if len(returns) < 2:
        return None, None, None
    mean = _mean(returns)
    std = _sample_std(returns)
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    volatility = std * _SQRT_YEAR
    sharpe = mean / std * _SQRT_YEAR if std > 0 else None
    sortino = mean / downside * _SQRT_YEAR if downside > 0 else None
    return _finite(volatility), _finite(sharpe), _finite(sortino)


def _percent(fraction: float | None) -> float | None:
    return _finite(fraction * 100.0) if fraction is not None else None


@exact
def compute_metrics(
    daily_equity: Sequence[Decimal],
    trades: Sequence[ClosedTrade],
    *,
    bars_total: int,
    bars_with_position: int,
    total_commission: Decimal,
    total_slippage: Decimal,
) -> Metrics:
    """All of §4.6 from the daily equity (the first value is the initial capital) and the trades."""
    if not daily_equity:
        raise ValueError("the daily equity series is empty")
    if daily_equity[0] <= 0:
        raise ValueError("the first equity value (the initial capital) must be positive")
    if bars_total < 0 or not 0 <= bars_with_position <= bars_total:
        raise ValueError("need 0 <= bars_with_position <= bars_total")

    annual = annual_return(daily_equity)
    drawdown = max_drawdown(daily_equity)
    calmar = None
    if annual is not None and drawdown is not None and drawdown < 0:
        calmar = _finite(annual / abs(drawdown))

    if any(equity == 0 for equity in daily_equity[:-1]):
        volatility = sharpe = sortino = None
    else:
        volatility, sharpe, sortino = _return_ratios(daily_returns(daily_equity))

    total_trades = len(trades)
    winning_trades = sum(1 for trade in trades if trade.pnl > 0)
    gross_profit = sum((trade.pnl for trade in trades if trade.pnl > 0), Decimal(0))
    gross_loss = -sum((trade.pnl for trade in trades if trade.pnl < 0), Decimal(0))
    trade_returns = [trade.return_pct for trade in trades]

    return Metrics(
        total_return_pct=_percent(total_return(daily_equity)),
        annual_return_pct=_percent(annual),
        annual_volatility_pct=_percent(volatility),
        sharpe_ratio=sharpe,
        sortino_ratio=sortino,
        max_drawdown_pct=_percent(drawdown),
        calmar_ratio=calmar,
        final_equity=daily_equity[-1],
        total_trades=total_trades,
        winning_trades=winning_trades,
        win_rate_pct=winning_trades / total_trades * 100.0 if total_trades else None,
        profit_factor=_finite(ratio(gross_profit, gross_loss)) if gross_loss > 0 else None,
        avg_trade_pct=_finite(_mean(trade_returns)) if trade_returns else None,
        best_trade_pct=max(trade_returns) if trade_returns else None,
        worst_trade_pct=min(trade_returns) if trade_returns else None,
        exposure_pct=bars_with_position / bars_total * 100.0 if bars_total else None,
        total_commission=total_commission,
        total_slippage=total_slippage,
    )
