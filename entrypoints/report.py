"""One self-contained HTML file per backtest: what was run (and whether on synthetic bars),
every statistic, the charts (entrypoints/report_charts.py), every trade, the positions still
open at the end and the refused orders. Plotly's script is inlined, so the file opens
offline, anywhere, with nothing else beside it."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import plotly.graph_objects as go
from plotly.io import to_html

from entrypoints.export import bar_seconds, trade_days
from entrypoints.protocol.messages import ExecutionReportData
from entrypoints.report_charts import figure
from entrypoints.sdk.plots import Line, PriceTrack, Reportable, RunInfo
from entrypoints.stats import metric_rows

REJECTIONS_LISTED = 5

_STYLE = """
.st-report { font-family: system-ui, sans-serif; color: #222; }
.st-report table { border-collapse: collapse; margin: 0 0 1.5em; }
.st-report th, .st-report td { padding: .2em .8em; border-bottom: 1px solid #ddd;
  text-align: left; }
.st-report td.n { text-align: right; font-variant-numeric: tabular-nums; }
.st-report .synthetic { background: #fff3cd; border: 2px solid #e0a800; padding: .8em 1em;
  margin: 1em 0; font-size: 1.1em; }
.st-report .warnings { color: #8a5a00; }
.st-report tr.win td.pnl { color: #1a9850; } .st-report tr.loss td.pnl { color: #d73027; }
.st-report .cols { display: flex; gap: 3em; flex-wrap: wrap; align-items: flex-start; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def default_title(results: Reportable) -> str:
    if results.run is not None:
        return f"{results.run.strategy} on {', '.join(results.run.symbols)}"
    return f"Session {results.session_id}"


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    quantity: Decimal  # signed: negative when short
    average_price: Decimal
    last_close: float | None


def open_positions(
    executions: Sequence[ExecutionReportData], prices: Mapping[str, PriceTrack]
) -> list[OpenPosition]:
    """What the fills leave open, per symbol, with the average price of the lots still open
    (first in, first out, as the trades are matched)."""
    lots: dict[str, list[tuple[Decimal, Decimal]]] = {}
    for r in executions:
        if r.fill_quantity <= 0 or r.price is None:
            continue
        signed = r.fill_quantity if r.side == "buy" else -r.fill_quantity
        queue = lots.setdefault(r.symbol, [])
        while signed and queue and (queue[0][0] > 0) != (signed > 0):
            held, price = queue[0]
            taken = min(abs(held), abs(signed))
            held += taken if held < 0 else -taken
            signed += taken if signed < 0 else -taken
            if held:
                queue[0] = (held, price)
            else:
                queue.pop(0)
        if signed:
            queue.append((signed, r.price))
    found = []
    for symbol, queue in lots.items():
        if not queue:
            continue
        quantity = sum((q for q, _ in queue), Decimal(0))
        average = sum((abs(q) * p for q, p in queue), Decimal(0)) / abs(quantity)
        track = prices.get(symbol)
        last = track.closes[-1] if track is not None and len(track.closes) else None
        found.append(OpenPosition(symbol, quantity, average, last))
    return found


def _settings_rows(results: Reportable) -> list[tuple[str, str]]:
    run = results.run
    currency = results.currency or ""
    rows: list[tuple[str, str]] = []
    if run is not None:
        params = ", ".join(f"{k}={v}" for k, v in run.params.items())
        rows.append(("Strategy", run.strategy + (f" ({params})" if params else "")))
        rows.append(("Symbols", ", ".join(run.symbols)))
        rows.append(("Range asked", f"{run.start} to {run.end}"))
    if results.equity_curve:
        first, last = results.equity_curve[0][0], results.equity_curve[-1][0]
        rows.append(("Days with bars", f"{first} to {last} ({len(results.equity_curve):,} days)"))
    if run is not None:
        rows.append(("Timeframe", run.timeframe))
        rows.append(("Capital", f"{run.capital:,} {currency}".strip()))
        rows += _engine_rows(run)
        if run.warmup_bars:
            rows.append(("Warm-up", f"{run.warmup_bars} bars before the range"))
    synthetic = results.synthetic_symbols
    source = (
        f"synthetic sample (a seeded random walk, not market prices) for {', '.join(synthetic)}"
        if synthetic
        else "imported bars"
    )
    rows.append(("Data", source + (f", {run.where}" if run is not None else "")))
    rows.append(("Session", results.session_id))
    if results.wall_time_ms:
        rows.append(("Ran", f"{results.total_ticks:,} bars in {results.wall_time_ms:,} ms"))
    return rows


def _engine_rows(run: RunInfo) -> list[tuple[str, str]]:
    s = run.engine_settings
    parts = []
    if s.get("commission_per_share"):
        parts.append(f"{s['commission_per_share']} per share")
    if s.get("commission_pct"):
        parts.append(f"{Decimal(str(s['commission_pct'])) * 100:f} % of the value")
    if s.get("commission_min"):
        parts.append(f"at least {s['commission_min']} a fill")
    slippage = s.get("slippage_bps")
    volume = s.get("max_volume_pct")
    return [
        ("Commission", ", ".join(parts) or "none"),
        ("Slippage", f"{slippage} basis points" if slippage else "none"),
        (
            "Volume cap",
            f"{Decimal(str(volume)) * 100:f} % of a bar's volume" if volume else "none",
        ),
        ("Short selling", "allowed" if s.get("allow_short") else "not allowed"),
    ]


def _table(rows: Sequence[tuple[str, str]]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{_e(k)}</th><td class='n'>{_e(v)}</td></tr>" for k, v in rows)
        + "</table>"
    )


def _trades_table(results: Reportable) -> str:
    if not results.trades:
        return "<p>No closed trades.</p>"
    head = (
        "<tr><th>#</th><th>Symbol</th><th>Side</th><th>Quantity</th><th>Entry (UTC)</th>"
        "<th>Entry price</th><th>Exit (UTC)</th><th>Exit price</th><th>P&amp;L</th>"
        "<th>Return %</th><th>Days</th></tr>"
    )
    length = bar_seconds(results)
    body = "".join(
        f"<tr class='{'win' if t.pnl > 0 else 'loss'}'><td class='n'>{i}</td>"
        f"<td>{_e(t.symbol)}</td><td>{_e(t.side)}</td><td class='n'>{t.quantity:,}</td>"
        f"<td>{t.entry_time:%Y-%m-%d %H:%M}</td><td class='n'>{t.entry_price:,}</td>"
        f"<td>{t.exit_time:%Y-%m-%d %H:%M}</td><td class='n'>{t.exit_price:,}</td>"
        f"<td class='n pnl'>{t.pnl:,}</td><td class='n'>{t.return_pct:+.2f}</td>"
        f"<td class='n'>{trade_days(t, length):,.2f}</td></tr>"
        for i, t in enumerate(results.trades, start=1)
    )
    return f"<table>{head}{body}</table>"


def _open_positions(results: Reportable) -> str:
    if not results.executions:
        return "<p>Not known: these results list closed trades only (no fills).</p>"
    found = open_positions(results.executions, results.prices)
    if not found:
        return "<p>None: every position was closed.</p>"
    rows = "".join(
        f"<tr><td>{_e(p.symbol)}</td><td>{'long' if p.quantity > 0 else 'short'}</td>"
        f"<td class='n'>{abs(p.quantity):,}</td><td class='n'>{p.average_price:,.4f}</td>"
        f"<td class='n'>{'—' if p.last_close is None else f'{p.last_close:,.4f}'}</td>"
        f"<td class='n'>{_unrealized(p)}</td></tr>"
        for p in found
    )
    return (
        f"<p>{len(found)} position{'s' if len(found) != 1 else ''} still open at the end "
        "(marked at the last close in the equity; not trades):</p><table><tr><th>Symbol</th>"
        "<th>Side</th><th>Quantity</th><th>Average entry</th><th>Last close</th>"
        f"<th>Unrealized P&amp;L</th></tr>{rows}</table>"
    )


def _unrealized(p: OpenPosition) -> str:
    if p.last_close is None:
        return "—"
    return f"{(p.last_close - float(p.average_price)) * float(p.quantity):,.2f}"


def _rejections(results: Reportable) -> str:
    if not results.rejections:
        return ""
    counts = Counter(r.code for r in results.rejections)
    listed = "".join(
        f"<li>{_e(r.order_id)}: <b>{_e(r.code)}</b> {_e(r.message)}</li>"
        for r in results.rejections[:REJECTIONS_LISTED]
    )
    summary = ", ".join(f"{code}: {n}" for code, n in counts.most_common())
    return (
        f"<h2>Refused orders ({len(results.rejections)})</h2><p>{_e(summary)}</p><ul>{listed}</ul>"
    )


def backtest_figure(results: Reportable, title: str) -> go.Figure:
    """The report's charts as one Plotly figure, for whoever draws them elsewhere (the
    dashboard)."""
    chart = figure(results)
    chart.update_layout(title=title)
    return chart


def render_fragment(
    results: Reportable,
    title: str | None = None,
    overlays: Mapping[str, Line] | None = None,
) -> str:
    """The report's body (settings, stats, charts, trades), self-contained: what Jupyter
    shows for a results object, and what `render_report` wraps."""
    title = title or default_title(results)
    chart = to_html(
        figure(results, overlays),
        full_html=False,
        include_plotlyjs=True,
        config={"displaylogo": False, "responsive": True},
    )
    synthetic = results.synthetic_symbols
    banner = (
        f"<div class='synthetic'><b>Synthetic sample:</b> {_e(', '.join(synthetic))} ran on "
        "synthetic bars (a seeded random walk, not market prices). These results say nothing "
        "about a real market; import real bars with <code>simutrador data import</code> or "
        "<code>simutrador data fetch</code>.</div>"
        if synthetic
        else ""
    )
    others = [w for w in results.warnings if " runs on synthetic data" not in w]
    warnings = (
        "<ul class='warnings'>" + "".join(f"<li>{_e(w)}</li>" for w in others) + "</ul>"
        if others
        else ""
    )
    return f"""<div class="st-report"><style>{_STYLE}</style>
<h1>{_e(title)}</h1>
{banner}{warnings}
<div class="cols"><div><h2>Run</h2>{_table(_settings_rows(results))}</div>
<div><h2>Statistics</h2>{_table(metric_rows(results.metrics, results.currency))}</div></div>
{chart}
<h2>Trades ({len(results.trades):,} closed)</h2>
{_trades_table(results)}
<h2>Open at the end</h2>
{_open_positions(results)}
{_rejections(results)}
</div>"""


def render_report(
    results: Reportable,
    title: str | None = None,
    overlays: Mapping[str, Line] | None = None,
) -> str:
    """The whole report as one HTML document. `overlays` adds named series over the prices
    (each to its symbol's chart) to what the strategy drew with `ctx.plot`."""
    title = title or default_title(results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="margin: 1.5em 2em">
{render_fragment(results, title, overlays)}
</body></html>
"""


def write_report(
    results: Reportable,
    path: Path,
    title: str | None = None,
    overlays: Mapping[str, Line] | None = None,
) -> None:
    path.write_text(render_report(results, title, overlays), encoding="utf-8")
