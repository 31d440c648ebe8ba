"""Pure validation rules: capital parsing and bounds, symbol counts, dates, metadata, and
whether the stored bars (their coverage) serve a requested range."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from domain.bars import Coverage, DataSource, Timeframe
from domain.dates import DateRange, format_instant, parse_instant
from domain.errors import (
    DataUnavailable,
    ExcessiveCapital,
    InsufficientCapital,
    InvalidDateRange,
    MissingSymbols,
    TooManySymbols,
    ValidationFailed,
)
from domain.exchanges import daily_close, hours_of
from domain.limits import PLAN_DEFAULTS, Plan, SessionPolicy
from domain.symbols import AssetClass, Instrument
from domain.validation import (
    ValidationResult,
    check_capital,
    check_coverage,
    check_metadata,
    check_params,
    check_range_length,
    check_symbol_count,
    parse_capital,
)
from tests.fakes import instrument, limits_for, session_params

POLICY = SessionPolicy()


# --- capital ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1000", Decimal("1000.00")),
        (" 2500.5 ", Decimal("2500.50")),
        ("1000.500", Decimal("1000.50")),  # trailing zeros are not extra precision
        (10000, Decimal("10000.00")),
        (1234.25, Decimal("1234.25")),
        (Decimal("1e4"), Decimal("10000.00")),
    ],
)
def test_parse_capital_accepts_cents(raw: Decimal | str | int | float, expected: Decimal) -> None:
    parsed = parse_capital(raw)
    assert parsed == expected
    assert parsed.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1000.005", "two decimal places"),
        (1000.001, "two decimal places"),
        ("NaN", "finite"),
        (float("nan"), "finite"),
        ("Infinity", "finite"),
        ("-inf", "finite"),
        ("sNaN", "finite"),
        ("ten thousand", "not a number"),
        ("", "not a number"),
    ],
)
def test_parse_capital_refusals(raw: str | float, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_capital(raw)
    assert caught.value.code == "VALIDATION_FAILED"
    assert caught.value.details["field"] == "initial_capital"
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("raw", "error"),
    [("1e30", ExcessiveCapital), ("-1e30", InsufficientCapital), ("1" * 40, ExcessiveCapital)],
)
def test_huge_capital_is_refused_by_the_bounds_not_by_a_crash(
    raw: str, error: type[Exception]
) -> None:
    # Regression: quantizing 1e30 to cents overflows the decimal context (InvalidOperation).
    amount = parse_capital(raw)
    with pytest.raises(error):
        check_capital(amount, POLICY)


def test_capital_bounds_are_inclusive() -> None:
    check_capital(Decimal("1000.00"), POLICY)
    check_capital(Decimal("10000000.00"), POLICY)


def test_insufficient_capital() -> None:
    with pytest.raises(InsufficientCapital) as caught:
        check_capital(Decimal("999.99"), POLICY)
    assert caught.value.code == "INSUFFICIENT_CAPITAL"
    assert caught.value.details == {"initial_capital": "999.99", "min_capital": "1000.00"}


def test_excessive_capital() -> None:
    with pytest.raises(ExcessiveCapital) as caught:
        check_capital(Decimal("10000000.01"), POLICY)
    assert caught.value.code == "EXCESSIVE_CAPITAL"
    assert caught.value.details == {"initial_capital": "10000000.01", "max_capital": "10000000.00"}


# --- symbol count -----------------------------------------------------------------------------


def test_missing_symbols() -> None:
    with pytest.raises(MissingSymbols) as caught:
        check_symbol_count([], PLAN_DEFAULTS[Plan.FREE])
    assert caught.value.code == "MISSING_SYMBOLS"
    assert caught.value.details == {"field": "symbols"}


@pytest.mark.parametrize("plan", list(Plan))
def test_too_many_symbols_per_plan(plan: Plan) -> None:
    limits = PLAN_DEFAULTS[plan]
    check_symbol_count(["S"] * limits.max_symbols, limits)
    with pytest.raises(TooManySymbols) as caught:
        check_symbol_count(["S"] * (limits.max_symbols + 1), limits)
    assert caught.value.code == "TOO_MANY_SYMBOLS"
    assert caught.value.details == {
        "requested": limits.max_symbols + 1,
        "max_symbols": limits.max_symbols,
    }


# --- dates ------------------------------------------------------------------------------------


def test_parse_instant_forms() -> None:
    midnight = datetime(2023, 1, 3, tzinfo=UTC)
    assert parse_instant("2023-01-03", "start_date") == midnight
    assert parse_instant(" 2023-01-03 ", "start_date") == midnight
    assert parse_instant("2023-01-03T00:00:00", "start_date") == midnight  # naive means UTC
    assert parse_instant("2023-01-03T00:00:00Z", "start_date") == midnight
    shifted = parse_instant("2023-01-03T02:00:00+02:00", "start_date")
    assert shifted == midnight
    assert shifted.tzinfo is UTC


@pytest.mark.parametrize("text", ["yesterday", "2023-13-01", "2023-02-30", "03/01/2023", ""])
def test_unparsable_dates(text: str) -> None:
    with pytest.raises(InvalidDateRange) as caught:
        parse_instant(text, "end_date")
    assert caught.value.code == "INVALID_DATE_RANGE"
    assert caught.value.details == {"field": "end_date", "value": text}


def test_date_range_parse_names_the_bad_field() -> None:
    with pytest.raises(InvalidDateRange) as caught:
        DateRange.parse("2023-01-03", "soon")
    assert caught.value.details["field"] == "end_date"


@pytest.mark.parametrize(
    ("start", "end"), [("2023-06-02", "2023-06-01"), ("2023-06-01T12:00", "2023-06-01T11:00")]
)
def test_start_must_not_be_after_end(start: str, end: str) -> None:
    with pytest.raises(InvalidDateRange) as caught:
        DateRange.parse(start, end)
    assert caught.value.code == "INVALID_DATE_RANGE"
    assert caught.value.details["field"] == "start_date"
    assert caught.value.details["start_date"].startswith(start[:10])
    assert "the end is the last day included" in caught.value.message


def test_a_start_equal_to_the_end_is_that_one_day() -> None:
    # --end is the inclusive last day (PROTOCOL §4.6): the same date twice is a one-day range.
    day = DateRange.parse("2023-06-01", "2023-06-01")
    assert (day.first_day, day.last_day, day.days) == (date(2023, 6, 1), date(2023, 6, 1), 1)


def test_date_range_needs_aware_datetimes() -> None:
    with pytest.raises(InvalidDateRange):
        DateRange(datetime(2023, 1, 3), datetime(2023, 2, 3, tzinfo=UTC))


def test_date_range_days_and_format() -> None:
    span = DateRange.parse("2023-01-03", "2023-01-05T12:00:00")
    assert (span.first_day, span.last_day, span.days) == (date(2023, 1, 3), date(2023, 1, 5), 3)
    eastern = datetime(2023, 1, 3, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert format_instant(eastern) == "2023-01-03T12:00:00Z"


def test_range_length_limit() -> None:
    policy = SessionPolicy(max_range_days=31)
    check_range_length(DateRange.parse("2023-01-01", "2023-01-31"), policy)
    with pytest.raises(InvalidDateRange) as caught:
        check_range_length(DateRange.parse("2023-01-01", "2023-02-01"), policy)
    assert caught.value.details == {"field": "end_date", "days": 32, "max_days": 31}


# --- metadata ---------------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """A mapping whose containers nest exactly `depth` levels."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def test_metadata_depth_limit_is_exact() -> None:
    check_metadata(nested(POLICY.max_metadata_depth), POLICY)
    with pytest.raises(ValidationFailed) as caught:
        check_metadata(nested(POLICY.max_metadata_depth + 1), POLICY)
    assert caught.value.details == {"field": "metadata", "max_depth": POLICY.max_metadata_depth}


def test_metadata_lists_count_as_levels() -> None:
    policy = SessionPolicy(max_metadata_depth=2)
    check_metadata({"a": [1, 2]}, policy)
    with pytest.raises(ValidationFailed):
        check_metadata({"a": [[1]]}, policy)


def test_hostile_nesting_is_refused_not_a_recursion_error() -> None:
    # Regression: 5,000 levels (a few KB of JSON) used to raise RecursionError.
    with pytest.raises(ValidationFailed) as caught:
        check_metadata(nested(5_000), POLICY)
    assert "deeper" in caught.value.message


def test_metadata_size_limit() -> None:
    policy = SessionPolicy(max_metadata_bytes=64)
    fits = {"note": "x" * (64 - len('{"note":""}'))}
    check_metadata(fits, policy)
    with pytest.raises(ValidationFailed) as caught:
        check_metadata({"note": fits["note"] + "x"}, policy)
    assert caught.value.details == {"field": "metadata", "size": 65, "max_bytes": 64}


def test_metadata_size_counts_utf8_bytes() -> None:
    policy = SessionPolicy(max_metadata_bytes=20)
    with pytest.raises(ValidationFailed):
        check_metadata({"n": "é" * 8}, policy)  # 8 characters, 16 bytes of text


@pytest.mark.parametrize(
    "metadata",
    [
        {"when": datetime(2023, 1, 1, tzinfo=UTC)},
        {"amount": Decimal("1.5")},
        {"ratio": float("nan")},
        {"ratio": float("inf")},
        {"tags": {"a", "b"}},
        {"inner": {1: "int key"}},
        {"callback": print},
    ],
)
def test_metadata_must_be_plain_json(metadata: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_metadata(metadata, POLICY)
    assert caught.value.details["field"] == "metadata"
    assert "JSON" in caught.value.message


def test_plain_metadata_passes() -> None:
    check_metadata(
        {"strategy": "mean-reversion", "params": [1, 2.5, True, None], "nested": {"k": "v"}},
        POLICY,
    )


# --- everything at once -----------------------------------------------------------------------


def test_check_params_reports_the_cheapest_rule_first() -> None:
    params = session_params(symbols=(), initial_capital="1", metadata={"x": float("nan")})
    with pytest.raises(MissingSymbols):
        check_params(params, limits_for(), POLICY)
    params = session_params(initial_capital="1", metadata={"x": float("nan")})
    with pytest.raises(InsufficientCapital):
        check_params(params, limits_for(), POLICY)
    params = session_params(metadata={"x": float("nan")})
    with pytest.raises(ValidationFailed):
        check_params(params, limits_for(), POLICY)
    check_params(session_params(), limits_for(), POLICY)


def test_validation_result() -> None:
    assert ValidationResult().valid
    ValidationResult(warnings=("note",)).raise_first()
    first, second = MissingSymbols(), ValidationFailed("x", "bad")
    result = ValidationResult((first, second))
    assert not result.valid
    with pytest.raises(MissingSymbols):
        result.raise_first()


# --- coverage: what the bar store holds against the range asked for ---------------------------

NEW = instrument("NEW", exchange="NYSE")
BTC = instrument("BTC-USD", AssetClass.CRYPTO, "CRYPTO")


def stored(
    item: Instrument,
    first: date,
    last: date,
    source: DataSource = DataSource.IMPORTED,
    timeframe: Timeframe = Timeframe.D1,
) -> Coverage:
    """The coverage of daily bars from the trading day `first` to `last` (bar closes)."""
    hours = hours_of(item)
    return Coverage(
        item.symbol.ticker,
        timeframe,
        daily_close(first, hours),
        daily_close(last, hours),
        100,
        source,
    )


# NEW has bars for the trading days 2023-05-04 (Thu) .. 2024-06-28 (Fri).
NEW_BARS = stored(NEW, date(2023, 5, 4), date(2024, 6, 28))


def test_no_bars_at_all_is_data_unavailable() -> None:
    error, warnings = check_coverage(
        NEW, Timeframe.H1, None, DateRange.parse("2023-06-01", "2023-07-01")
    )
    assert isinstance(error, DataUnavailable)
    assert error.code == "DATA_UNAVAILABLE"
    assert error.details == {"symbol": "NEW", "timeframe": "1h"}
    assert warnings == []


@pytest.mark.parametrize(
    ("start", "end", "field", "side"),
    [
        ("2022-01-03", "2022-12-30", "end_date", "before"),
        ("2023-01-03", "2023-05-03", "end_date", "before"),  # ends the day before the first bar
        ("2025-01-02", "2025-02-03", "start_date", "after"),
        ("2024-06-29", "2024-07-31", "start_date", "after"),  # starts the day after the last
    ],
)
def test_a_range_that_misses_every_bar_names_the_real_coverage(
    start: str, end: str, field: str, side: str
) -> None:
    error, warnings = check_coverage(NEW, Timeframe.D1, NEW_BARS, DateRange.parse(start, end))
    assert warnings == []
    assert isinstance(error, InvalidDateRange)
    assert error.details == {
        "field": field,
        "fields": ["start_date", "end_date"],  # the whole range misses: both ends are wrong
        "reason": f"{side}_data",
        "symbol": "NEW",
        "timeframe": "1d",
        "available_from": "2023-05-04",
        "available_to": "2024-06-28",
    }
    assert f"entirely {side}" in error.message
    assert "NEW" in error.message


def test_a_range_starting_before_the_first_bar_runs_with_a_warning() -> None:
    # Ends on the first bar's own trading day: one bar overlaps, so it is not an error.
    error, warnings = check_coverage(
        NEW, Timeframe.D1, NEW_BARS, DateRange.parse("2023-01-03", "2023-05-04")
    )
    assert error is None
    assert warnings == ["NEW has no data before 2023-05-04; the session starts 2023-01-03"]


def test_a_range_ending_after_the_last_bar_runs_with_a_warning() -> None:
    error, warnings = check_coverage(
        NEW, Timeframe.D1, NEW_BARS, DateRange.parse("2024-06-28", "2024-12-31")
    )
    assert error is None
    assert warnings == ["NEW has no data after 2024-06-28; the session ends 2024-12-31"]


def test_a_range_strictly_inside_the_data_is_clean() -> None:
    span = DateRange.parse("2023-06-01", "2024-05-31")
    assert check_coverage(NEW, Timeframe.D1, NEW_BARS, span) == (None, [])


def test_a_range_exactly_on_the_data_is_clean() -> None:
    span = DateRange.parse("2023-05-04", "2024-06-28")
    assert check_coverage(NEW, Timeframe.D1, NEW_BARS, span) == (None, [])


def test_days_without_trading_at_the_edges_are_not_warned_about() -> None:
    # Bars from Mon 2023-05-08 to Fri 2024-06-28; the range adds only a weekend at each end.
    weekdays = stored(NEW, date(2023, 5, 8), date(2024, 6, 28))
    span = DateRange.parse("2023-05-06", "2024-06-30")
    assert check_coverage(NEW, Timeframe.D1, weekdays, span) == (None, [])
    # One trading day more (Fri 2023-05-05) is worth a warning.
    error, warnings = check_coverage(
        NEW, Timeframe.D1, weekdays, DateRange.parse("2023-05-05", "2024-06-30")
    )
    assert error is None
    assert warnings == ["NEW has no data before 2023-05-08; the session starts 2023-05-05"]


def test_synthetic_data_always_carries_a_warning() -> None:
    synthetic = stored(NEW, date(2023, 5, 4), date(2024, 6, 28), DataSource.SYNTHETIC)
    error, warnings = check_coverage(
        NEW, Timeframe.D1, synthetic, DateRange.parse("2023-06-01", "2023-06-30")
    )
    assert error is None
    (warning,) = warnings
    assert warning.startswith("NEW runs on synthetic data")
    assert "simutrador data import" in warning


def test_crypto_days_end_at_midnight_utc() -> None:
    # BTC-USD's bar for 2024-01-10 closes at 2024-01-11 00:00 UTC, yet belongs to the 10th:
    # a range ending on the 10th reaches it, and the coverage reads as that day.
    coverage = stored(BTC, date(2024, 1, 10), date(2024, 3, 31))
    assert coverage.first == datetime(2024, 1, 11, tzinfo=UTC)
    error, warnings = check_coverage(
        BTC, Timeframe.D1, coverage, DateRange.parse("2024-01-01", "2024-01-10")
    )
    assert error is None
    assert warnings == ["BTC-USD has no data before 2024-01-10; the session starts 2024-01-01"]
    error, _ = check_coverage(
        BTC, Timeframe.D1, coverage, DateRange.parse("2024-01-01", "2024-01-09")
    )
    assert isinstance(error, InvalidDateRange)
    assert error.details["available_from"] == "2024-01-10"
