"""MarketDataValidator: grouping, trading days and bar counts from the stored bars, coverage
errors and warnings, and its bounded TTL cache (dropped whenever the store changes)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from application.market_data import MarketDataValidator
from domain.bars import Bar, BarSeries, DataSource, Timeframe
from domain.dates import DateRange
from domain.errors import DataUnavailable, InvalidDateRange, InvalidSymbol
from domain.exchanges import daily_close, hours_of
from domain.symbols import AssetClass, Symbol
from tests.fakes import (
    DEFAULT_INSTRUMENTS,
    FakeClock,
    InMemoryBarStore,
    InMemoryCatalog,
    daily_series,
    make_validator,
)

YEAR_2023 = DateRange.parse("2023-01-03", "2023-12-29")
BY_TICKER = {i.symbol.ticker: i for i in DEFAULT_INSTRUMENTS}
NEW_YORK = hours_of(BY_TICKER["AAPL"])


@pytest.fixture
def real_validator(shipped_catalog: YamlSymbolCatalog, clock: FakeClock) -> MarketDataValidator:
    """The shipped catalog over the default bars (flat daily bars for the fake universe)."""
    return MarketDataValidator(shipped_catalog, InMemoryBarStore.with_defaults(), clock)


def test_groups_by_asset_class_in_request_order() -> None:
    check = make_validator().validate_symbols(["MSFT", "eurusd", "BTC-USD", "AAPL", "gc"])
    assert check.by_asset_class == {
        AssetClass.STOCK: (Symbol("MSFT", AssetClass.STOCK), Symbol("AAPL", AssetClass.STOCK)),
        AssetClass.FOREX: (Symbol("EUR/USD", AssetClass.FOREX),),
        AssetClass.CRYPTO: (Symbol("BTC-USD", AssetClass.CRYPTO),),
        AssetClass.COMMODITY: (Symbol("GC", AssetClass.COMMODITY),),
    }


# 2023 has 260 weekdays (365 days from a Sunday) and ten NYSE holidays, one of them (Jan 2)
# before the range; 2023-01-03 is a Tuesday and 2023-12-29 a Friday. The default store has
# a bar on every trading day of each instrument, so the bars counted are these days.
# Daily closes: stocks 16:00 New York, forex 17:00 New York, crypto 00:00 UTC: never the same
# instant, so a mixed session steps through the sum of the bars.
@pytest.mark.parametrize(
    ("symbols", "days", "bars"),
    [
        (["AAPL"], 250, 250),  # 260 weekdays - Jan 2 - 9 holidays after it
        (["AAPL", "MSFT"], 250, 250),  # one close instant: one tick for both
        (["EUR/USD"], 259, 259),  # 260 weekdays - Jan 2; forex trades on US holidays
        (["BTC-USD"], 361, 361),  # every day but Jan 1, 2, 30, 31
        (["AAPL", "EURUSD", "btc-usd"], 361, 250 + 259 + 361),  # the busiest sets the days
        (["KVUE"], 166, 166),  # bars from Thu 2023-05-04: 172 weekdays - 6 holidays
    ],
)
async def test_trading_days_and_bars_from_the_stored_bars(
    real_validator: MarketDataValidator, symbols: list[str], days: int, bars: int
) -> None:
    check = await real_validator.validate(symbols, YEAR_2023)
    assert check.result.errors == ()
    assert check.estimated_trading_days == days
    assert check.total_bars == bars


async def test_a_range_before_the_first_bar_gives_a_warning_not_an_error(
    real_validator: MarketDataValidator,
) -> None:
    check = await real_validator.validate(["AAPL", "KVUE"], YEAR_2023)
    assert check.result.valid
    assert check.result.warnings == (
        "KVUE has no data before 2023-05-04; the session starts 2023-01-03",
    )


@pytest.mark.parametrize(
    ("start", "end", "days", "phrase"),
    [
        ("2023-07-03", "2023-07-06", 3, "Very short range: 3 trading days;"),  # Jul 4 closed
        ("2023-07-05", "2023-07-05T20:00:00", 1, "Very short range: 1 trading day;"),
    ],
)
async def test_short_ranges_warn(start: str, end: str, days: int, phrase: str) -> None:
    check = await make_validator().validate(["AAPL"], DateRange.parse(start, end))
    assert check.result.valid
    assert check.estimated_trading_days == days
    assert check.total_bars == days
    assert len(check.result.warnings) == 1
    assert phrase in check.result.warnings[0]


async def test_a_range_without_any_bar_is_refused() -> None:
    # A weekend inside AAPL's data: the coverage overlaps, but no bar lies in the range.
    check = await make_validator().validate(["AAPL"], DateRange.parse("2023-07-01", "2023-07-02"))
    (error,) = check.result.errors
    assert isinstance(error, InvalidDateRange)
    assert error.details == {
        "field": "start_date",
        "fields": ["start_date", "end_date"],
        "reason": "no_trading_day",
        "start_date": "2023-07-01",
        "end_date": "2023-07-02",
    }
    assert "holds no trading day of AAPL" in error.message
    assert "weekends and exchange holidays" in error.message
    assert check.estimated_trading_days == 0


async def test_a_one_day_session_is_its_one_trading_day() -> None:
    # --start 2023-01-03 --end 2023-01-03: the end is the last day included.
    day = DateRange.parse("2023-01-03", "2023-01-03")
    check = await make_validator().validate(["AAPL"], day)
    assert check.result.valid
    assert (check.estimated_trading_days, check.total_bars) == (1, 1)
    holiday = DateRange.parse("2023-07-04", "2023-07-04")
    (error,) = (await make_validator().validate(["AAPL"], holiday)).result.errors
    assert error.details["reason"] == "no_trading_day"
    assert error.message.startswith("2023-07-04 holds no trading day of AAPL")


async def test_a_crypto_symbol_trades_over_the_weekend() -> None:
    weekend = DateRange.parse("2023-07-01", "2023-07-02")
    check = await make_validator().validate(["BTC-USD"], weekend)
    assert check.result.valid
    assert check.estimated_trading_days == 2


async def test_five_trading_days_is_not_short() -> None:
    check = await make_validator().validate(["AAPL"], DateRange.parse("2023-07-10", "2023-07-14"))
    assert check.estimated_trading_days == 5
    assert check.result.warnings == ()


async def test_range_outside_a_symbols_data_names_the_symbol_and_its_range() -> None:
    check = await make_validator().validate(
        ["AAPL", "OLD"], DateRange.parse("2021-01-04", "2021-06-30")
    )
    assert not check.result.valid
    (error,) = check.result.errors
    assert isinstance(error, InvalidDateRange)
    assert error.details == {
        "field": "start_date",  # the range lies after the data: its start is what is wrong
        "fields": ["start_date", "end_date"],  # ... and its end too
        "reason": "after_data",
        "symbol": "OLD",
        "timeframe": "1d",
        "available_from": "1990-01-02",
        "available_to": "2020-06-30",
    }


async def test_a_symbol_without_bars_is_data_unavailable() -> None:
    check = await make_validator().validate(["AAPL", "NODATA"], YEAR_2023)
    (error,) = check.result.errors
    assert isinstance(error, DataUnavailable)
    assert error.details == {"symbol": "NODATA", "timeframe": "1d"}


async def test_a_timeframe_without_bars_is_data_unavailable() -> None:
    # The default store holds daily bars only.
    check = await make_validator().validate(["AAPL", "MSFT"], YEAR_2023, Timeframe.H1)
    assert [(type(e), e.details) for e in check.result.errors] == [
        (DataUnavailable, {"symbol": "AAPL", "timeframe": "1h"}),
        (DataUnavailable, {"symbol": "MSFT", "timeframe": "1h"}),
    ]


async def test_synthetic_bars_carry_a_warning() -> None:
    store = InMemoryBarStore.with_defaults(DataSource.SYNTHETIC)
    check = await make_validator(store=store).validate(["AAPL", "MSFT"], YEAR_2023)
    assert check.result.valid
    assert [w.split(" ", 1)[0] for w in check.result.warnings] == ["AAPL", "MSFT"]
    assert all("synthetic data" in w for w in check.result.warnings)


async def test_unknown_symbol_stops_before_date_checks() -> None:
    check = await make_validator().validate(
        ["OLD", "NOPE"], DateRange.parse("2021-01-04", "2021-06-30")
    )
    assert [type(e) for e in check.result.errors] == [InvalidSymbol]
    assert check.estimated_trading_days == 0


async def test_counts_stop_where_the_data_stops() -> None:
    # OLD's last bar is on Tue 2020-06-30: of the second half of 2020, only Jun 29-30 count.
    check = await make_validator().validate(["OLD"], DateRange.parse("2020-06-29", "2020-12-31"))
    assert check.result.valid
    assert (check.estimated_trading_days, check.total_bars) == (2, 2)
    assert any(w.startswith("OLD has no data after 2020-06-30") for w in check.result.warnings)


async def test_intraday_days_count_the_trading_days_the_bars_span() -> None:
    # Hourly AAPL bars closing at 14:00, 15:00 and 16:00 New York on Wed..Fri 2023-07-05..07.
    price = Decimal("100.00")
    bars = [
        Bar(daily_close(day, NEW_YORK) - timedelta(hours=h), price, price, price, price, price)
        for day in (date(2023, 7, 5), date(2023, 7, 6), date(2023, 7, 7))
        for h in (2, 1, 0)
    ]
    store = InMemoryBarStore.with_defaults()
    store.put(BarSeries.from_bars("AAPL", Timeframe.H1, bars))
    check = await make_validator(store=store).validate(
        ["AAPL"], DateRange.parse("2023-07-03", "2023-07-07"), Timeframe.H1
    )
    assert check.result.errors == ()
    assert (check.estimated_trading_days, check.total_bars) == (3, 9)


def test_supported_symbols() -> None:
    validator = make_validator()
    forex = validator.supported_symbols(AssetClass.FOREX)
    assert [s.ticker for s in forex] == ["EUR/USD", "GBP/USD"]
    assert len(validator.supported_symbols()) == len(InMemoryCatalog().instruments())


# --- cache ------------------------------------------------------------------------------------


async def test_second_call_returns_the_cached_object() -> None:
    store = InMemoryBarStore.with_defaults()
    validator = make_validator(store=store)
    first = await validator.validate(["AAPL", "MSFT"], YEAR_2023)
    reads = store.reads
    assert await validator.validate(["AAPL", "MSFT"], YEAR_2023) is first
    assert store.reads == reads  # no bar was read again


@pytest.mark.parametrize(
    "variant", [["eur-usd", "btcusd"], ["EURUSD", "BTC/USD"], [" Eur_Usd", "btc usd"]]
)
async def test_spelling_variants_share_one_cache_entry(variant: list[str]) -> None:
    store = InMemoryBarStore.with_defaults()
    validator = make_validator(store=store)
    first = await validator.validate(["EUR/USD", "BTC-USD"], YEAR_2023)
    reads = store.reads
    again = await validator.validate(variant, YEAR_2023)
    assert store.reads == reads  # answered from the one cache entry
    assert again.instruments == first.instruments
    assert again.total_bars == first.total_bars
    # ... with a note for each spelling that is not the canonical one.
    renamed = [w for w in again.result.warnings if "(its canonical form)" in w]
    assert renamed == [
        f"{raw.strip()} is written {ticker} here (its canonical form)"
        for raw, ticker in zip(variant, ["EUR/USD", "BTC-USD"], strict=True)
    ]
    assert [w for w in again.result.warnings if w not in renamed] == list(first.result.warnings)


async def test_an_alias_says_what_it_became_and_case_alone_does_not() -> None:
    validator = make_validator()
    check = await validator.validate(["btc/usd", "eur/usd", "aapl"], YEAR_2023)
    assert check.result.valid
    assert [s.ticker for s in check.symbols] == ["BTC-USD", "EUR/USD", "AAPL"]
    assert [w for w in check.result.warnings if "canonical" in w] == [
        "btc/usd is written BTC-USD here (its canonical form)"
    ]


async def test_order_range_and_timeframe_are_part_of_the_cache_key() -> None:
    validator = make_validator()
    first = await validator.validate(["AAPL", "MSFT"], YEAR_2023)
    assert await validator.validate(["MSFT", "AAPL"], YEAR_2023) is not first
    other_range = DateRange.parse("2023-01-03", "2023-12-28")
    assert await validator.validate(["AAPL", "MSFT"], other_range) is not first
    hourly = await validator.validate(["AAPL", "MSFT"], YEAR_2023, Timeframe.H1)
    assert not hourly.result.valid  # not the cached daily answer
    assert await validator.validate(["AAPL", "MSFT"], YEAR_2023) is first


async def test_failed_checks_are_cached_too() -> None:
    validator = make_validator()
    first = await validator.validate(["NOPE"], YEAR_2023)
    assert not first.result.valid
    assert await validator.validate(["nope"], YEAR_2023) is first


async def test_a_write_to_the_store_drops_the_cache() -> None:
    store = InMemoryBarStore.with_defaults()
    validator = make_validator(store=store)
    before = await validator.validate(["NODATA"], YEAR_2023)
    assert isinstance(before.result.errors[0], DataUnavailable)
    await store.write(
        daily_series(BY_TICKER["NODATA"], date(2023, 1, 3), date(2023, 12, 29)),
        DataSource.IMPORTED,
        replace=False,
    )
    after = await validator.validate(["NODATA"], YEAR_2023)
    assert after.result.valid
    assert after.total_bars == 250


async def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    validator = make_validator(clock=clock, cache_ttl_seconds=300.0)
    first = await validator.validate(["AAPL"], YEAR_2023)
    clock.advance(299.9)
    assert await validator.validate(["AAPL"], YEAR_2023) is first
    clock.advance(0.1)
    second = await validator.validate(["AAPL"], YEAR_2023)
    assert second is not first
    assert second == first  # recomputed, same answer
    assert await validator.validate(["AAPL"], YEAR_2023) is second


async def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    validator = make_validator(cache_size=2)
    a = await validator.validate(["AAPL"], YEAR_2023)
    b = await validator.validate(["MSFT"], YEAR_2023)
    assert await validator.validate(["AAPL"], YEAR_2023) is a  # AAPL is now the most recent
    c = await validator.validate(["JPM"], YEAR_2023)  # evicts MSFT
    assert await validator.validate(["AAPL"], YEAR_2023) is a
    assert await validator.validate(["JPM"], YEAR_2023) is c
    assert await validator.validate(["MSFT"], YEAR_2023) is not b
    # MSFT came back and pushed out AAPL, the least recently used of the two others.
    assert await validator.validate(["JPM"], YEAR_2023) is c
    assert await validator.validate(["AAPL"], YEAR_2023) is not a
