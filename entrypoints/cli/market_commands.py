"""`simutrador symbols`: the instruments a server offers and the bars it holds for each."""

from __future__ import annotations

from typing import Annotated

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
    out,
    print_json,
    with_auth,
)
from entrypoints.sdk import InstrumentData, list_symbols

ASSET_CLASSES = ("stock", "forex", "crypto", "commodity")


def symbols(
    asset_class: Annotated[
        str | None,
        typer.Option(
            "--asset-class", metavar="CLASS", help="Only stock, forex, crypto or commodity."
        ),
    ] = None,
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """List the instruments you can simulate, with the bars the server holds for each."""
    if asset_class is not None and asset_class.lower() not in ASSET_CLASSES:
        raise typer.BadParameter(
            f"{asset_class!r} is not one of {', '.join(ASSET_CLASSES)}",
            param_hint="--asset-class",
        )
    listed = with_auth(
        server_url,
        api_key,
        lambda auth: list_symbols(auth, asset_class and asset_class.lower(), timeout=timeout),
    )
    if as_json:
        print_json(listed)
        return
    out.print(symbols_table(listed))


def symbols_table(listed: list[InstrumentData]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("symbol", no_wrap=True)
    table.add_column("class", no_wrap=True)
    table.add_column("exchange", no_wrap=True)
    table.add_column("ccy", no_wrap=True)
    table.add_column("data", ratio=1)
    for i in listed:
        data = (
            "; ".join(
                f"{c.timeframe} {c.first.date()}→{c.last.date()}"
                + (" [yellow]synthetic[/yellow]" if c.source == "synthetic" else "")
                for c in i.data
            )
            or "[dim]no bars[/dim]"
        )
        table.add_row(escape(i.symbol), i.asset_class, escape(i.exchange), i.currency, data)
    return table
