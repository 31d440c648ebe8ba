"""Validation rules as pure functions over session parameters, plan limits and policy."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.bars import Coverage, DataSource, Timeframe, epoch_seconds
from domain.calendar import count_trading_days
from domain.dates import DateRange
from domain.errors import (
    DataUnavailable,
    DomainError,
    ExcessiveCapital,
    InsufficientCapital,
    InvalidDateRange,
    MissingSymbols,
    TooManySymbols,
    ValidationFailed,
)
from domain.exchanges import hours_of, trading_day, trading_day_bounds
from domain.limits import Limits, SessionPolicy
from domain.session import SessionParams
from domain.symbols import Instrument

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome of checking a request: errors make it invalid, warnings only inform."""

    errors: tuple[DomainError, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


def parse_capital(value: Decimal | str | int | float) -> Decimal:
    """A money amount from the wire: finite, non-negative, at most two decimal places."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationFailed(
            "initial_capital", f"initial_capital '{value}' is not a number", value=str(value)
        ) from None
    if not amount.is_finite():
        raise ValidationFailed(
            "initial_capital", "initial_capital must be a finite number", value=str(value)
        )
    try:
        cents = amount.quantize(CENT, rounding="ROUND_DOWN")
    except InvalidOperation:
        # More digits than the decimal context holds (e.g. 1e30): far above any capital
        # limit, so return it as is and let check_capital refuse it with EXCESSIVE_CAPITAL.
        return amount
    if amount != cents:
        raise ValidationFailed(
            "initial_capital",
            "initial_capital has at most two decimal places",
            value=str(value),
        )
    return cents


def check_capital(capital: Decimal, policy: SessionPolicy) -> None:
    if capital < policy.min_capital:
        raise InsufficientCapital(str(capital), str(policy.min_capital))
    if capital > policy.max_capital:
        raise ExcessiveCapital(str(capital), str(policy.max_capital))


def check_symbol_count(symbols: Sequence[str], limits: Limits) -> None:
    if not symbols:
        raise MissingSymbols()
    if len(symbols) > limits.max_symbols:
        raise TooManySymbols(len(symbols), limits.max_symbols)


def check_range_length(date_range: DateRange, policy: SessionPolicy) -> None:
    if date_range.days > policy.max_range_days:
        raise InvalidDateRange(
            f"The date range spans {date_range.days} days; at most "
            f"{policy.max_range_days} are allowed",
            {"field": "end_date", "days": date_range.days, "max_days": policy.max_range_days},
        )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels in `value`. Descends at most `limit`
    levels, so hostile nesting cannot exhaust the interpreter's recursion limit."""
    if isinstance(value, Mapping):
        children: Iterable[Any] = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return False
    return limit <= 0 or any(_deeper_than(v, limit - 1) for v in children)


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_json_safe(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def check_metadata(metadata: Mapping[str, Any], policy: SessionPolicy) -> None:
    """Metadata is the user's free-form JSON object: bounded in size and depth."""
    if not metadata:
        return
    # Depth first: it is bounded, and it bounds the recursion of _json_safe below.
    if _deeper_than(metadata, policy.max_metadata_depth):
        raise ValidationFailed(
            "metadata",
            f"metadata is nested deeper than {policy.max_metadata_depth} levels",
            max_depth=policy.max_metadata_depth,
        )
    if not _json_safe(metadata):
        raise ValidationFailed("metadata", "metadata must be a JSON object of plain values")
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > policy.max_metadata_bytes:
        raise ValidationFailed(
            "metadata",
            f"metadata is {size} bytes encoded; at most {policy.max_metadata_bytes} are allowed",
            size=size,
            max_bytes=policy.max_metadata_bytes,
        )


def check_params(params: SessionParams, limits: Limits, policy: SessionPolicy) -> None:
    """Every rule that needs no market data, cheapest first; raises the first violation."""
    check_symbol_count(params.symbols, limits)
    check_capital(params.initial_capital, policy)
    check_range_length(params.date_range, policy)
    check_metadata(params.metadata, policy)


def check_coverage(
    instrument: Instrument,
    timeframe: Timeframe,
    coverage: Coverage | None,
    date_range: DateRange,
) -> tuple[DomainError | None, list[str]]:
    """Whether the stored bars of `instrument` serve the range: (error, warnings).

    No bar at all is DATA_UNAVAILABLE; bars that miss the range entirely are
    INVALID_DATE_RANGE with the real coverage; a range that starts before the first bar or
    ends after the last one runs on what exists, with a warning."""
    ticker = instrument.symbol.ticker
    if coverage is None:
        return DataUnavailable(ticker, timeframe.value), []
    hours = hours_of(instrument)
    first, last = date_range.first_day, date_range.last_day
    lo, hi = trading_day_bounds(first, last, hours)
    data_first = trading_day(epoch_seconds(coverage.first), hours)
    data_last = trading_day(epoch_seconds(coverage.last), hours)
    if hi < epoch_seconds(coverage.first) or lo > epoch_seconds(coverage.last):
        before = hi < epoch_seconds(coverage.first)
        return (
            InvalidDateRange(
                f"The range {first}..{last} lies entirely {'before' if before else 'after'} "
                f"{ticker}'s {timeframe.value} bars, which run from {data_first} to {data_last}: "
                "both start_date and end_date are outside the data",
                {
                    # `field` is the one end whose move alone would reach the data; both
                    # are outside it, as `fields` says.
                    "field": "end_date" if before else "start_date",
                    "fields": ["start_date", "end_date"],
                    "reason": "before_data" if before else "after_data",
                    "symbol": ticker,
                    "timeframe": timeframe.value,
                    "available_from": data_first.isoformat(),
                    "available_to": data_last.isoformat(),
                },
            ),
            [],
        )
    warnings: list[str] = []
    # Warn only when trading days of the range have no bars (not for a weekend at its edge).
    calendar = instrument.symbol.asset_class.calendar
    if count_trading_days(first, data_first - timedelta(days=1), calendar):
        warnings.append(f"{ticker} has no data before {data_first}; the session starts {first}")
    if count_trading_days(data_last + timedelta(days=1), last, calendar):
        warnings.append(f"{ticker} has no data after {data_last}; the session ends {last}")
    if coverage.source is DataSource.SYNTHETIC:
        warnings.append(
            f"{ticker} runs on synthetic data (a seeded random walk, not market prices); "
            "import real bars with `simutrador data import`"
        )
    return None, warnings
