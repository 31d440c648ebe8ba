"""`simutrador data import|list|remove|sample`: the bars in SIMUTRADOR_HOME, managed directly
(like `keys`, no server needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from adapters.bars.csv_import import ImportFormat, ReadBars, read_bars
from application.bars import MarketDataService
from domain.bars import BarSeries, Coverage, DataSource, Timeframe
from domain.dates import format_instant
from domain.errors import DataConflict, DomainError, InvalidBars, ValidationFailed
from domain.symbols import AssetClass, Instrument, Symbol, canonical_symbol
from entrypoints.cli.common import JsonOption, err, fail, out, print_json
from entrypoints.container import Container

T = TypeVar("T")

data_app = typer.Typer(
    help="Import, list and remove bar data (acts on SIMUTRADOR_HOME directly).",
    no_args_is_help=True,
)

PROGRESS_FROM_BYTES = 4 * 1024 * 1024
SHOWN_PROBLEMS = 20
# Where a symbol new to the catalog trades when --exchange is not given: the exchange whose
# hours the asset class usually keeps (see domain.exchanges).
DEFAULT_EXCHANGE = {
    AssetClass.STOCK: "NYSE",
    AssetClass.FOREX: "FOREX",
    AssetClass.CRYPTO: "CRYPTO",
    AssetClass.COMMODITY: "NYMEX",
}


IMPORT_HELP = (
    "Import bars from CSV files (generic, Yahoo or Stooq layout).\n\n"
    "A generic file has a header naming a time column (timestamp, date, datetime or time) and "
    "open, high, low, close and, optionally, volume; other columns are ignored. Times may be "
    "ISO dates, ISO datetimes (with or without an offset), or epoch seconds or milliseconds."
    "\n\n"
    "A daily bar closes at its exchange's close on the date written. Intraday timestamps are "
    "the bars' START times (as Yahoo and Stooq write them): each bar is stored as closing one "
    "timeframe later.\n\n"
    "Prices and volumes are kept exactly as written. If any line of any file is bad, nothing "
    "is imported and the bad lines are listed."
)


def _timeframe(value: str) -> Timeframe:
    try:
        return Timeframe.parse(value)
    except ValidationFailed as exc:
        raise typer.BadParameter(exc.message) from None


TimeframeOption = Annotated[
    Timeframe,
    typer.Option("--timeframe", "-t", parser=_timeframe, metavar="1d|1h|5m|1m", help="Bar length."),
]


@data_app.command("import", help=IMPORT_HELP)
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV files, read in the order given as one series.",
        ),
    ],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="The symbol the bars are of.")],
    timeframe: TimeframeOption = Timeframe.D1,
    fmt: Annotated[
        ImportFormat,
        typer.Option("--format", help="File layout; auto tells them apart by the header."),
    ] = ImportFormat.AUTO,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            metavar="ZONE",
            help="Zone of intraday times written without an offset "
            "(default: the exchange's, e.g. America/New_York).",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace stored imported bars that overlap (else they refuse the import).",
        ),
    ] = False,
    adjusted: Annotated[
        bool,
        typer.Option(
            "--adjusted",
            help="Yahoo: scale open/high/low/close by Adj Close / Close (6 decimal places).",
        ),
    ] = False,
    asset_class: Annotated[
        AssetClass | None,
        typer.Option("--asset-class", help="Adds a symbol the catalog lacks, as this class."),
    ] = None,
    exchange: Annotated[
        str | None, typer.Option(help="Exchange of a new symbol (sets its close and zone).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of a new symbol.")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of a new symbol.")] = None,
) -> None:
    """Import bars from CSV files (generic, Yahoo or Stooq layout); see IMPORT_HELP."""
    service = Container().market_data_service()
    instrument = service.instrument(symbol)
    is_new = instrument is None
    if instrument is None:
        instrument = _new_instrument(symbol, asset_class, exchange, name, currency)
    read = _run(
        lambda progress: read_bars(
            files,
            instrument.symbol.ticker,
            timeframe,
            fmt=fmt,
            tz=tz,
            hours=service.hours(instrument),
            adjusted=adjusted,
            on_progress=progress,
        ),
        files,
    )

    stored = store_bars(service, instrument, read.series, replace=replace, is_new=is_new)
    print_stored("Imported", read, stored)


@dataclass(frozen=True, slots=True)
class Stored:
    instrument: Instrument
    coverage: Coverage
    added: bool
    replaced_synthetic: bool


def store_bars(
    service: MarketDataService,
    instrument: Instrument,
    series: BarSeries,
    *,
    replace: bool,
    is_new: bool = False,
) -> Stored:
    """Store imported bars (adding the instrument to the user's catalog when new); says
    whether they replaced a synthetic series."""

    async def store() -> Stored:
        before = [
            c
            for c in await service.coverage()
            if c.symbol == series.symbol and c.timeframe is series.timeframe
        ]
        if is_new:
            await service.register_instrument(instrument)
        coverage = await service.import_bars(series, replace=replace)
        synthetic = any(c.source is DataSource.SYNTHETIC for c in before)
        return Stored(instrument, coverage, is_new, synthetic)

    return _call(store)


def print_stored(verb: str, read: ReadBars, stored: Stored, origin: str = "") -> None:
    series, coverage, timeframe = read.series, stored.coverage, read.series.timeframe
    bars = "bar" if len(series) == 1 else "bars"
    notes = []
    if stored.added:
        notes.append(f"added {stored.instrument.symbol} to your catalog")
    if stored.replaced_synthetic:
        notes.append("they replace its synthetic bars")
    if read.skipped_null_rows:
        rows = "row" if read.skipped_null_rows == 1 else "rows"
        notes.append(f"skipped {read.skipped_null_rows:,} `null` {rows} (days without trading)")
    shown = f" ({'; '.join(notes)})" if notes else ""
    out.print(
        f"[green]{verb}[/green] {len(series):,} {timeframe.value} {bars} of "
        f"[bold]{escape(str(stored.instrument.symbol))}[/bold]{escape(origin)}{escape(shown)}; "
        f"stored now: {coverage.bars:,} bars, {_instant(coverage.first, timeframe)} .. "
        f"{_instant(coverage.last, timeframe)}",
        soft_wrap=True,
    )


@data_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List the stored bar series: symbol, timeframe, first and last bar, count, source."""
    stored = _call(lambda: Container().market_data_service().coverage())
    if as_json:
        print_json([_coverage_json(c) for c in stored])
        return
    if not stored:
        out.print("No bars stored. Try `simutrador data sample` or `simutrador data import`.")
        return
    out.print(coverage_table(stored))


@data_app.command()
def remove(
    symbol: Annotated[str, typer.Argument(help="The symbol whose bars to remove.")],
    timeframe: Annotated[
        Timeframe | None,
        typer.Option(
            "--timeframe",
            "-t",
            parser=_timeframe,
            metavar="1d|1h|5m|1m",
            help="Only this timeframe [default: all].",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove the stored bars of a symbol (every timeframe, or one)."""
    what = f"{symbol} {timeframe.value}" if timeframe else f"{symbol} (every timeframe)"
    if not yes and not typer.confirm(f"Remove the bars of {what}?", default=False):
        out.print("Nothing removed")
        return
    removed = _call(lambda: Container().market_data_service().remove(symbol, timeframe))
    if not removed:
        out.print(f"Nothing removed: no bars of {escape(what)} are stored")
        return
    noun = "bar" if removed == 1 else "bars"
    out.print(f"[green]Removed[/green] {removed:,} {noun} of {escape(what)}")


@data_app.command()
def sample(
    symbols: Annotated[
        list[str] | None,
        typer.Option(
            "--symbols", "-s", help="Comma-separated symbols; may be repeated [default: a mix]."
        ),
    ] = None,
    years: Annotated[
        int | None, typer.Option(min=1, help="Only the last N years [default: since 2000].")
    ] = None,
) -> None:
    """Write synthetic daily bars (never over imported ones), to try things without data."""
    chosen = [s.strip() for v in symbols or [] for s in v.split(",") if s.strip()] or None
    written = _call(lambda: Container().market_data_service().seed_sample(chosen, years))
    if not written:
        out.print("Nothing written: those symbols already hold imported daily bars")
        return
    noun = "symbol" if len(written) == 1 else "symbols"
    out.print(f"[green]Wrote[/green] synthetic daily bars for {len(written)} {noun}")
    out.print(coverage_table(written))


def coverage_table(stored: Sequence[Coverage]) -> Table:
    """At most 80 columns wide: dates for daily bars, minutes (UTC) for intraday ones."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("symbol", no_wrap=True)
    table.add_column("tf", no_wrap=True)
    table.add_column("first (UTC)", no_wrap=True)
    table.add_column("last (UTC)", no_wrap=True)
    table.add_column("bars", justify="right", no_wrap=True)
    table.add_column("source", no_wrap=True)
    for c in stored:
        source = c.source.value
        table.add_row(
            escape(c.symbol),
            c.timeframe.value,
            _instant(c.first, c.timeframe),
            _instant(c.last, c.timeframe),
            f"{c.bars:,}",
            f"[yellow]{source}[/yellow]" if source == "synthetic" else source,
        )
    return table


def _instant(value: Any, timeframe: Timeframe) -> str:
    shown = format_instant(value)
    return shown[:10] if timeframe is Timeframe.D1 else shown[:16].replace("T", " ")


def _coverage_json(c: Coverage) -> dict[str, Any]:
    return {
        "symbol": c.symbol,
        "timeframe": c.timeframe.value,
        "first": format_instant(c.first),
        "last": format_instant(c.last),
        "bars": c.bars,
        "source": c.source.value,
    }


def _new_instrument(
    raw: str,
    asset_class: AssetClass | None,
    exchange: str | None,
    name: str | None,
    currency: str | None,
) -> Instrument:
    if asset_class is None:
        fail(
            "INVALID_SYMBOL",
            f"'{raw}' is not in the catalog. To add it, pass --asset-class "
            "(stock, forex, crypto or commodity), and optionally --exchange, --name and "
            "--currency.",
        )
    ticker = canonical_symbol(raw, asset_class)
    if ticker is None:
        fail("VALIDATION_FAILED", f"'{raw}' is not a valid {asset_class.value} symbol")
    quote = ticker.replace("-", "/").rpartition("/")[2]
    default_currency = quote if asset_class in (AssetClass.FOREX, AssetClass.CRYPTO) else "USD"
    return Instrument(
        symbol=Symbol(ticker, asset_class),
        name=name or ticker,
        exchange=(exchange or DEFAULT_EXCHANGE[asset_class]).upper(),
        currency=(currency or default_currency).upper(),
    )


def _run(read: Callable[[Callable[[int], None] | None], T], files: Sequence[Path]) -> T:
    """`read` with a progress bar on stderr when the files are big enough to wait for."""
    total = sum(p.stat().st_size for p in files)
    try:
        if total < PROGRESS_FROM_BYTES:
            return read(None)
        with Progress(
            TextColumn("reading"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("reading", total=total)
            return read(lambda n: progress.advance(task, n))
    except DomainError as exc:
        _fail(exc)


def _call(action: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one use case (a coroutine function); a DomainError exits 1 as `CODE: message`."""
    try:
        return asyncio.run(action())
    except DomainError as exc:
        _fail(exc)


def _fail(exc: DomainError) -> NoReturn:
    if isinstance(exc, DataConflict) and "replace them explicitly" in exc.message:
        message = exc.message.replace(
            "replace them explicitly to overwrite", "pass --replace to overwrite them"
        )
        fail(exc.code, message, exc.details)
    if not isinstance(exc, InvalidBars):
        fail(exc.code, exc.message, exc.details)
    err.print(f"[bold red]{escape(exc.code)}[/bold red]: {escape(exc.message)}", soft_wrap=True)
    problems: list[dict[str, Any]] = exc.details.get("problems", [])
    for p in problems[:SHOWN_PROBLEMS]:
        if "file" in p:
            where = f"{p['file']}:{p['line']}"
        else:  # from the service: a bar of the series, not a line of a file
            where = f"bar {p.get('index')} ({p.get('time')})"
        err.print(f"  {escape(where)}: {escape(str(p['reason']))}", soft_wrap=True)
    count = int(exc.details.get("count", len(problems)))
    if count > len(problems[:SHOWN_PROBLEMS]):
        err.print(f"  … and {count - len(problems[:SHOWN_PROBLEMS])} more")
    raise typer.Exit(1)
