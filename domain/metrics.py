"""Performance metrics of a finished simulation (PROTOCOL.md §4.6): the return ratios as
empyrical defines them, and the drawdown, trade and market statistics as backtesting.py 0.6.6
does (docs/protocol.md §7.12 gives every definition).

Equity arrives as exact decimals. They are brought once to integers on one common scale, so
that every return is an exact ratio of two integers rounded to a float once (Python's int
division rounds correctly); sums use `math.fsum`, and anything undefined (or not finite) is
`None`, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Context, Decimal, localcontext
from itertools import pairwise
from math import lcm

from domain.money import MONEY_CONTEXT, exact, ratio
from domain.trades import ClosedTrade

TRADING_DAYS_PER_YEAR = 252
_PRECISION = 40  # decimal digits for return arithmetic: far beyond a float's 17
_RATIO_CONTEXT = Context(prec=_PRECISION)
"""A context of its own (not a copy of the caller's): returns are ratios, rounded anyway."""
_SQRT_YEAR = math.sqrt(TRADING_DAYS_PER_YEAR)
DAYS_PER_YEAR = 365.25  # calendar years, for the CAGR
_DAY = timedelta(days=1)


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
    # backtesting.py's statistics. Defaults keep results stored before they existed readable.
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


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def scaled_integers(values: Sequence[Decimal | int]) -> list[int]:
    """The values as integers on one common scale, exactly: any ratio of two of them is the
    ratio of the values. (Each return is then one correctly rounded int division.)"""
    if all(type(value) is int for value in values):
        return list(values)  # type: ignore[arg-type]  # (all ints: checked)
    pairs = [value.as_integer_ratio() for value in values]
    denominators = {d for _, d in pairs}
    if len(denominators) <= 1:
        return [n for n, _ in pairs]
    common = lcm(*denominators)
    factors = {d: common // d for d in denominators}
    return [n * factors[d] for n, d in pairs]


def _returns(values: Sequence[int]) -> list[float]:
    returns: list[float] = []
    for previous, current in pairwise(values):
        if previous == 0:
            raise ValueError("a return after zero equity is undefined")
        returns.append((current - previous) / previous)
    return returns


def daily_returns(daily_equity: Sequence[Decimal]) -> list[float]:
    """Simple returns between consecutive equity values, each exact then rounded once."""
    return _returns(scaled_integers(daily_equity))


def _total_return(values: Sequence[int]) -> float | None:
    if len(values) < 2:
        return None
    return _finite((values[-1] - values[0]) / values[0])


def total_return(daily_equity: Sequence[Decimal | int]) -> float | None:
    """E_T / E_0 - 1 as a fraction; `None` for fewer than two points."""
    if len(daily_equity) < 2:
        return None
    return _total_return(scaled_integers([daily_equity[0], daily_equity[-1]]))


def _annual_return(growth: float | None, points: int) -> float | None:
    if growth is None or growth < -1.0:  # equity went negative: no real root
        return None
    if growth == -1.0:
        return -1.0
    # expm1/log1p keep full relative accuracy when the growth is close to zero.
    try:
        return _finite(math.expm1(math.log1p(growth) * TRADING_DAYS_PER_YEAR / (points - 1)))
    except OverflowError:
        return None


def annual_return(daily_equity: Sequence[Decimal]) -> float | None:
    """(E_T / E_0)^(252 / days) - 1 as a fraction; `None` if undefined or too large for a float."""
    return _annual_return(total_return(daily_equity), len(daily_equity))


def _max_drawdown(depth: Sequence[float]) -> float | None:
    """The deepest fall from a peak, as a (non-positive) fraction, from `_depths`."""
    return _finite(0.0 - max(depth)) if len(depth) >= 2 else None


def max_drawdown(daily_equity: Sequence[Decimal]) -> float | None:
    """min(E / cummax(E) - 1) as a (non-positive) fraction; `None` for fewer than two points."""
    return _max_drawdown(_depths(scaled_integers(daily_equity)))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _sample_std(values: Sequence[float]) -> float:
    """std with ddof 1; exactly 0 when all values are equal (no rounding residue)."""
    if max(values) == min(values):
        return 0.0
    mean = _mean(values)
    return math.sqrt(math.fsum([(value - mean) ** 2 for value in values]) / (len(values) - 1))


def _return_ratios(
    returns: Sequence[float],
) -> tuple[float | None, float | None, float | None]:
    """(annual volatility, Sharpe, Sortino) from daily returns; each `None` where undefined."""
    if len(returns) < 2:
        return None, None, None
    mean = _mean(returns)
    std = _sample_std(returns)
    downside = math.sqrt(math.fsum([r**2 for r in returns if r < 0.0]) / len(returns))
    volatility = std * _SQRT_YEAR
    sharpe = mean / std * _SQRT_YEAR if std > 0 else None
    sortino = mean / downside * _SQRT_YEAR if downside > 0 else None
    return _finite(volatility), _finite(sharpe), _finite(sortino)


def _percent(fraction: float | None) -> float | None:
    return _finite(fraction * 100.0) if fraction is not None else None


def equal_weight_benchmark(closes: Mapping[str, Sequence[int | None]]) -> list[int]:
    """The equal-weight buy-and-hold portfolio, exactly, as integers proportional to its value:
    1 split equally across the symbols, each part bought at its symbol's first close and held,
    is worth at each point the mean over symbols of close / first close (1 before a symbol's
    first close). `closes[s][i]` is `s`'s latest close as of point i (None before its first
    bar), on any fixed scale per symbol; every sequence has one entry per point. Only ratios
    of the results mean anything (returns, beta); `equal_weight_buy_and_hold` gives values."""
    return _benchmark(closes)[0]


def _benchmark(closes: Mapping[str, Sequence[int | None]]) -> tuple[list[int], int]:
    """(integers proportional to the benchmark's value, their value of 1)."""
    if not closes:
        raise ValueError("buy and hold needs at least one symbol")
    lengths = {len(series) for series in closes.values()}
    if len(lengths) != 1:
        raise ValueError("every symbol needs one close per point")
    (points,) = lengths
    firsts: dict[str, int] = {}
    for symbol, series in closes.items():
        first = next((close for close in series if close is not None), None)
        if first is not None and first <= 0:
            raise ValueError("a first close must be positive")
        firsts[symbol] = first or 1
    # close / first summed over symbols, on the common denominator `whole` (a value of 1).
    whole = lcm(*firsts.values())
    total = [0] * points
    for symbol, series in closes.items():
        weight = whole // firsts[symbol]
        total = [
            t + (close * weight if close is not None else whole)
            for t, close in zip(total, series, strict=True)
        ]
    return total, whole * len(closes)


def equal_weight_buy_and_hold(closes: Mapping[str, Sequence[Decimal | None]]) -> list[Decimal]:
    """The value of the equal-weight buy-and-hold portfolio (see `equal_weight_benchmark`) at
    each point, from decimal closes."""
    integers: dict[str, list[int | None]] = {}
    for symbol, series in closes.items():
        known = scaled_integers([close for close in series if close is not None])
        values = iter(known)
        integers[symbol] = [None if close is None else next(values) for close in series]
    total, one = _benchmark(integers)
    with localcontext(_RATIO_CONTEXT):
        return [Decimal(value) / one for value in total]


@dataclass(frozen=True, slots=True)
class DrawdownPeriods:
    """backtesting.py's drawdown periods: from one point at a new peak to the next (or to the
    last point, while still under water), skipping spans with no point under water between."""

    depths: list[float]
    """The deepest drawdown of each period, as a positive fraction."""
    durations: list[timedelta]


def drawdown_periods(daily_equity: Sequence[Decimal], days: Sequence[date]) -> DrawdownPeriods:
    return _drawdown_periods(scaled_integers(daily_equity), days)


def _depths(values: Sequence[int]) -> list[float]:
    """1 - V / cummax(V) at each point (0 at a new peak, and before any positive value)."""
    depth: list[float] = []
    peak = 0
    for value in values:
        if value > peak:
            peak = value
        depth.append((peak - value) / peak if peak > 0 else 0.0)
    return depth


def _drawdown_periods(
    values: Sequence[int], days: Sequence[date], depth: Sequence[float] | None = None
) -> DrawdownPeriods:
    if len(values) != len(days):
        raise ValueError("one day per equity point")
    if depth is None:
        depth = _depths(values)
    ends = [i for i, d in enumerate(depth) if d == 0]
    if depth and (not ends or ends[-1] != len(depth) - 1):
        ends.append(len(depth) - 1)
    periods = DrawdownPeriods([], [])
    for start, end in pairwise(ends):
        if end > start + 1:
            periods.depths.append(max(depth[start : end + 1]))
            periods.durations.append(days[end] - days[start])
    return periods


def _cagr(growth: float | None, days: Sequence[date]) -> float | None:
    years = (days[-1] - days[0]).days / DAYS_PER_YEAR if len(days) >= 2 else 0.0
    if growth is None or years <= 0 or growth < -1.0:
        return None
    if growth == -1.0:
        return -1.0
    try:
        return _finite(math.expm1(math.log1p(growth) / years))
    except OverflowError:
        return None


def cagr(daily_equity: Sequence[Decimal], days: Sequence[date]) -> float | None:
    """(E_T / E_0)^(365.25 / calendar days) - 1 as a fraction."""
    return _cagr(total_return(daily_equity), days)


def _log_returns(values: Sequence[int], returns: Sequence[float] | None) -> list[float] | None:
    """log(V_t / V_t-1) as log1p of the simple return (exact to the float, where the log of a
    ratio near 1 would lose digits); None unless every value is positive."""
    if not values or min(values) <= 0:
        return None if values else []
    log1p = math.log1p
    return [log1p(r) for r in (_returns(values) if returns is None else returns)]


def _beta(
    ours: Sequence[int],
    market: Sequence[int],
    our_returns: Sequence[float] | None = None,
) -> float | None:
    if len(ours) != len(market):
        raise ValueError("one market value per equity point")
    mine, theirs = _log_returns(ours, our_returns), _log_returns(market, None)
    if mine is None or theirs is None or len(theirs) < 2:
        return None
    mean_mine, mean_theirs = _mean(mine), _mean(theirs)
    covariance = math.fsum(
        [(a - mean_mine) * (b - mean_theirs) for a, b in zip(mine, theirs, strict=True)]
    )
    variance = math.fsum([(b - mean_theirs) ** 2 for b in theirs])
    return _finite(covariance / variance) if variance > 0 else None


def beta(daily_equity: Sequence[Decimal], market: Sequence[Decimal | int]) -> float | None:
    """cov(log returns of E, log returns of the market) / var(log returns of the market)."""
    return _beta(scaled_integers(daily_equity), scaled_integers(market))


def net_return(trade: ClosedTrade) -> float:
    """A trade's return net of its commission, as a fraction of what it cost to open:
    pnl / (quantity * entry price)."""
    return ratio(trade.pnl, MONEY_CONTEXT.multiply(trade.quantity, trade.entry_price))


def trade_duration(trade: ClosedTrade, resolution: timedelta = _DAY) -> timedelta:
    """exit - entry, to the nearest multiple of `resolution` (a day for daily bars: their
    closes are a whole number of days apart but for a daylight-saving shift)."""
    steps = round((trade.exit_time - trade.entry_time) / resolution)
    return resolution * steps


def _days(span: timedelta) -> float:
    return span / _DAY


@dataclass(frozen=True, slots=True)
class _TradeStats:
    expectancy: float | None = None
    sqn: float | None = None
    kelly: float | None = None
    max_duration: float | None = None
    avg_duration: float | None = None


def _trade_stats(trades: Sequence[ClosedTrade], resolution: timedelta) -> _TradeStats:
    if not trades:
        return _TradeStats()
    pnls = [float(trade.pnl) for trade in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    sqn = None
    if len(pnls) >= 2 and (std := _sample_std(pnls)) > 0:
        sqn = _finite(math.sqrt(len(pnls)) * _mean(pnls) / std)
    kelly = None
    if wins and losses:
        win_rate = len(wins) / len(pnls)
        kelly = _finite(win_rate - (1 - win_rate) / (_mean(wins) / -_mean(losses)))
    durations = [_days(trade_duration(trade, resolution)) for trade in trades]
    return _TradeStats(
        expectancy=_finite(_mean([net_return(trade) for trade in trades]) * 100.0),
        sqn=sqn,
        kelly=kelly,
        max_duration=max(durations),
        avg_duration=_mean(durations),
    )


@exact
def compute_metrics(
    daily_equity: Sequence[Decimal],
    trades: Sequence[ClosedTrade],
    *,
    bars_total: int,
    bars_with_position: int,
    total_commission: Decimal,
    total_slippage: Decimal,
    days: Sequence[date] | None = None,
    buy_and_hold: Sequence[Decimal | int] | None = None,
    bar_length: timedelta = _DAY,
) -> Metrics:
    """All of §4.6 from the daily equity (the first value is the initial capital) and the trades.

    `days` are the equity points' days (the CAGR and drawdown durations need them);
    `buy_and_hold` is the benchmark's value at each point, on any scale (only its returns are
    used: see `equal_weight_benchmark`);
    trade durations are rounded to `bar_length`, a day at most. Without them, the statistics
    that need them are `None`."""
    if not daily_equity:
        raise ValueError("the daily equity series is empty")
    if daily_equity[0] <= 0:
        raise ValueError("the first equity value (the initial capital) must be positive")
    if bars_total < 0 or not 0 <= bars_with_position <= bars_total:
        raise ValueError("need 0 <= bars_with_position <= bars_total")

    equity = scaled_integers(daily_equity)
    growth = _total_return(equity)
    annual = _annual_return(growth, len(equity))
    depth = _depths(equity)  # (the first value is positive: checked above)
    drawdown = _max_drawdown(depth)
    calmar = None
    if annual is not None and drawdown is not None and drawdown < 0:
        calmar = _finite(annual / abs(drawdown))

    returns = None if 0 in equity[:-1] else _returns(equity)
    if returns is None:
        volatility = sharpe = sortino = None
    else:
        volatility, sharpe, sortino = _return_ratios(returns)

    total_trades = len(trades)
    winning_trades = sum(1 for trade in trades if trade.pnl > 0)
    gross_profit = sum((trade.pnl for trade in trades if trade.pnl > 0), Decimal(0))
    gross_loss = -sum((trade.pnl for trade in trades if trade.pnl < 0), Decimal(0))
    trade_returns = [trade.return_pct for trade in trades]

    periods = _drawdown_periods(equity, days, depth) if days is not None else None
    market_beta = bh_return = alpha = None
    if buy_and_hold is not None:
        market = scaled_integers(buy_and_hold)
        market_beta = _beta(equity, market, returns)
        bh_return = _percent(_total_return(market))
        total = _percent(growth)
        if market_beta is not None and bh_return is not None and total is not None:
            alpha = _finite(total - market_beta * bh_return)
    trade_stats = _trade_stats(trades, min(bar_length, _DAY))

    return Metrics(
        total_return_pct=_percent(growth),
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
        equity_peak=max(daily_equity),
        buy_and_hold_return_pct=bh_return,
        cagr_pct=_percent(_cagr(growth, days)) if days is not None else None,
        avg_drawdown_pct=-_mean(periods.depths) * 100.0 if periods and periods.depths else None,
        max_drawdown_duration_days=(
            _days(max(periods.durations)) if periods and periods.durations else None
        ),
        avg_drawdown_duration_days=(
            _mean([_days(d) for d in periods.durations]) if periods and periods.durations else None
        ),
        max_trade_duration_days=trade_stats.max_duration,
        avg_trade_duration_days=trade_stats.avg_duration,
        expectancy_pct=trade_stats.expectancy,
        sqn=trade_stats.sqn,
        kelly_criterion=trade_stats.kelly,
        alpha_pct=alpha,
        beta=market_beta,
    )
