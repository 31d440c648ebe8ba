"""A simulation's results (§4.6): the metrics of its published daily equity curve and trades,
with the buy-and-hold benchmark valued at the same points, as `SimulationResults`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

from application.benchmark import buy_and_hold_curve, shortest_bar
from application.records import SimulationResults
from domain.bars import BarSeries, from_epoch
from domain.metrics import compute_metrics
from domain.reports import ExecutionReport
from domain.trades import ClosedTrade


def simulation_results(
    curve: Sequence[tuple[date, Decimal]],
    trades: Sequence[ClosedTrade],
    reports: Sequence[ExecutionReport],
    *,
    initial_capital: Decimal,
    delivered: int,
    ticks_with_position: int,
    total_commission: Decimal,
    total_slippage: Decimal,
    series: Mapping[str, BarSeries],
    first_tradable: Mapping[str, int],
    ticks: Sequence[int],
    day_closes: Mapping[int, date],
) -> SimulationResults:
    """The results after `delivered` of `ticks` were delivered: `curve` is the daily equity
    (valued), `day_closes` the index of each trading day's last tick → that day (ascending)."""
    # Metrics come from exactly the published daily curve (§4.6), so anyone holding the
    # results can recompute them. With daily bars its first point is the initial
    # capital: no order can fill on the first bar.
    daily = [e for _, e in curve] or [initial_capital]
    # The ticks where the curve has its points: the benchmark is valued at the same ones.
    points = [k for k in day_closes if k < delivered]  # (in ascending order)
    metrics = compute_metrics(
        daily,
        trades,
        bars_total=delivered,
        bars_with_position=ticks_with_position,
        total_commission=total_commission,
        total_slippage=total_slippage,
        days=[day for day, _ in curve] or None,
        buy_and_hold=buy_and_hold_curve(series, first_tradable, ticks, points),
        bar_length=shortest_bar(series),
    )
    return SimulationResults(
        metrics,
        tuple(curve),
        tuple(trades),
        sum(1 for r in reports if r.is_fill),
        len(ticks),
        from_epoch(ticks[delivered - 1]) if delivered else None,
    )
