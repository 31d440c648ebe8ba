"""What `run` and `optimize` share: the options that say what to run (strategy file,
symbols, range, cash, engine settings) and loading the strategy from its file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from entrypoints.cli.common import fail, parse_amount
from entrypoints.sdk import SimuTradorError, Strategy
from entrypoints.sdk.loading import load_strategy

FileArgument = Annotated[Path, typer.Argument(help="Python file defining a Strategy subclass.")]
SymbolsOption = Annotated[
    str, typer.Option("--symbols", "-s", help="Comma-separated symbols, e.g. AAPL,MSFT.")
]
StartOption = Annotated[str, typer.Option("--start", help="First day (YYYY-MM-DD).")]
EndOption = Annotated[str, typer.Option("--end", help="Last day, inclusive (YYYY-MM-DD).")]
CapitalOption = Annotated[
    Decimal, typer.Option("--capital", parser=parse_amount, metavar="AMOUNT", help="Cash.")
]
StrategyOption = Annotated[
    str | None,
    typer.Option("--strategy", help="Class to run, when the file defines several."),
]
TimeframeOption = Annotated[
    str, typer.Option("--timeframe", "-t", help="Bar length: 1d, 1h, 5m or 1m.")
]
CommissionPerShareOption = Annotated[
    Decimal | None,
    typer.Option(parser=parse_amount, metavar="AMOUNT", help="Commission per share or unit."),
]
CommissionPctOption = Annotated[
    Decimal | None,
    typer.Option(parser=parse_amount, metavar="FRACTION", help="Commission, e.g. 0.001 = 0.1 %."),
]
CommissionMinOption = Annotated[
    Decimal | None,
    typer.Option(parser=parse_amount, metavar="AMOUNT", help="Minimum commission per fill."),
]
SlippageOption = Annotated[
    Decimal | None,
    typer.Option(parser=parse_amount, metavar="BPS", help="Slippage in basis points."),
]
MaxVolumeOption = Annotated[
    Decimal | None,
    typer.Option(parser=parse_amount, metavar="FRACTION", help="Most of a bar's volume to take."),
]
AllowShortOption = Annotated[
    bool, typer.Option("--allow-short", help="Allow short selling.", show_default=False)
]
WarmupOption = Annotated[
    int, typer.Option(min=0, metavar="BARS", help="Bars before --start the strategy may read.")
]


def symbols_of(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def strategy_class(file: Path, name: str | None) -> type[Strategy]:
    """The strategy the file defines, or `CODE: message` and exit 1."""
    try:
        return load_strategy(file, name)
    except SimuTradorError as exc:
        fail(exc.code, exc.message)
