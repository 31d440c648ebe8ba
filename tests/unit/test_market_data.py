"""MarketDataValidator: grouping, trading-day estimates, warnings, and its bounded TTL cache."""

from __future__ import annotations

from datetime import date

import pytest

from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from application.market_data import MarketDataValidator, estimate_trading_days
from domain.dates import DateRange
from domain.errors import InvalidDateRange, InvalidSymbol
from domain.symbols import AssetClass, Symbol
from tests.fakes import FakeClock, InMemoryCatalog, make_validator

YEAR_2023 = DateRange.parse("2023-01-03", "2023-12-29")


@pytest.fixture
def real_validator(shipped_catalog: YamlSymbolCatalog, clock: FakeClock) -> MarketDataValidator:
    return MarketDataValidator(shipped_catalog, clock)


def test_groups_by_asset_class_in_request_order() -> None:
    check = make_validator().validate_symbols(["MSFT", "eurusd", "BTC-USD", "AAPL", "gc"])
    assert check.by_asset_class == {
        AssetClass.STOCK: (Symbol("MSFT", AssetClass.STOCK), Symbol("AAPL", AssetClass.STOCK)),
        AssetClass.FOREX: (Symbol("EUR/USD", AssetClass.FOREX),),
        AssetClass.CRYPTO: (Symbol("BTC-USD", AssetClass.CRYPTO),),
        AssetClass.COMMODITY: (Symbol("GC", AssetClass.COMMODITY),),
    }


# 2023 has 260 weekdays (365 days from a Sunday) and ten NYSE holidays, one of them (Jan 2)
# before the range; 2023-01-03 is a Tuesday and 2023-12-29 a Friday.
@pytest.mark.parametrize(
    ("symbols", "expected"),
    [
        (["AAPL"], 250),  # 260 weekdays - Jan 2 - 9 holidays after it
        (["EUR/USD"], 259),  # 260 weekdays - Jan 2; forex trades on US holidays
        (["BTC-USD"], 361),  # every day but Jan 1, 2, 30, 31
        (["AAPL", "EURUSD", "btc-usd"], 361),  # the busiest instrument sets the pace
        (["KVUE"], 166),  # listed Thu 2023-05-04: 172 weekdays - 6 holidays from then
    ],
)
def test_estimated_trading_days_on_the_shipped_catalog(
    real_validator: MarketDataValidator, symbols: list[str], expected: int
) -> None:
    check = real_validator.validate(symbols, YEAR_2023)
    assert check.result.errors == ()
    assert check.estimated_trading_days == expected


def test_listing_date_gives_a_warning_not_an_error(real_validator: MarketDataValidator) -> None:
    check = real_validator.validate(["AAPL", "KVUE"], YEAR_2023)
    assert check.result.valid
    assert len(check.result.warnings) == 1
    assert "KVUE" in check.result.warnings[0]
    assert "2023-05-04" in check.result.warnings[0]


@pytest.mark.parametrize(
    ("start", "end", "days", "phrase"),
    [
        ("2023-07-03", "2023-07-06", 3, "about 3 trading days"),  # Jul 4 is a holiday
        ("2023-07-01", "2023-07-02", 0, "about 0 trading days"),  # a weekend
        ("2023-07-05", "2023-07-05T20:00:00", 1, "about 1 trading day;"),
    ],
)
def test_short_ranges_warn(start: str, end: str, days: int, phrase: str) -> None:
    check = make_validator().validate(["AAPL"], DateRange.parse(start, end))
    assert check.result.valid
    assert check.estimated_trading_days == days
    assert len(check.result.warnings) == 1
    assert phrase in check.result.warnings[0]


def test_five_trading_days_is_not_short() -> None:
    check = make_validator().validate(["AAPL"], DateRange.parse("2023-07-10", "2023-07-14"))
    assert check.estimated_trading_days == 5
    assert check.result.warnings == ()


def test_range_outside_a_symbols_data_names_the_symbol_and_its_range() -> None:
    check = make_validator().validate(["AAPL", "OLD"], DateRange.parse("2021-01-04", "2021-06-30"))
    assert not check.result.valid
    (error,) = check.result.errors
    assert isinstance(error, InvalidDateRange)
    assert error.details["symbol"] == "OLD"
    assert error.details["available_from"] == "1990-01-02"
    assert error.details["available_to"] == "2020-06-30"


def test_unknown_symbol_stops_before_date_checks() -> None:
    check = make_validator().validate(["OLD", "NOPE"], DateRange.parse("2021-01-04", "2021-06-30"))
    assert [type(e) for e in check.result.errors] == [InvalidSymbol]
    assert check.estimated_trading_days == 0


def test_estimate_is_clipped_to_available_data() -> None:
    catalog = InMemoryCatalog()
    old = catalog.lookup("OLD")
    assert old is not None
    # OLD ends 2020-06-30: only its first half of 2020 counts.
    days = estimate_trading_days([old], DateRange.parse("2020-06-29", "2020-12-31"))
    assert days == 2


def test_supported_symbols_and_available_range() -> None:
    validator = make_validator()
    forex = validator.supported_symbols(AssetClass.FOREX)
    assert [s.ticker for s in forex] == ["EUR/USD", "GBP/USD"]
    assert len(validator.supported_symbols()) == len(InMemoryCatalog().instruments())
    assert validator.available_range("kvue") == (date(2023, 5, 4), date(2025, 12, 31))
    assert validator.available_range("NOPE") is None
    assert validator.available_range("A$B") is None


# --- cache ------------------------------------------------------------------------------------


def test_second_call_returns_the_cached_object() -> None:
    validator = make_validator()
    first = validator.validate(["AAPL", "MSFT"], YEAR_2023)
    assert validator.validate(["AAPL", "MSFT"], YEAR_2023) is first


@pytest.mark.parametrize(
    "variant", [["eur-usd", "btcusd"], ["EURUSD", "BTC/USD"], [" Eur_Usd", "btc usd"]]
)
def test_spelling_variants_share_one_cache_entry(variant: list[str]) -> None:
    validator = make_validator()
    first = validator.validate(["EUR/USD", "BTC-USD"], YEAR_2023)
    assert validator.validate(variant, YEAR_2023) is first


def test_order_and_range_are_part_of_the_cache_key() -> None:
    validator = make_validator()
    first = validator.validate(["AAPL", "MSFT"], YEAR_2023)
    assert validator.validate(["MSFT", "AAPL"], YEAR_2023) is not first
    assert (
        validator.validate(["AAPL", "MSFT"], DateRange.parse("2023-01-03", "2023-12-28"))
        is not first
    )


def test_failed_checks_are_cached_too() -> None:
    validator = make_validator()
    first = validator.validate(["NOPE"], YEAR_2023)
    assert not first.result.valid
    assert validator.validate(["nope"], YEAR_2023) is first


def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    validator = make_validator(clock=clock, cache_ttl_seconds=300.0)
    first = validator.validate(["AAPL"], YEAR_2023)
    clock.advance(299.9)
    assert validator.validate(["AAPL"], YEAR_2023) is first
    clock.advance(0.1)
    second = validator.validate(["AAPL"], YEAR_2023)
    assert second is not first
    assert second == first  # recomputed, same answer
    assert validator.validate(["AAPL"], YEAR_2023) is second


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    validator = make_validator(cache_size=2)
    a = validator.validate(["AAPL"], YEAR_2023)
    b = validator.validate(["MSFT"], YEAR_2023)
    assert validator.validate(["AAPL"], YEAR_2023) is a  # AAPL is now the most recent
    c = validator.validate(["JPM"], YEAR_2023)  # evicts MSFT
    assert validator.validate(["AAPL"], YEAR_2023) is a
    assert validator.validate(["JPM"], YEAR_2023) is c
    assert validator.validate(["MSFT"], YEAR_2023) is not b
    # MSFT came back and pushed out AAPL, the least recently used of the two others.
    assert validator.validate(["JPM"], YEAR_2023) is c
    assert validator.validate(["AAPL"], YEAR_2023) is not a
