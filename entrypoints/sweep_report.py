"""One self-contained HTML page per sweep: the heatmap of any two parameters (a selector
when there are more), the top trials, the best run's equity curve and, for walk-forward,
the folds and the stitched out-of-sample equity. Plotly's script is inlined: it opens
offline."""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

import plotly.graph_objects as go
from plotly.io import to_html
from plotly.offline import get_plotlyjs

from application.sweeps.model import TrialOutcome, plain
from entrypoints.sdk.optimize import OptimizeResults

TOP_TRIALS = 20
SHOWN_METRICS = ("sharpe_ratio", "total_return_pct", "max_drawdown_pct", "total_trades")


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}"
    return html.escape(str(plain(value)))


def _heatmaps(results: OptimizeResults) -> str:
    names = [n for n in results.space.names if len(results.space.params[n]) > 1]
    pairs = list(itertools.combinations(names, 2))
    if not pairs:
        return "<p>A heatmap needs two parameters with several values each.</p>"
    figure = go.Figure()
    for index, (x, y) in enumerate(pairs):
        grid = results.heatmap(x, y)
        figure.add_trace(
            go.Heatmap(
                x=[str(plain(v)) for v in grid.xs],
                y=[str(plain(v)) for v in grid.ys],
                z=[list(row) for row in grid.values],
                colorscale="Viridis",
                colorbar={"title": results.objective.metric},
                visible=index == 0,
                hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>%{{z}}<extra></extra>",
                name=f"{y} by {x}",
            )
        )
    buttons = [
        {
            "label": f"{y} by {x}",
            "method": "update",
            "args": [
                {"visible": [i == j for j in range(len(pairs))]},
                {
                    "xaxis": {"title": x, "type": "category"},
                    "yaxis": {"title": y, "type": "category"},
                },
            ],
        }
        for i, (x, y) in enumerate(pairs)
    ]
    x0, y0 = pairs[0]
    figure.update_layout(
        title=f"Best {results.objective.metric} over the other parameters",
        xaxis={"title": x0, "type": "category"},
        yaxis={"title": y0, "type": "category"},
        template="plotly_white",
        height=520,
        updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.15, "xanchor": "right"}]
        if len(pairs) > 1
        else [],
    )
    return str(to_html(figure, full_html=False, include_plotlyjs=False))


def _equity(series: Sequence[tuple[str, Sequence[tuple[date, Decimal]]]], title: str) -> str:
    figure = go.Figure()
    for name, curve in series:
        figure.add_trace(
            go.Scatter(
                x=[d for d, _ in curve], y=[float(v) for _, v in curve], name=name, mode="lines"
            )
        )
    figure.update_layout(title=title, template="plotly_white", height=420)
    return str(to_html(figure, full_html=False, include_plotlyjs=False))


def _table(outcomes: Sequence[TrialOutcome], results: OptimizeResults) -> str:
    metric = results.objective.metric
    columns = [metric, *[m for m in SHOWN_METRICS if m != metric]]
    head = "".join(
        f"<th>{html.escape(c)}</th>" for c in ["#", *results.space.names, *columns, "status"]
    )
    rows = []
    for o in outcomes:
        cells = [str(o.number), *(_cell(o.params.get(n)) for n in results.space.names)]
        cells += [_cell(o.metric(c)) if o.completed else "—" for c in columns]
        cells.append(html.escape(o.status.value if o.completed else f"failed: {o.error}"))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _folds(results: OptimizeResults) -> str:
    wf = results.walk_forward
    if wf is None:
        return ""
    metric = results.objective.metric
    rows = []
    for entry in wf.folds:
        best = entry.sweep.best
        test = entry.test
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    str(entry.fold.number),
                    f"{entry.fold.train.start} → {entry.fold.train.end}",
                    f"{entry.fold.test.start} → {entry.fold.test.end}",
                    html.escape(json.dumps({k: plain(v) for k, v in best.params.items()}))
                    if best
                    else "—",
                    _cell(best.metric(metric)) if best else "—",
                    _cell(test.metric(metric)) if test and test.completed else "—",
                )
            )
            + "</tr>"
        )
    stitched = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in wf.metrics.items()
    )
    chart = _equity([("out of sample", wf.equity)], "Stitched out-of-sample equity")
    return f"""<h2>Walk-forward</h2>
<table><tr><th>fold</th><th>train</th><th>test</th><th>best params</th>
<th>in-sample {html.escape(metric)}</th><th>out-of-sample {html.escape(metric)}</th></tr>
{"".join(rows)}</table>
<h3>Stitched out-of-sample metrics</h3><table>{stitched}</table>
{chart}"""


def render_sweep_report(results: OptimizeResults, title: str) -> str:
    plotly_js = get_plotlyjs()  # inlined once; every chart below uses it
    best = results.best
    dsr = results.deflated_sharpe_ratio
    summary = "No trial completed."
    curve = ""
    if best is not None:
        params = json.dumps({k: plain(v) for k, v in best.params.items()})
        summary = (
            f"Best: {html.escape(params)} · {html.escape(results.objective.metric)} "
            f"{_cell(best.metric(results.objective.metric))} · Sharpe "
            f"{_cell(best.metric('sharpe_ratio'))} (deflated: {_cell(dsr)}, over "
            f"{len(results.ranked())} trials)"
        )
        curve = _equity([("best", best.equity)], "Equity of the best trial")
    ranked = results.ranked()[:TOP_TRIALS]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script>{plotly_js}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ padding: .25em .8em; border-bottom: 1px solid #ddd; text-align: right; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{len(results.trials)} trials ({results.method.value}), {results.objective.direction}
{html.escape(results.objective.metric)}{" — interrupted" if results.interrupted else ""}</p>
<p>{summary}</p>
{_heatmaps(results)}
<h2>Top trials</h2>
{_table(ranked, results)}
{curve}
{_folds(results)}
</body></html>
"""


def write_sweep_report(results: OptimizeResults, path: Path, title: str) -> None:
    path.write_text(render_sweep_report(results, title), encoding="utf-8")
