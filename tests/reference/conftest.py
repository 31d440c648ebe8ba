"""Fixtures for checking SimuTrador against the field's reference libraries."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import backtesting
import pytest

from domain.bars import Bar, BarSeries, Timeframe
from domain.exchanges import daily_close, exchange_hours
from domain.symbols import AssetClass, Instrument, Symbol
from entrypoints.container import Container

GOOG_CSV = Path(backtesting.__file__).parent / "test" / "GOOG.csv"
GOOG = Instrument(Symbol("GOOG", AssetClass.STOCK), "Alphabet Inc. Class C", "NASDAQ")


def read_goog() -> BarSeries:
    """backtesting.py's bundled GOOG daily bars, exactly as its CSV writes them."""
    hours = exchange_hours("NASDAQ", AssetClass.STOCK)
    with GOOG_CSV.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    bars = [
        Bar(
            daily_close(date.fromisoformat(day), hours),
            Decimal(o),
            Decimal(h),
            Decimal(lo),
            Decimal(c),
            Decimal(v),
        )
        for day, o, h, lo, c, v in rows
    ]
    return BarSeries.from_bars("GOOG", Timeframe.D1, bars)


@pytest.fixture(scope="module")
def goog_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SIMUTRADOR_HOME whose bar store holds GOOG (imported) and nothing else."""
    home = tmp_path_factory.mktemp("goog-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIMUTRADOR_HOME", str(home))
        container = Container()
        service = container.market_data_service()
        asyncio.run(service.register_instrument(GOOG))
        asyncio.run(service.import_bars(read_goog(), replace=False))
        yield home
