"""Checks a request against the catalog and the bars actually stored: symbols, timeframe,
date range, trading days and bar counts."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from application.ports import NO_METRICS, BarStore, Clock, ServiceMetrics, SymbolCatalog
from domain.bars import Coverage, Timeframe, union_times
from domain.calendar import count_trading_days
from domain.dates import DateRange
from domain.errors import DomainError, InvalidDateRange, InvalidSymbol
from domain.exchanges import hours_of, trading_day_bounds
from domain.symbols import (
    AssetClass,
    Instrument,
    Symbol,
    alias_warnings,
    duplicates_error,
    symbol_key,
)
from domain.validation import ValidationResult, check_coverage

SHORT_RANGE_TRADING_DAYS = 5


@dataclass(frozen=True, slots=True)
class MarketCheck:
    """What the catalog and the store say about a (symbols, timeframe, range) request."""

    instruments: tuple[Instrument, ...]
    result: ValidationResult
    estimated_trading_days: int = 0
    total_bars: int = 0
    by_asset_class: Mapping[AssetClass, tuple[Symbol, ...]] = field(default_factory=dict)

    @property
    def symbols(self) -> tuple[Symbol, ...]:
        return tuple(i.symbol for i in self.instruments)


def coverage_index(coverage: Sequence[Coverage]) -> dict[tuple[str, Timeframe], Coverage]:
    return {(c.symbol, c.timeframe): c for c in coverage}


class MarketDataValidator:
    """Validates symbols and ranges against a `SymbolCatalog` and a `BarStore`. Results are
    cached (bounded LRU with a TTL) by normalised input, since clients repeat the same
    universe often; the cache is dropped whenever the store's coverage changes, so an
    import is seen at once."""

    def __init__(
        self,
        catalog: SymbolCatalog,
        store: BarStore,
        clock: Clock,
        cache_size: int = 4096,
        cache_ttl_seconds: float = 300.0,
        metrics: ServiceMetrics = NO_METRICS,
    ) -> None:
        self._catalog = catalog
        self._metrics = metrics
        self._store = store
        self._clock = clock
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl_seconds
        self._cache: OrderedDict[tuple[object, ...], tuple[float, MarketCheck]] = OrderedDict()
        self._cache_coverage: Sequence[Coverage] | None = None
        self._lock = threading.Lock()

    def resolve(self, raw_symbols: Sequence[str]) -> tuple[tuple[Instrument, ...], list[str]]:
        """Instruments for the known symbols, in request order, and the unknown ones."""
        found: list[Instrument] = []
        unknown: list[str] = []
        for raw in raw_symbols:
            key = symbol_key(raw)
            instrument = self._catalog.lookup(key) if key is not None else None
            if instrument is None:
                unknown.append(raw)
            else:
                found.append(instrument)
        return tuple(found), unknown

    def validate_symbols(self, raw_symbols: Sequence[str]) -> MarketCheck:
        instruments, unknown = self.resolve(raw_symbols)
        errors: list[DomainError] = []
        if unknown:
            errors.append(InvalidSymbol(unknown, self._catalog.markets()))
        duplicates = duplicates_error(raw_symbols)
        if duplicates is not None:
            errors.append(duplicates)
        return MarketCheck(
            instruments,
            ValidationResult(tuple(errors)),
            by_asset_class=group_by_asset_class(instruments),
        )

    async def validate(
        self,
        raw_symbols: Sequence[str],
        date_range: DateRange,
        timeframe: Timeframe = Timeframe.D1,
    ) -> MarketCheck:
        """Symbols, timeframe and range together; the cached entry point of session creation.
        A symbol written otherwise than its canonical form gets a warning saying what it
        became (not cached: `BTC/USD` and `BTC-USD` share one cache entry)."""
        check = await self._validate_cached(raw_symbols, date_range, timeframe)
        if not check.result.valid:
            return check
        notes = alias_warnings(raw_symbols, check.symbols)
        if not notes:
            return check
        result = ValidationResult(check.result.errors, (*notes, *check.result.warnings))
        return dataclasses.replace(check, result=result)

    async def _validate_cached(
        self, raw_symbols: Sequence[str], date_range: DateRange, timeframe: Timeframe
    ) -> MarketCheck:
        coverage = await self._store.coverage()
        cache_key = (
            tuple(symbol_key(s) or s for s in raw_symbols),
            date_range.start,
            date_range.end,
            timeframe,
        )
        now = self._clock.monotonic()
        with self._lock:
            if coverage is not self._cache_coverage:
                self._cache.clear()
                self._cache_coverage = coverage
            hit = self._cache.get(cache_key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(cache_key)
                self._metrics.validation_cache(hit=True)
                return hit[1]
        self._metrics.validation_cache(hit=False)
        check = await self._validate_uncached(raw_symbols, date_range, timeframe, coverage)
        with self._lock:
            if coverage is self._cache_coverage:
                self._cache[cache_key] = (now + self._cache_ttl, check)
                self._cache.move_to_end(cache_key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return check

    async def _validate_uncached(
        self,
        raw_symbols: Sequence[str],
        date_range: DateRange,
        timeframe: Timeframe,
        coverage: Sequence[Coverage],
    ) -> MarketCheck:
        symbols_check = self.validate_symbols(raw_symbols)
        if not symbols_check.result.valid:
            return symbols_check
        stored = coverage_index(coverage)
        errors: list[DomainError] = []
        warnings: list[str] = []
        for instrument in symbols_check.instruments:
            found = stored.get((instrument.symbol.ticker, timeframe))
            error, notes = check_coverage(instrument, timeframe, found, date_range)
            if error is not None:
                errors.append(error)
            warnings.extend(notes)
        if errors:
            return MarketCheck(
                symbols_check.instruments,
                ValidationResult(tuple(errors), tuple(warnings)),
                by_asset_class=symbols_check.by_asset_class,
            )
        days, bars = await self._count(symbols_check.instruments, date_range, timeframe)
        if days == 0:
            errors.append(no_bars_error(date_range, timeframe, symbols_check.instruments))
        elif days < SHORT_RANGE_TRADING_DAYS:
            warnings.append(
                f"Very short range: {days} trading day{'s' if days != 1 else ''}; "
                "metrics will not be meaningful"
            )
        return MarketCheck(
            symbols_check.instruments,
            ValidationResult(tuple(errors), tuple(warnings)),
            days,
            bars,
            symbols_check.by_asset_class,
        )

    async def _count(
        self, instruments: Sequence[Instrument], date_range: DateRange, timeframe: Timeframe
    ) -> tuple[int, int]:
        """(trading days, ticks) the session will step through, from the stored bars: ticks
        are the distinct bar closes of all its symbols; days, for daily bars, the busiest
        symbol's bar count, and for intraday bars its trading days inside the coverage."""
        bounds = {
            i.symbol.ticker: trading_day_bounds(
                date_range.first_day, date_range.last_day, hours_of(i)
            )
            for i in instruments
        }
        lo = min(b[0] for b in bounds.values())
        hi = max(b[1] for b in bounds.values())
        series = await self._store.read(list(bounds), timeframe, lo, hi)
        in_range = [series[t].between(*bounds[t]) for t in bounds]
        ticks = len(union_times(in_range))
        if not timeframe.is_intraday:
            return max(len(s) for s in in_range), ticks
        days = 0
        for instrument, bars in zip(instruments, in_range, strict=True):
            if bars:
                days = max(
                    days,
                    count_trading_days(
                        bars.bar(0).time.date(),
                        bars.bar(len(bars) - 1).time.date(),
                        instrument.symbol.asset_class.calendar,
                    ),
                )
        return days, ticks

    def supported_symbols(self, asset_class: AssetClass | None = None) -> list[Symbol]:
        return [
            i.symbol
            for i in self._catalog.instruments()
            if asset_class is None or i.symbol.asset_class is asset_class
        ]


def no_bars_error(
    date_range: DateRange, timeframe: Timeframe, instruments: Sequence[Instrument] = ()
) -> DomainError:
    """No bar of any symbol in the range: say whether the range holds no trading day at all
    (a weekend, a holiday) or the data has a gap there."""
    first, last = date_range.first_day, date_range.last_day
    span = f"{first}" if first == last else f"{first}..{last}"
    calendars = {i.symbol.asset_class.calendar for i in instruments}
    if calendars and not any(count_trading_days(first, last, c) for c in calendars):
        reason = "no_trading_day"
        message = (
            f"{span} holds no trading day of {', '.join(i.symbol.ticker for i in instruments)} "
            "(weekends and exchange holidays have no bars); choose a range with a trading day"
        )
    else:
        reason = "no_bars"
        message = f"No {timeframe.value} bar is stored for {span} (the data has a gap there)"
    return InvalidDateRange(
        message,
        {
            "field": "start_date",
            "fields": ["start_date", "end_date"],
            "reason": reason,
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
        },
    )


def group_by_asset_class(
    instruments: Sequence[Instrument],
) -> dict[AssetClass, tuple[Symbol, ...]]:
    groups: dict[AssetClass, list[Symbol]] = {}
    for instrument in instruments:
        groups.setdefault(instrument.symbol.asset_class, []).append(instrument.symbol)
    return {cls: tuple(symbols) for cls, symbols in groups.items()}
