"""A read-only `BarStore` over bars already in memory: what a sweep's worker process runs
its trials on, so that the bars are read (or received) once per worker, not per trial."""

from __future__ import annotations

from collections.abc import Sequence

from application.sweeps.bars import BarSnapshot
from domain.bars import BarSeries, Coverage, DataSource, Timeframe


class ReadOnlyBarStore(Exception):
    """A sweep worker's bars are a snapshot: nothing writes to them."""


class SnapshotBarStore:
    """`BarStore` answering from a `BarSnapshot`."""

    def __init__(self, snapshot: BarSnapshot) -> None:
        self._snapshot = snapshot

    async def coverage(self) -> Sequence[Coverage]:
        return self._snapshot.coverage

    async def read(
        self, symbols: Sequence[str], timeframe: Timeframe, first: int, last: int
    ) -> dict[str, BarSeries]:
        found = {}
        for symbol in symbols:
            series = self._snapshot.series.get((symbol, timeframe))
            found[symbol] = (
                series.between(first, last)
                if series is not None
                else BarSeries.empty(symbol, timeframe)
            )
        return found

    async def write(self, series: BarSeries, source: DataSource, *, replace: bool) -> Coverage:
        raise ReadOnlyBarStore("a sweep worker's bars are read-only")

    async def remove(self, symbol: str, timeframe: Timeframe | None = None) -> int:
        raise ReadOnlyBarStore("a sweep worker's bars are read-only")
