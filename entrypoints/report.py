"""One self-contained HTML file per backtest: equity curve, drawdown, trades marked on the
price, and the metrics table. Plotly draws the charts; its script is inlined, so the file
opens offline, anywhere, with nothing else beside it."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import plotly.graph_objects as go
from plotly.io import to_html
from plotly.subplots import make_subplots

from entrypoints.protocol.messages import TradeData
from entrypoints.sdk.backtest import BacktestResults
from entrypoints.stats import metric_rows


def _figure(results: BacktestResults, title: str) -> go.Figure:
    symbols = [s for s, track in results.prices.items() if len(track.times)]
    rows = 2 + len(symbols)
    figure = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[0.35, 0.15] + [0.5 / max(len(symbols), 1)] * len(symbols),
        subplot_titles=["Equity", "Drawdown"] + [f"{s} close and trades" for s in symbols],
    )
    days = [day for day, _ in results.equity_curve]
    equity = [float(value) for _, value in results.equity_curve]
    peak = float("-inf")
    drawdown = []
    for value in equity:
        peak = max(peak, value)
        drawdown.append((value / peak - 1) * 100 if peak > 0 else 0.0)
    figure.add_trace(go.Scatter(x=days, y=equity, name="equity", line={"width": 1.5}), 1, 1)
    figure.add_trace(
        go.Scatter(x=days, y=drawdown, name="drawdown %", fill="tozeroy", line={"width": 1}),
        2,
        1,
    )
    for row, symbol in enumerate(symbols, start=3):
        track = results.prices[symbol]
        times = [datetime.fromtimestamp(t, UTC) for t in track.times]
        figure.add_trace(
            go.Scatter(x=times, y=list(track.closes), name=symbol, line={"width": 1}), row, 1
        )
        trades = [t for t in results.trades if t.symbol == symbol]
        _add_trade_markers(figure, trades, row)
    figure.update_layout(
        title=title, height=300 + 260 * rows, showlegend=False, template="plotly_white"
    )
    return figure


def _add_trade_markers(figure: go.Figure, trades: Sequence[TradeData], row: int) -> None:
    if not trades:
        return
    figure.add_trace(
        go.Scatter(
            x=[t.entry_time for t in trades],
            y=[float(t.entry_price) for t in trades],
            mode="markers",
            name="entries",
            marker={"symbol": "triangle-up", "size": 9, "color": "#2a9d8f"},
            text=[f"{t.side} {t.quantity} @ {t.entry_price}" for t in trades],
        ),
        row,
        1,
    )
    figure.add_trace(
        go.Scatter(
            x=[t.exit_time for t in trades],
            y=[float(t.exit_price) for t in trades],
            mode="markers",
            name="exits",
            marker={"symbol": "triangle-down", "size": 9, "color": "#e76f51"},
            text=[f"exit @ {t.exit_price}, pnl {t.pnl}" for t in trades],
        ),
        row,
        1,
    )


def render_report(results: BacktestResults, title: str = "SimuTrador backtest") -> str:
    """The whole report as one HTML document."""
    chart = to_html(_figure(results, title), full_html=False, include_plotlyjs=True)
    table = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in metric_rows(results.metrics)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ padding: .25em 1em; border-bottom: 1px solid #ddd; text-align: left; }}
td {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Session {html.escape(results.session_id)} · {results.total_ticks:,} bars ·
{len(results.trades)} closed trades</p>
<table>{table}</table>
{chart}
</body></html>
"""


def write_report(results: BacktestResults, path: Path, title: str = "SimuTrador backtest") -> None:
    path.write_text(render_report(results, title), encoding="utf-8")
