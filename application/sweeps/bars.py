"""The bars a sweep's trials share: read once from the bar store by the process that plans
the sweep, then handed to each worker (or put in a cluster's object store) once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from application.ports import BarStore, SymbolCatalog
from domain.bars import BarSeries, Coverage, Timeframe, epoch_seconds
from domain.symbols import symbol_key


@dataclass(frozen=True, slots=True)
class BarSnapshot:
    """The series of some symbols at one timeframe, and what the store said it held."""

    coverage: tuple[Coverage, ...]
    series: Mapping[tuple[str, Timeframe], BarSeries]

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.series.values())


async def snapshot_bars(
    store: BarStore, catalog: SymbolCatalog, symbols: Sequence[str], timeframe: Timeframe
) -> BarSnapshot:
    """Every stored bar of `symbols` at `timeframe` (an unknown symbol is left out: the
    first trial reports it, typed, as a single run would)."""
    coverage = tuple(await store.coverage())
    held = {c.symbol: c for c in coverage if c.timeframe is timeframe}
    series: dict[tuple[str, Timeframe], BarSeries] = {}
    for raw in symbols:
        key = symbol_key(raw)
        instrument = catalog.lookup(key) if key is not None else None
        ticker = instrument.symbol.ticker if instrument is not None else raw
        span = held.get(ticker)
        if span is None:
            continue
        found = await store.read(
            [ticker], timeframe, epoch_seconds(span.first), epoch_seconds(span.last)
        )
        series[(ticker, timeframe)] = found[ticker]
    return BarSnapshot(coverage, series)
