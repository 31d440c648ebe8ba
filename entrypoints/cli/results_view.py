"""How the command line shows a simulation's results: metrics, then the closed trades."""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from entrypoints.cli.common import out
from entrypoints.sdk import BacktestResults
from entrypoints.stats import metric_rows

MAX_TRADES_SHOWN = 20


def print_results(results: BacktestResults) -> None:
    if results.wall_time_ms:
        rate = results.total_ticks / (results.wall_time_ms / 1000)
        out.print(
            f"[bold]{results.total_ticks:,}[/bold] bars in {results.wall_time_ms:,} ms "
            f"({rate:,.0f} bars/s), session {results.session_id}"
        )
    else:
        out.print(f"[bold]{results.total_ticks:,}[/bold] bars, session {results.session_id}")
    metrics = Table(show_header=False, box=box.SIMPLE, pad_edge=False)
    metrics.add_column(style="bold")
    metrics.add_column(justify="right")
    for label, value in metric_rows(results.metrics):
        metrics.add_row(label, value)
    out.print(metrics)
    if not results.trades:
        out.print("[dim]No closed trades.[/dim]")
        return
    trades = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Closed trades")
    for column in ("symbol", "side", "qty", "entry", "price", "exit", "price", "pnl"):
        trades.add_column(column, justify="right" if column in ("qty", "price", "pnl") else "left")
    for t in results.trades[-MAX_TRADES_SHOWN:]:
        style = "green" if t.pnl > 0 else "red"
        trades.add_row(
            escape(t.symbol),
            t.side,
            f"{t.quantity:,}",
            t.entry_time.date().isoformat(),
            f"{t.entry_price:,}",
            t.exit_time.date().isoformat(),
            f"{t.exit_price:,}",
            f"[{style}]{t.pnl:,}[/{style}]",
        )
    out.print(trades)
    if len(results.trades) > MAX_TRADES_SHOWN:
        out.print(
            f"[dim]… the last {MAX_TRADES_SHOWN} of {len(results.trades)}; "
            "--json or --report for all[/dim]"
        )
