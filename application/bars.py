"""Market-data use cases: import a user's bars, list and remove what is stored, seed the
synthetic sample, and describe instruments with their coverage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from application.ports import BarGenerator, BarStore, Clock, SymbolCatalog
from domain.bars import BarSeries, Coverage, DataSource, Timeframe, from_epoch
from domain.errors import InvalidBars, InvalidSymbol, ValidationFailed
from domain.exchanges import ExchangeHours, hours_of, trading_day_bounds
from domain.session import SimulationSession
from domain.symbols import AssetClass, Instrument, symbol_key

SAMPLE_SYMBOLS = ("AAPL", "MSFT", "GOOGL", "JPM", "EUR/USD", "BTC-USD")
SAMPLE_START = date(2000, 1, 3)
"""Synthetic walks all start here (or at the listing date), so a symbol's sample is the same
on every machine whatever span is asked for."""
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class InstrumentCoverage:
    instrument: Instrument
    data: tuple[Coverage, ...]


class MarketDataService:
    """What a user or an operator does with the bar store."""

    def __init__(
        self,
        store: BarStore,
        catalog: SymbolCatalog,
        generator: BarGenerator,
        clock: Clock,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._generator = generator
        self._clock = clock

    def instrument(self, raw_symbol: str) -> Instrument | None:
        key = symbol_key(raw_symbol)
        return self._catalog.lookup(key) if key is not None else None

    def hours(self, instrument: Instrument) -> ExchangeHours:
        return hours_of(instrument)

    async def register_instrument(self, instrument: Instrument) -> Instrument:
        """Add a symbol the catalog lacks to the user's own catalog."""
        existing = self._catalog.lookup(instrument.key)
        if existing is not None:
            raise ValidationFailed(
                "symbol",
                f"{existing.symbol} is already in the catalog",
                symbol=existing.symbol.ticker,
            )
        self._catalog.add(instrument)
        return instrument

    async def import_bars(self, series: BarSeries, *, replace: bool) -> Coverage:
        """Store a user's bars. Any bar breaking PROTOCOL.md §5 refuses the whole set."""
        problems = series.problems()
        if problems:
            raise InvalidBars(
                f"{len(problems)} bar{'s' if len(problems) != 1 else ''} of {series.symbol} "
                "break the bar rules; nothing was written",
                {
                    "problems": [
                        {
                            "index": i,
                            "time": from_epoch(series.times[i]).isoformat(),
                            "reason": reason,
                        }
                        for i, reason in problems[:MAX_PROBLEMS_SHOWN]
                    ],
                    "count": len(problems),
                },
            )
        return await self._store.write(series, DataSource.IMPORTED, replace=replace)

    async def coverage(self) -> Sequence[Coverage]:
        return await self._store.coverage()

    async def remove(self, raw_symbol: str, timeframe: Timeframe | None = None) -> int:
        instrument = self.instrument(raw_symbol)
        ticker = instrument.symbol.ticker if instrument is not None else raw_symbol
        return await self._store.remove(ticker, timeframe)

    async def seed_sample(
        self, symbols: Sequence[str] | None = None, years: int | None = None
    ) -> list[Coverage]:
        """Synthetic daily bars up to the end of last year (the last `years` of them, when
        given) for each symbol that has no imported daily bars."""
        if years is not None and years < 1:
            raise ValidationFailed("years", "years must be at least 1", value=years)
        instruments, unknown = [], []
        for raw in symbols or SAMPLE_SYMBOLS:
            found = self.instrument(raw)
            if found is None:
                unknown.append(raw)
            else:
                instruments.append(found)
        if unknown:
            raise InvalidSymbol(unknown, self._catalog.markets())
        stored = {(c.symbol, c.timeframe): c for c in await self._store.coverage()}
        last = date(self._clock.now().year - 1, 12, 31)
        written: list[Coverage] = []
        for instrument in instruments:
            existing = stored.get((instrument.symbol.ticker, Timeframe.D1))
            if existing is not None and existing.source is DataSource.IMPORTED:
                continue
            first = max(SAMPLE_START, instrument.listed or SAMPLE_START)
            series = self._generator.generate(instrument, first, last)
            if years is not None:
                since, _ = trading_day_bounds(
                    date(last.year - years + 1, 1, 1), last, hours_of(instrument)
                )
                series = series.between(since, series.times[-1])
            if existing is not None:  # a sample again: start from a clean series
                await self._store.remove(instrument.symbol.ticker, Timeframe.D1)
            written.append(await self._store.write(series, DataSource.SYNTHETIC, replace=True))
        return written

    async def seed_sample_if_empty(self) -> list[Coverage]:
        """The default sample, on a store that holds no bar at all (a fresh home)."""
        if await self._store.coverage():
            return []
        return await self.seed_sample()

    async def session_bars(self, session: SimulationSession) -> dict[str, BarSeries]:
        """The stored bars a session trades over (its symbols, timeframe and trading days),
        as stored now: for charts of its prices. A symbol the catalog lost maps to an empty
        series."""
        found: dict[str, BarSeries] = {}
        for symbol in session.symbols:
            ticker = symbol.ticker
            instrument = self.instrument(ticker)
            if instrument is None:
                found[ticker] = BarSeries.empty(ticker, session.timeframe)
                continue
            first, last = trading_day_bounds(
                session.date_range.first_day, session.date_range.last_day, hours_of(instrument)
            )
            read = await self._store.read([ticker], session.timeframe, first, last)
            found[ticker] = read[ticker]
        return found

    async def instruments(self, asset_class: AssetClass | None = None) -> list[InstrumentCoverage]:
        by_symbol: dict[str, list[Coverage]] = {}
        for c in await self._store.coverage():
            by_symbol.setdefault(c.symbol, []).append(c)
        return [
            InstrumentCoverage(i, tuple(by_symbol.get(i.symbol.ticker, ())))
            for i in self._catalog.instruments()
            if asset_class is None or i.symbol.asset_class is asset_class
        ]
