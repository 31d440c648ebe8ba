"""`BacktestResults.to_pandas()`: the results as pandas objects, for a notebook. pandas is
optional (`pip install simutrador[pandas]`); nothing else in SimuTrador needs it.

Amounts become floats here, for plotting and arithmetic; the CSV files and `--json` keep them
exact."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from entrypoints.export import (
    DAY_SECONDS,
    EXECUTION_COLUMNS,
    TRADE_COLUMNS,
    ResultsTables,
    trade_days,
)
from entrypoints.sdk.errors import SimuTradorError
from entrypoints.stats import METRIC_LABELS

if TYPE_CHECKING:
    import pandas as pd

PANDAS_HINT = "pip install simutrador[pandas]"

_MONEY_TRADE_COLUMNS = ("quantity", "entry_price", "exit_price", "pnl", "commission")
_MONEY_EXECUTION_COLUMNS = (
    "quantity",
    "fill_quantity",
    "filled_quantity",
    "remaining_quantity",
    "price",
    "commission",
    "slippage",
)


class PandasMissingError(SimuTradorError, ImportError):
    """`to_pandas()` without pandas installed."""

    code = "PANDAS_MISSING"


class PandasResults(NamedTuple):
    """trades and executions (one row each), the daily equity curve (indexed by day, with
    the drawdown in percent) and the metrics as a Series (indexed by metric name)."""

    trades: pd.DataFrame
    executions: pd.DataFrame
    equity: pd.DataFrame
    stats: pd.Series


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise PandasMissingError(
            f"to_pandas() needs pandas, which is not installed: {PANDAS_HINT}"
        ) from None
    return pandas


def _number(value: Any) -> Any:
    return float(value) if value is not None else None


def to_pandas(results: ResultsTables, bar_seconds: int = DAY_SECONDS) -> PandasResults:
    pd = _pandas()
    trades = pd.DataFrame(
        [
            {
                **{c: getattr(t, c) for c in TRADE_COLUMNS if c != "duration_days"},
                **{c: float(getattr(t, c)) for c in _MONEY_TRADE_COLUMNS},
                "duration_days": trade_days(t, bar_seconds),
            }
            for t in results.trades
        ],
        columns=list(TRADE_COLUMNS),
    )
    for column in ("entry_time", "exit_time"):
        trades[column] = pd.to_datetime(trades[column], utc=True)
    executions = pd.DataFrame(
        [
            {
                **{c: getattr(r, c) for c in EXECUTION_COLUMNS},
                **{c: _number(getattr(r, c)) for c in _MONEY_EXECUTION_COLUMNS},
            }
            for r in results.executions
        ],
        columns=list(EXECUTION_COLUMNS),
    )
    executions["sim_time"] = pd.to_datetime(executions["sim_time"], utc=True)
    equity = pd.DataFrame(
        {"equity": [float(value) for _, value in results.equity_curve]},
        index=pd.DatetimeIndex([day for day, _ in results.equity_curve], name="date"),
    )
    equity["drawdown_pct"] = (equity["equity"] / equity["equity"].cummax() - 1) * 100
    metrics = results.metrics
    stats = pd.Series(
        {
            name: float(value) if value is not None and not isinstance(value, int) else value
            for name in METRIC_LABELS
            for value in (getattr(metrics, name),)
        },
        name="stats",
        dtype=object,
    )
    return PandasResults(trades, executions, equity, stats)
