"""How the command line shows a simulation's results (the session's warnings, metrics, closed
trades, refused orders) and writes them away (`--report`, `--csv`), for `run` and
`session results` alike."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from entrypoints.cli.common import fail, out
from entrypoints.export import bar_seconds, write_csv_files
from entrypoints.report import write_report
from entrypoints.sdk import BacktestResults
from entrypoints.sdk.results import SYNTHETIC_WARNING
from entrypoints.stats import metric_rows

MAX_TRADES_SHOWN = 20
REJECTIONS_SHOWN = 3

ReportOption = Annotated[
    Path | None, typer.Option("--report", metavar="FILE.html", help="Write an HTML report.")
]
CsvOption = Annotated[
    Path | None,
    typer.Option(
        "--csv",
        metavar="DIR",
        help="Write trades.csv, executions.csv, equity.csv and stats.csv into DIR.",
    ),
]


def check_output_paths(report: Path | None, csv_dir: Path | None) -> None:
    """Refuse, before running anything, an output whose folder is not there."""
    if report is not None and not report.parent.resolve().is_dir():
        raise typer.BadParameter(f"no folder {report.parent} to write into", param_hint="--report")
    if csv_dir is not None:
        if csv_dir.exists() and not csv_dir.is_dir():
            raise typer.BadParameter(f"{csv_dir} is not a folder", param_hint="--csv")
        if not csv_dir.parent.resolve().is_dir():
            raise typer.BadParameter(
                f"no folder {csv_dir.parent} to write into", param_hint="--csv"
            )


def write_outputs(
    results: BacktestResults, report: Path | None, csv_dir: Path | None, title: str | None = None
) -> None:
    if report is not None:
        try:
            write_report(results, report, title)
        except OSError as exc:
            fail("REPORT_NOT_WRITTEN", f"Cannot write {report}: {exc.strerror or exc}")
    if csv_dir is not None:
        try:
            write_csv_files(results, csv_dir, bar_seconds(results))
        except OSError as exc:
            fail("CSV_NOT_WRITTEN", f"Cannot write into {csv_dir}: {exc.strerror or exc}")


def print_outputs(report: Path | None, csv_dir: Path | None) -> None:
    if report is not None:
        out.print(f"Report written to {escape(str(report))}")
    if csv_dir is not None:
        out.print(
            f"CSV files written to {escape(str(csv_dir))}: trades.csv, executions.csv, "
            "equity.csv, stats.csv"
        )


def results_document(results: BacktestResults) -> dict[str, Any]:
    """`run --json`: the results, the session's warnings (synthetic data included) and the
    orders the engine refused."""
    return {
        "session_id": results.session_id,
        "metrics": results.metrics,
        "trades": results.trades,
        "equity_curve": results.equity_curve,
        "executions": results.fills,
        "total_ticks": results.total_ticks,
        "wall_time_ms": results.wall_time_ms,
        "warnings": list(results.warnings),
        "synthetic_symbols": results.synthetic_symbols,
        "rejections": [
            {"order_id": r.order_id, "code": r.code, "message": r.message}
            for r in results.rejections
        ],
    }


def print_warnings(results: BacktestResults) -> None:
    """The session's warnings, as `session create` shows them; synthetic data stands out."""
    for warning in results.warnings:
        synthetic = SYNTHETIC_WARNING in warning
        label = (
            "[bold yellow]synthetic data:[/bold yellow]"
            if synthetic
            else "[yellow]warning:[/yellow]"
        )
        out.print(f"{label} {escape(warning)}", soft_wrap=True)


def print_rejections(results: BacktestResults) -> None:
    refused = results.rejections
    if not refused:
        return
    counts = ", ".join(f"{code} {n}" for code, n in Counter(r.code for r in refused).items())
    out.print(
        f"[bold red]{len(refused)} order{'s' if len(refused) != 1 else ''} refused[/bold red] "
        f"({escape(counts)}):"
    )
    for r in refused[:REJECTIONS_SHOWN]:
        out.print(f"  {escape(r.order_id)} {escape(r.code)}: {escape(r.message)}", soft_wrap=True)
    if len(refused) > REJECTIONS_SHOWN:
        out.print(f"  [dim]… and {len(refused) - REJECTIONS_SHOWN} more; --json lists all[/dim]")


def print_results(results: BacktestResults) -> None:
    print_warnings(results)
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
    print_rejections(results)
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
