"""Checks a request against the market-data catalog: symbols, date ranges, trading days."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from application.ports import Clock, SymbolCatalog
from domain.calendar import count_trading_days
from domain.dates import DateRange
from domain.errors import DomainError, InvalidSymbol
from domain.symbols import AssetClass, Instrument, Symbol, duplicates_error, symbol_key
from domain.validation import ValidationResult, check_availability

SHORT_RANGE_TRADING_DAYS = 5


@dataclass(frozen=True, slots=True)
class MarketCheck:
    """What the catalog says about a (symbols, date range) request."""

    instruments: tuple[Instrument, ...]
    result: ValidationResult
    estimated_trading_days: int = 0
    by_asset_class: Mapping[AssetClass, tuple[Symbol, ...]] = field(default_factory=dict)

    @property
    def symbols(self) -> tuple[Symbol, ...]:
        return tuple(i.symbol for i in self.instruments)


class MarketDataValidator:
    """Validates symbols and ranges against a `SymbolCatalog`; results are cached (bounded
    LRU with a TTL) by normalised input, since clients repeat the same universe often."""

    def __init__(
        self,
        catalog: SymbolCatalog,
        clock: Clock,
        cache_size: int = 4096,
        cache_ttl_seconds: float = 300.0,
    ) -> None:
        self._catalog = catalog
        self._clock = clock
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl_seconds
        self._cache: OrderedDict[tuple[object, ...], tuple[float, MarketCheck]] = OrderedDict()
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

    def validate(self, raw_symbols: Sequence[str], date_range: DateRange) -> MarketCheck:
        """Symbols and range together; the cached entry point used by session creation."""
        cache_key = (
            tuple(symbol_key(s) or s for s in raw_symbols),
            date_range.start,
            date_range.end,
        )
        now = self._clock.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(cache_key)
                return hit[1]
        check = self._validate_uncached(raw_symbols, date_range)
        with self._lock:
            self._cache[cache_key] = (now + self._cache_ttl, check)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return check

    def _validate_uncached(self, raw_symbols: Sequence[str], date_range: DateRange) -> MarketCheck:
        symbols_check = self.validate_symbols(raw_symbols)
        if not symbols_check.result.valid:
            return symbols_check
        errors: list[DomainError] = []
        warnings: list[str] = []
        for instrument in symbols_check.instruments:
            error, warning = check_availability(instrument, date_range)
            if error is not None:
                errors.append(error)
            if warning is not None:
                warnings.append(warning)
        days = estimate_trading_days(symbols_check.instruments, date_range)
        if not errors and days < SHORT_RANGE_TRADING_DAYS:
            warnings.append(
                f"Very short range: about {days} trading day{'s' if days != 1 else ''}; "
                "metrics will not be meaningful"
            )
        return MarketCheck(
            symbols_check.instruments,
            ValidationResult(tuple(errors), tuple(warnings)),
            days,
            symbols_check.by_asset_class,
        )

    def supported_symbols(self, asset_class: AssetClass | None = None) -> list[Symbol]:
        return [
            i.symbol
            for i in self._catalog.instruments()
            if asset_class is None or i.symbol.asset_class is asset_class
        ]

    def available_range(self, raw_symbol: str) -> tuple[date, date] | None:
        key = symbol_key(raw_symbol)
        instrument = self._catalog.lookup(key) if key is not None else None
        if instrument is None:
            return None
        return instrument.available_from, instrument.available_to


def group_by_asset_class(
    instruments: Sequence[Instrument],
) -> dict[AssetClass, tuple[Symbol, ...]]:
    groups: dict[AssetClass, list[Symbol]] = {}
    for instrument in instruments:
        groups.setdefault(instrument.symbol.asset_class, []).append(instrument.symbol)
    return {cls: tuple(symbols) for cls, symbols in groups.items()}


def estimate_trading_days(instruments: Sequence[Instrument], date_range: DateRange) -> int:
    """Bars the session will step through: the busiest instrument's trading days in range
    (weekdays less exchange holidays for equities, 5-day weeks for forex and futures, every
    day for crypto), counted from its first available day."""
    best = 0
    for instrument in instruments:
        first = max(date_range.first_day, instrument.available_from)
        last = min(date_range.last_day, instrument.available_to)
        calendar = instrument.symbol.asset_class.calendar
        best = max(best, count_trading_days(first, last, calendar))
    return best
