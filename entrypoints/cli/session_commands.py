"""`simutrador session create|status|list|delete`: thin commands over the SDK."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
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
    confirm_or_keep,
    key_values,
    out,
    parse_amount,
    print_json,
    with_sessions,
)
from entrypoints.cli.results_view import (
    CsvOption,
    ReportOption,
    check_output_paths,
    print_outputs,
    print_results,
    write_outputs,
)
from entrypoints.sdk import (
    BacktestResults,
    SessionClient,
    SessionData,
    SessionState,
    SimulationResultsData,
)
from entrypoints.sdk.plots import RunInfo

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
        Decimal, typer.Option("--capital", parser=parse_amount, metavar="AMOUNT", help="Cash.")
    ],
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", "-m", metavar="KEY=VALUE", help="A label; may be repeated."),
    ] = None,
    commission: Annotated[
        Decimal | None,
        typer.Option(
            parser=parse_amount,
            metavar="AMOUNT",
            help="Commission per share (per unit for forex and crypto, per contract for "
            "commodities), in the instrument's currency.",
        ),
    ] = None,
    slippage_bps: Annotated[
        Decimal | None,
        typer.Option(parser=parse_amount, metavar="BPS", help="Slippage in basis points."),
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
    labels = key_values(metadata or [], "--metadata")
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
    report: ReportOption = None,
    csv_dir: CsvOption = None,
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Show the results of a completed simulation: metrics, closed trades."""
    check_output_paths(report, csv_dir)

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
        warnings=tuple(session.warnings),
        currency=session.currency,
        run=run_info(session, server_url),
    )
    write_outputs(results, report, csv_dir, f"Session {session_id} on {', '.join(session.symbols)}")
    if as_json:
        print_json(data)
        return
    print_results(results)
    print_outputs(report, csv_dir)


def run_info(session: SessionData, server_url: str) -> RunInfo:
    """What the session was created with, for the report (its strategy ran elsewhere)."""
    settings: dict[str, object] = {
        name: getattr(session, name)
        for name in ("commission_per_share", "commission_pct", "commission_min", "slippage_bps")
        if getattr(session, name)
    }
    if session.max_volume_pct is not None:
        settings["max_volume_pct"] = session.max_volume_pct
    if session.allow_short:
        settings["allow_short"] = True
    return RunInfo(
        strategy=str(session.metadata.get("strategy", "(run by its client)")),
        symbols=tuple(session.symbols),
        start=session.start_date.date().isoformat(),
        end=session.end_date.date().isoformat(),
        timeframe=session.timeframe,
        capital=session.initial_capital,
        engine_settings=settings,
        where=f"on the server {server_url}",
    )


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
    if not yes and not confirm_or_keep(f"Delete session {session_id}?", "Nothing deleted"):
        return
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
        ("capital", _money(session.initial_capital, session.currency)),
        ("commission", _commission(session)),
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
    """Fits 80 columns: the id whole with the symbols under it, the period as its days (the
    range holds whole days, PROTOCOL §4.6), the capital with its currency."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    # Ids are what people copy into the next command: never cut, whatever the width.
    width = max(len(s.session_id) for s in sessions)
    table.add_column("session / symbols", no_wrap=True, min_width=width, max_width=width)
    table.add_column("state", no_wrap=True)
    table.add_column("period", no_wrap=True)
    table.add_column("capital", justify="right", no_wrap=True)
    for s in sessions:
        table.add_row(
            f"{s.session_id}\n[dim]{escape(_abbreviate(s.symbols, width))}[/dim]",
            _state(s.state),
            _days(s.start_date, s.end_date),
            _money(s.initial_capital, s.currency, short=True),
        )
    return table


def _state(state: str) -> str:
    style = STATE_STYLE.get(state, "")
    return f"[{style}]{escape(state)}[/{style}]" if style else escape(state)


def _day(value: datetime) -> str:
    return value.date().isoformat() if value.time() == time.min else _instant(value)


def _instant(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _days(start: datetime, end: datetime) -> str:
    """`2023-01-03..06-30`: the first and last day, the year not repeated."""
    first, last = start.date(), end.date()
    if first == last:
        return first.isoformat()
    shown = last.isoformat()[5:] if first.year == last.year else last.isoformat()
    return f"{first.isoformat()}..{shown}"


def _money(value: Decimal, currency: str, *, short: bool = False) -> str:
    if not currency:  # a server that predates the field
        return f"{value:,}"
    if currency == "mixed":
        return f"{value:,}" if short else f"{value:,} (instruments in several currencies)"
    return f"{value:,} {currency}"


UNITS = {"stock": "share", "forex": "unit", "crypto": "unit", "commodity": "contract"}
"""What a quantity counts, per asset class: commission is charged per one of them."""


def _commission(session: SessionData) -> str:
    unit = UNITS.get(session.asset_class, "share or unit")
    currency = f" {session.currency}" if session.currency not in ("", "mixed") else ""
    parts = [f"{session.commission_per_share}{currency} per {unit}"]
    if session.commission_pct:
        parts.append(f"{session.commission_pct * 100:f}".rstrip("0").rstrip(".") + " % of value")
    if session.commission_min:
        parts.append(f"at least {session.commission_min}{currency} per fill")
    return ", ".join(parts)


def _abbreviate(symbols: list[str], width: int) -> str:
    """As many symbols as fit in `width` characters, then `+N more`."""
    shown = ", ".join(symbols)
    for count in range(len(symbols) - 1, 0, -1):
        if len(shown) <= width:
            break
        shown = ", ".join(symbols[:count]) + f" +{len(symbols) - count} more"
    return shown


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)
