"""What a run produced (`BacktestResults`), as `run_backtest` returns it and a strategy's
`on_finish` receives it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from entrypoints.protocol.messages import ExecutionReportData, MetricsData, TradeData
from entrypoints.sdk.indicators import IndicatorTrack
from entrypoints.sdk.plots import PlotSeries as PlotSeries
from entrypoints.sdk.plots import PriceTrack as PriceTrack
from entrypoints.sdk.plots import Rejection as Rejection
from entrypoints.sdk.plots import RunInfo as RunInfo


@dataclass(frozen=True, slots=True)
class BacktestResults:
    """What a run produced (field names as PROTOCOL.md §4.3 `simulation_results`), plus
    every execution report, the closes seen (for reports) and the run's timing."""

    session_id: str
    metrics: MetricsData
    # Long lists stay out of the repr: printing results (or a finished task holding them)
    # must not format every execution.
    trades: list[TradeData] = field(repr=False)
    equity_curve: list[tuple[date, Decimal]] = field(repr=False)
    executions: list[ExecutionReportData] = field(repr=False)
    total_ticks: int
    wall_time_ms: int
    prices: Mapping[str, PriceTrack] = field(default_factory=dict, repr=False)
    plots: Mapping[str, PlotSeries] = field(default_factory=dict, repr=False)
    """What the strategy drew with `ctx.plot`, by name."""
    rejections: list[Rejection] = field(default_factory=list, repr=False)
    warnings: tuple[str, ...] = ()
    """The session's warnings (PROTOCOL §8.3): missing data, synthetic data, short range."""
    currency: str = ""
    """The currency the capital is counted in (`mixed` when the symbols' differ)."""
    run: RunInfo | None = None
    indicators: Mapping[str, IndicatorTrack] = field(default_factory=dict, repr=False)
    """name → the values of each indicator the strategy declared, on the bars traded."""

    @property
    def fills(self) -> int:
        """Execution reports that filled something (`executions` of §4.3's results)."""
        return sum(1 for r in self.executions if r.fill_quantity > 0)

    @property
    def synthetic_symbols(self) -> list[str]:
        """The symbols that ran on synthetic bars (their session warning says so)."""
        return synthetic_symbols(self.warnings)

    def to_pandas(self) -> Any:
        """trades, executions, equity (daily) as DataFrames and stats as a Series, in a
        `PandasResults` named tuple. Needs pandas: `pip install simutrador[pandas]`."""
        from entrypoints.export import bar_seconds  # pandas and plotly: loaded when asked for
        from entrypoints.sdk.frames import to_pandas

        return to_pandas(self, bar_seconds(self))

    def _repr_html_(self) -> str:
        """Jupyter shows results as the report: settings, stats, charts and trades."""
        from entrypoints.report import render_fragment

        shown: str = render_fragment(self)
        return shown


SYNTHETIC_WARNING = " runs on synthetic data"
"""How a session warning names a symbol on synthetic bars (PROTOCOL §8.3, item 5)."""


def synthetic_symbols(warnings: Sequence[str]) -> list[str]:
    return [w.split(SYNTHETIC_WARNING, 1)[0] for w in warnings if SYNTHETIC_WARNING in w]
