"""What a run produced (`BacktestResults`), as `run_backtest` returns it and a strategy's
`on_finish` receives it."""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from entrypoints.protocol.messages import ExecutionReportData, MetricsData, TradeData
from entrypoints.sdk.indicators import IndicatorTrack


@dataclass(frozen=True, slots=True)
class PriceTrack:
    """Closes of one symbol as the strategy saw them (compact: for charts, not for money)."""

    times: array[int] = field(default_factory=lambda: array("q"))
    closes: array[float] = field(default_factory=lambda: array("d"))


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
    indicators: Mapping[str, IndicatorTrack] = field(default_factory=dict, repr=False)
    """name → the values of each indicator the strategy declared, on the bars traded."""

    @property
    def fills(self) -> int:
        """Execution reports that filled something (`executions` of §4.3's results)."""
        return sum(1 for r in self.executions if r.fill_quantity > 0)
