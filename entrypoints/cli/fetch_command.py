"""`simutrador data fetch SYMBOL...`: download daily (or Yahoo's intraday) bars over HTTP and
import them as `data import` does (validation, exact decimals, atomic replace)."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from adapters.bars.csv_import import read_bars
from adapters.bars.download import DownloadError, Source, download
from domain.bars import Timeframe
from domain.errors import DomainError
from entrypoints.cli.common import fail
from entrypoints.cli.data_commands import TimeframeOption, _fail, print_stored, store_bars
from entrypoints.container import Container


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)") from None


def fetch(
    symbols: Annotated[list[str], typer.Argument(help="Symbols of the catalog, e.g. AAPL MSFT.")],
    source: Annotated[Source, typer.Option("--source", help="Where to download from.")],
    start: Annotated[
        date, typer.Option("--start", parser=_day, metavar="YYYY-MM-DD", help="First day.")
    ],
    end: Annotated[
        date,
        typer.Option("--end", parser=_day, metavar="YYYY-MM-DD", help="Last day, inclusive."),
    ],
    timeframe: TimeframeOption = Timeframe.D1,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace stored imported bars that overlap."),
    ] = False,
) -> None:
    """Download bars from Stooq or Yahoo and import them (SIMUTRADOR_STOOQ_URL and
    SIMUTRADOR_YAHOO_URL say where from)."""
    if start > end:
        raise typer.BadParameter(f"--start {start} is after --end {end}", param_hint="--start")
    container = Container()
    settings = container.settings()
    service = container.market_data_service()
    base_url = settings.stooq_url if source is Source.STOOQ else settings.yahoo_url
    wanted = [s.strip() for value in symbols for s in value.split(",") if s.strip()]
    instruments = []
    for raw in wanted:
        instrument = service.instrument(raw)
        if instrument is None:
            fail(
                "INVALID_SYMBOL",
                f"'{raw}' is not in the catalog; add it with `simutrador data import "
                "--asset-class ...` from a file first, or list the known ones with "
                "`simutrador symbols`",
            )
        instruments.append(instrument)
    for instrument in instruments:
        try:
            downloaded = download(source, instrument, start, end, timeframe, base_url)
        except DownloadError as exc:
            fail(exc.code, exc.message)
        with tempfile.TemporaryDirectory(prefix="simutrador-fetch-") as folder:
            path = Path(folder) / f"{instrument.symbol.ticker.replace('/', '-')}.csv"
            path.write_text(downloaded.text, encoding="utf-8")
            try:
                read = read_bars(
                    [path],
                    instrument.symbol.ticker,
                    timeframe,
                    fmt=downloaded.fmt,
                    hours=service.hours(instrument),
                )
            except DomainError as exc:
                _fail(exc)
        stored = store_bars(service, instrument, read.series, replace=replace)
        print_stored("Fetched", read, stored, f" from {source.value}")
