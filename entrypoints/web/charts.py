"""A completed session's charts: the same figure as the HTML report (`entrypoints.report`:
equity, drawdown, each symbol's closes with its trades marked), as Plotly JSON that the
page's own script draws with the Plotly bundle the server ships."""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING

from application.simulation import SimulationResults
from domain.bars import BarSeries
from entrypoints.protocol.engine import metrics_data, trade_data

if TYPE_CHECKING:
    from entrypoints.sdk.results import PriceTrack

MAX_POINTS = 4_000
"""Closes drawn per symbol at most: a year of minute bars is thinned to every n-th bar
(the first and last kept); trades are always drawn at their exact prices."""


def price_track(series: BarSeries, max_points: int = MAX_POINTS) -> PriceTrack:
    """The closes of `series` as floats (for drawing only), thinned to `max_points`."""
    from entrypoints.sdk.results import PriceTrack

    n = len(series)
    if n == 0:
        return PriceTrack()
    step = max(1, -(-n // max_points))
    picked = list(range(0, n, step))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    scale = 10.0**series.price_scale
    return PriceTrack(
        array("q", (series.times[i] for i in picked)),
        array("d", (series.closes[i] / scale for i in picked)),
    )


def chart_json(
    session_id: str,
    results: SimulationResults,
    bars: Mapping[str, BarSeries],
    title: str,
) -> str:
    """The figure as Plotly JSON (`{"data": [...], "layout": {...}}`)."""
    # Plotly (and the SDK's result types) load with the first chart, not with the server.
    from entrypoints.report import backtest_figure
    from entrypoints.sdk.results import BacktestResults

    backtest = BacktestResults(
        session_id=session_id,
        metrics=metrics_data(results.metrics),
        trades=[trade_data(t) for t in results.trades],
        equity_curve=list(results.equity_curve),
        executions=[],
        total_ticks=results.total_ticks,
        wall_time_ms=0,
        prices={symbol: price_track(series) for symbol, series in bars.items()},
    )
    figure_json: str = backtest_figure(backtest, title).to_json()
    return figure_json
