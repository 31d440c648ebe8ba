"""A completed session's charts: the same figure as the HTML report (`entrypoints.report`:
equity and drawdown, trade P&L, each symbol's candles, volume and trades; candles merged
past the report's limit), as Plotly JSON that the page's own script draws with the Plotly
bundle the server ships."""

from __future__ import annotations

from collections.abc import Mapping

from application.simulation import SimulationResults
from domain.bars import BarSeries
from entrypoints.protocol.engine import metrics_data, trade_data


def chart_json(
    session_id: str,
    results: SimulationResults,
    bars: Mapping[str, BarSeries],
    title: str,
) -> str:
    """The figure as Plotly JSON (`{"data": [...], "layout": {...}}`)."""
    # Plotly (and the SDK's result types) load with the first chart, not with the server.
    from entrypoints.report import backtest_figure
    from entrypoints.sdk.plots import price_track
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
