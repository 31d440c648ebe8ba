"""`simutrador session create|status|list|delete`: thin commands over the SDK."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from entrypoints.cli.common import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    ApiKeyOption,
    JsonOption,
    ServerUrlOption,
    TimeoutOption,
    fail,
    out,
    print_json,
    with_sessions,
)
from entrypoints.cli.results_view import print_results
from entrypoints.report import write_report
from entrypoints.sdk import (
    BacktestResults,
    SessionClient,
    SessionData,
    SessionState,
    SimulationResultsData,
)

session_app = typer.Typer(
    help="Create, inspect, list and delete simulation sessions.", no_args_is_help=True
)

STATE_STYLE = {
    "initializing": "dim",
    "ready": "green",
    "running": "cyan",
    "paused": "yellow",
    "completed": "blue",
    "error": "red",
}


def _amount(value: str) -> Decimal:
    try:
        amount = Decimal(value.replace("_", "").strip())
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise typer.BadParameter(f"{value!r} is not a finite number")
    return amount


def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--metadata")
        metadata[key.strip()] = value
    return metadata


def _symbols(values: list[str]) -> list[str]:
    return [s.strip() for value in values for s in value.split(",") if s.strip()]


SessionIdArgument = Annotated[str, typer.Argument(help="Session id (sess_…).")]


@session_app.command()
def create(
    symbols: Annotated[
        list[str],
        typer.Option("--symbols", "-s", help="Comma-separated symbols; may be repeated."),
    ],
    start: Annotated[str, typer.Option("--start", help="First day (YYYY-MM-DD) or datetime.")],
    end: Annotated[str, typer.Option("--end", help="Last day (YYYY-MM-DD) or datetime.")],
    capital: Annotated[
        Decimal, typer.Option("--capital", parser=_amount, metavar="AMOUNT", help="Cash.")
    ],
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", "-m", metavar="KEY=VALUE", help="A label; may be repeated."),
    ] = None,
    commission: Annotated[
        Decimal | None,
        typer.Option(parser=_amount, metavar="AMOUNT", help="Commission per share."),
    ] = None,
    slippage_bps: Annotated[
        Decimal | None,
        typer.Option(parser=_amount, metavar="BPS", help="Slippage in basis points."),
    ] = None,
    timeframe: Annotated[
        str, typer.Option("--timeframe", "-t", help="Bar length: 1d, 1h, 5m or 1m.")
    ] = "1d",
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Create a session (state `ready`) and print it."""
    labels = _metadata(metadata or [])
    session = with_sessions(
        server_url,
        api_key,
        timeout,
        lambda client: client.create_session(
            _symbols(symbols),
            start,
            end,
            capital,
            labels,
            commission,
            slippage_bps,
            timeframe=timeframe,
        ),
    )
    if as_json:
        print_json(session)
        return
    out.print(f"[green]Created[/green] session [bold]{session.session_id}[/bold]")
    out.print(session_table(session))


@session_app.command()
def status(
    session_id: SessionIdArgument,
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Show one session."""
    session = with_sessions(
        server_url, api_key, timeout, lambda client: client.get_session(session_id)
    )
    if as_json:
        print_json(session)
    else:
        out.print(session_table(session))


@session_app.command("list")
def list_sessions(
    state: Annotated[
        SessionState | None, typer.Option(case_sensitive=False, help="Only this state.")
    ] = None,
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """List your sessions (a JSON array with --json)."""
    sessions = with_sessions(
        server_url, api_key, timeout, lambda client: client.list_sessions(state)
    )
    if as_json:
        print_json(sessions)
    elif not sessions:
        out.print("[dim]No sessions.[/dim]")
    else:
        out.print(sessions_table(sessions))


@session_app.command()
def results(
    session_id: SessionIdArgument,
    report: Annotated[
        Path | None, typer.Option("--report", metavar="FILE.html", help="Write an HTML report.")
    ] = None,
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Show the results of a completed simulation: metrics, closed trades."""

    async def fetch(client: SessionClient) -> tuple[SessionData, SimulationResultsData]:
        return await client.get_session(session_id), await client.get_results(session_id)

    session, data = with_sessions(server_url, api_key, timeout, fetch)
    total = session.progress.total_ticks if session.progress is not None else 0
    results = BacktestResults(
        session_id=data.session_id,
        metrics=data.metrics,
        trades=data.trades,
        equity_curve=data.equity_curve,
        executions=[],
        total_ticks=total,
        wall_time_ms=0,
    )
    if report is not None:
        try:
            write_report(results, report, f"Session {session_id} on {', '.join(session.symbols)}")
        except OSError as exc:
            fail("REPORT_NOT_WRITTEN", f"Cannot write {report}: {exc.strerror or exc}")
    if as_json:
        print_json(data)
        return
    print_results(results)
    if report is not None:
        out.print(f"Report written to {escape(str(report))}")


@session_app.command()
def delete(
    session_id: SessionIdArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Delete a session (asks first unless --yes)."""
    if not yes:
        typer.confirm(f"Delete session {session_id}?", abort=True, err=True)
    deleted = with_sessions(
        server_url, api_key, timeout, lambda client: client.delete_session(session_id)
    )
    if as_json:
        print_json(deleted)
    else:
        out.print(f"[green]Deleted[/green] session {escape(deleted.session_id)}")


# ---------------------------------------------------------------- rendering


def session_table(session: SessionData) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("session", session.session_id),
        ("state", _state(session.state)),
        ("symbols", escape(", ".join(session.symbols))),
        ("period", f"{_day(session.start_date)} → {_day(session.end_date)}"),
        ("timeframe", session.timeframe),
        ("trading days", str(session.estimated_trading_days)),
        ("bars", f"{session.total_bars:,}"),
        ("capital", _money(session.initial_capital)),
        ("commission", f"{session.commission_per_share} per share"),
        ("slippage", f"{session.slippage_bps} bps"),
        ("created", _instant(session.created_at)),
        ("expires", f"{_instant(session.expires_at)} [dim](if idle)[/dim]"),
    ]
    if session.metadata:
        shown = ", ".join(f"{k}={_plain(v)}" for k, v in session.metadata.items())
        rows.append(("metadata", escape(shown)))
    if session.progress is not None:
        p = session.progress
        when = f" at {_instant(p.sim_time)}" if p.sim_time is not None else ""
        share = p.sequence_id / p.total_ticks * 100 if p.total_ticks else 0.0
        rows.append(
            ("progress", f"{p.sequence_id:,} / {p.total_ticks:,} bars ({share:.0f} %){when}")
        )
    if session.error_reason:
        rows.append(("error", f"[red]{escape(session.error_reason)}[/red]"))
    rows.extend(("warning", f"[yellow]{escape(w)}[/yellow]") for w in session.warnings)
    for name, value in rows:
        table.add_row(name, value)
    return table


def sessions_table(sessions: list[SessionData]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    # Ids are what people copy into the next command: never cut, whatever the width.
    table.add_column("session", no_wrap=True, min_width=max(len(s.session_id) for s in sessions))
    table.add_column("state")
    table.add_column("symbols", ratio=1)
    table.add_column("period", min_width=12)
    table.add_column("capital", justify="right", no_wrap=True)
    for s in sessions:
        table.add_row(
            s.session_id,
            _state(s.state),
            escape(_abbreviate(s.symbols)),
            f"{_day(s.start_date)} → {_day(s.end_date)}",
            _money(s.initial_capital),
        )
    return table


def _state(state: str) -> str:
    style = STATE_STYLE.get(state, "")
    return f"[{style}]{escape(state)}[/{style}]" if style else escape(state)


def _day(value: datetime) -> str:
    return value.date().isoformat() if value.time() == time.min else _instant(value)


def _instant(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _money(value: Decimal) -> str:
    return f"{value:,}"


def _abbreviate(symbols: list[str], shown: int = 3) -> str:
    if len(symbols) <= shown:
        return ", ".join(symbols)
    return ", ".join(symbols[:shown]) + f" +{len(symbols) - shown} more"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)
