"""The metrics as people read them: a label and a unit per metric (§7.12), in the order the
CLI table, the HTML report and stats.csv show them."""

from __future__ import annotations

from decimal import Decimal

from entrypoints.protocol.messages import MetricsData

METRIC_LABELS: dict[str, tuple[str, str]] = {
    "total_return_pct": ("Total return", "%"),
    "buy_and_hold_return_pct": ("Buy & hold return", "%"),
    "annual_return_pct": ("Annual return", "%"),
    "cagr_pct": ("CAGR", "%"),
    "annual_volatility_pct": ("Annual volatility", "%"),
    "sharpe_ratio": ("Sharpe ratio", ""),
    "sortino_ratio": ("Sortino ratio", ""),
    "calmar_ratio": ("Calmar ratio", ""),
    "alpha_pct": ("Alpha", "%"),
    "beta": ("Beta", ""),
    "max_drawdown_pct": ("Max drawdown", "%"),
    "avg_drawdown_pct": ("Average drawdown", "%"),
    "max_drawdown_duration_days": ("Max drawdown duration", "days"),
    "avg_drawdown_duration_days": ("Average drawdown duration", "days"),
    "final_equity": ("Final equity", ""),
    "equity_peak": ("Equity peak", ""),
    "exposure_pct": ("Exposure", "%"),
    "total_trades": ("Trades", ""),
    "winning_trades": ("Winning trades", ""),
    "win_rate_pct": ("Win rate", "%"),
    "best_trade_pct": ("Best trade", "%"),
    "worst_trade_pct": ("Worst trade", "%"),
    "avg_trade_pct": ("Average trade", "%"),
    "max_trade_duration_days": ("Max trade duration", "days"),
    "avg_trade_duration_days": ("Average trade duration", "days"),
    "profit_factor": ("Profit factor", ""),
    "expectancy_pct": ("Expectancy", "%"),
    "sqn": ("SQN", ""),
    "kelly_criterion": ("Kelly criterion", ""),
    "total_commission": ("Commission", ""),
    "total_slippage": ("Slippage", ""),
}
"""Every field of `MetricsData`, in display order: (label, unit)."""

MONEY_METRICS = frozenset({"final_equity", "equity_peak", "total_commission", "total_slippage"})


def show(value: float | int | Decimal | None, unit: str = "") -> str:
    """A metric as shown to a person: floats to 2 decimals, thousands separated, an em dash
    when undefined."""
    if value is None:
        return "—"
    suffix = f" {unit}" if unit else ""
    if isinstance(value, float):
        return f"{value:,.2f}{suffix}"
    return f"{value:,}{suffix}"


def metric_rows(metrics: MetricsData, currency: str = "") -> list[tuple[str, str]]:
    """(label, shown value) for every metric; undefined ones show as an em dash. Amounts get
    `currency` as their unit when given."""
    rows = []
    for name, (label, unit) in METRIC_LABELS.items():
        shown_unit = currency if name in MONEY_METRICS and currency else unit
        rows.append((label, show(getattr(metrics, name), shown_unit)))
    return rows
