"""MarketDataService: importing a user's bars, the synthetic sample, and instruments with their
coverage, over the in-memory store (and two real files where determinism across stores is
the point)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.bars.sqlite_store import SqliteBarStore
from adapters.bars.synthetic import RandomWalkBarGenerator
from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from application.bars import SAMPLE_START, SAMPLE_SYMBOLS, MarketDataService
from application.ports import BarStore, SymbolCatalog
from domain.bars import Bar, BarSeries, DataSource, Timeframe, coverage_of
from domain.errors import InvalidBars, InvalidSymbol, ValidationFailed
from domain.exchanges import exchange_hours, hours_of, trading_day
from domain.symbols import AssetClass, symbol_key
from tests.fakes import (
    BARS_START,
    FakeClock,
    InMemoryBarStore,
    InMemoryCatalog,
    bars_of,
    instrument,
)

# The fake clock stands in mid-January 2024: samples run to the end of 2023.
LAST_SAMPLE_DAY = date(2023, 12, 31)


def service(
    store: BarStore | None = None,
    catalog: SymbolCatalog | None = None,
    clock: FakeClock | None = None,
) -> MarketDataService:
    return MarketDataService(
        store if store is not None else InMemoryBarStore(),
        catalog if catalog is not None else InMemoryCatalog(),
        RandomWalkBarGenerator(),
        clock if clock is not None else FakeClock(),
    )


async def read_all(store: BarStore, symbol: str) -> BarSeries:
    return (await store.read([symbol], Timeframe.D1, 0, 2**62))[symbol]


# --- import -----------------------------------------------------------------------------------


async def test_import_stores_the_bars_as_imported() -> None:
    store = InMemoryBarStore()
    series = bars_of("AAPL", "187.15", "185.64", "184.25")
    coverage = await service(store).import_bars(series, replace=False)
    assert coverage == coverage_of(series, DataSource.IMPORTED)
    assert (await read_all(store, "AAPL")).bars() == series.bars()


async def test_import_refuses_invalid_bars_and_writes_nothing() -> None:
    store = InMemoryBarStore()
    await store.write(bars_of("AAPL", "1", "2"), DataSource.IMPORTED, replace=False)
    before = await store.coverage()
    d = Decimal
    t = BARS_START + timedelta(days=10)
    bad = BarSeries.from_bars(
        "AAPL",
        Timeframe.D1,
        [
            Bar(t, d(10), d(11), d(9), d(10), d(5)),  # fine
            Bar(t + timedelta(days=1), d(10), d(9), d(9), d(10), d(5)),  # high below open
            Bar(t + timedelta(days=2), d(10), d(10), d(10), d(10), d(-5)),  # negative volume
        ],
    )
    with pytest.raises(InvalidBars) as caught:
        await service(store).import_bars(bad, replace=True)
    assert caught.value.details == {
        "problems": [
            {
                "index": 1,
                "time": (t + timedelta(days=1)).isoformat(),
                "reason": "high is below max(open, close)",
            },
            {
                "index": 2,
                "time": (t + timedelta(days=2)).isoformat(),
                "reason": "volume is negative",
            },
        ],
        "count": 2,
    }
    assert caught.value.message.startswith("2 bars of AAPL break the bar rules")
    assert await store.coverage() == before
    assert [str(v) for v in (await read_all(store, "AAPL")).closes] == ["1", "2"]


async def test_import_shows_at_most_twenty_problems_and_counts_them_all() -> None:
    broken = bars_of("AAPL", *["1"] * 30, volume="-1")
    with pytest.raises(InvalidBars) as caught:
        await service().import_bars(broken, replace=False)
    assert caught.value.details["count"] == 30
    assert len(caught.value.details["problems"]) == 20


# --- the synthetic sample -----------------------------------------------------------------------


async def test_seed_writes_synthetic_daily_bars_to_the_end_of_last_year() -> None:
    store = InMemoryBarStore()
    written = await service(store).seed_sample(["AAPL", "eurusd"])
    assert [(c.symbol, c.source, c.timeframe) for c in written] == [
        ("AAPL", DataSource.SYNTHETIC, Timeframe.D1),
        ("EUR/USD", DataSource.SYNTHETIC, Timeframe.D1),
    ]
    aapl = written[0]
    assert aapl.first == datetime(2000, 1, 3, 21, tzinfo=UTC)  # SAMPLE_START, 16:00 EST
    assert aapl.last == datetime(2023, 12, 29, 21, tzinfo=UTC)  # Dec 31 2023 was a Sunday
    assert list(await store.coverage()) == written
    assert (await read_all(store, "AAPL")).problems() == []


async def test_the_sample_is_the_same_in_every_store(tmp_path: Path) -> None:
    stores = [SqliteBarStore(tmp_path / "a.db"), SqliteBarStore(tmp_path / "b.db")]
    try:
        for store in stores:
            await service(store).seed_sample(["AAPL", "BTC-USD"], years=3)
        for symbol in ("AAPL", "BTC-USD"):
            a, b = [await read_all(s, symbol) for s in stores]
            assert len(a) > 700
            for left, right in zip(a.columns, b.columns, strict=True):
                assert list(left) == list(right)
        # Seeding again gives the same bars again (a clean series, not a merge).
        again = await service(stores[0]).seed_sample(["AAPL"], years=3)
        assert list((await read_all(stores[0], "AAPL")).closes) == list(
            (await read_all(stores[1], "AAPL")).closes
        )
        assert again == [c for c in await stores[1].coverage() if c.symbol == "AAPL"]
    finally:
        for store in stores:
            store.close()


async def test_a_symbols_sample_does_not_depend_on_the_span_asked_for() -> None:
    # The walk always starts at SAMPLE_START, so the last years of a long sample are the bars
    # of a short one.
    long, short = InMemoryBarStore(), InMemoryBarStore()
    await service(long).seed_sample(["MSFT"])
    await service(short).seed_sample(["MSFT"], years=2)
    full, recent = await read_all(long, "MSFT"), await read_all(short, "MSFT")
    assert full.bars()[-len(recent) :] == recent.bars()


@pytest.mark.parametrize(("years", "first_day"), [(1, date(2023, 1, 3)), (2, date(2022, 1, 3))])
async def test_years_keeps_the_last_full_years(years: int, first_day: date) -> None:
    (coverage,) = await service().seed_sample(["JPM"], years=years)
    assert coverage.first.date() == first_day  # the first NYSE trading day of that year
    assert coverage.last.date() == date(2023, 12, 29)


async def test_years_cuts_crypto_at_its_first_trading_day() -> None:
    (coverage,) = await service().seed_sample(["BTC-USD"], years=1)
    crypto = exchange_hours("CRYPTO", AssetClass.CRYPTO)
    assert trading_day(int(coverage.first.timestamp()), crypto) == date(2023, 1, 1)
    assert coverage.bars == 365


@pytest.mark.parametrize("years", [0, -1])
async def test_years_must_be_positive(years: int) -> None:
    store = InMemoryBarStore()
    with pytest.raises(ValidationFailed) as caught:
        await service(store).seed_sample(["AAPL"], years=years)
    assert caught.value.details == {"field": "years", "value": years}
    assert await store.coverage() == ()


async def test_seed_skips_symbols_with_imported_bars() -> None:
    store = InMemoryBarStore()
    imported = bars_of("AAPL", "1", "2")
    await store.write(imported, DataSource.IMPORTED, replace=False)
    written = await service(store).seed_sample(["AAPL", "MSFT"], years=1)
    assert [c.symbol for c in written] == ["MSFT"]
    assert (await read_all(store, "AAPL")).bars() == imported.bars()
    assert {c.symbol: c.source for c in await store.coverage()} == {
        "AAPL": DataSource.IMPORTED,
        "MSFT": DataSource.SYNTHETIC,
    }


async def test_seed_with_an_unknown_symbol_writes_nothing() -> None:
    store = InMemoryBarStore()
    with pytest.raises(InvalidSymbol) as caught:
        await service(store).seed_sample(["AAPL", "NOPE", "??"])
    assert caught.value.details["invalid_symbols"] == ["NOPE", "??"]
    assert await store.coverage() == ()


async def test_seed_starts_at_the_listing_date_when_later() -> None:
    catalog = InMemoryCatalog([instrument("KVUE", exchange="NYSE", listed=date(2023, 5, 4))])
    (coverage,) = await service(catalog=catalog).seed_sample(["KVUE"])
    assert coverage.first.date() == date(2023, 5, 4)
    assert date(2023, 5, 4) > SAMPLE_START


async def test_seed_if_empty_writes_the_default_sample_once(
    shipped_catalog: YamlSymbolCatalog,
) -> None:
    store = InMemoryBarStore()
    market_data = service(store, shipped_catalog)
    written = await market_data.seed_sample_if_empty()
    assert [c.symbol for c in written] == list(SAMPLE_SYMBOLS)
    spans: dict[str, tuple[date, date]] = {}
    for c in written:
        key = symbol_key(c.symbol)
        found = shipped_catalog.lookup(key) if key is not None else None
        assert found is not None
        hours = hours_of(found)
        spans[c.symbol] = (
            trading_day(int(c.first.timestamp()), hours),
            trading_day(int(c.last.timestamp()), hours),
        )
    # From SAMPLE_START, or the listing when later, to the last trading day of 2023.
    assert spans == {
        "AAPL": (SAMPLE_START, date(2023, 12, 29)),
        "MSFT": (SAMPLE_START, date(2023, 12, 29)),
        "GOOGL": (date(2004, 8, 19), date(2023, 12, 29)),
        "JPM": (SAMPLE_START, date(2023, 12, 29)),
        "EUR/USD": (SAMPLE_START, date(2023, 12, 29)),
        "BTC-USD": (date(2014, 9, 17), LAST_SAMPLE_DAY),  # crypto trades on Sundays
    }
    assert await market_data.seed_sample_if_empty() == []  # not empty any more


async def test_seed_if_empty_leaves_a_store_with_any_bars_alone() -> None:
    store = InMemoryBarStore()
    await store.write(bars_of("GC", "2000.5"), DataSource.IMPORTED, replace=False)
    assert await service(store).seed_sample_if_empty() == []
    assert [c.symbol for c in await store.coverage()] == ["GC"]


# --- instruments, catalog and removal -----------------------------------------------------------


async def test_instruments_list_the_catalog_with_each_ones_coverage() -> None:
    store = InMemoryBarStore.with_defaults()
    hourly = bars_of("BTC-USD", "42000.5", "42001", timeframe=Timeframe.H1)
    await store.write(hourly, DataSource.IMPORTED, replace=False)
    market_data = service(store)

    everything = await market_data.instruments()
    assert [i.instrument for i in everything] == list(InMemoryCatalog().instruments())
    by_ticker = {i.instrument.symbol.ticker: i.data for i in everything}
    assert by_ticker["NODATA"] == ()
    (aapl,) = by_ticker["AAPL"]
    assert (aapl.first.date(), aapl.last.date()) == (date(1990, 1, 2), date(2025, 12, 31))

    crypto = await market_data.instruments(AssetClass.CRYPTO)
    assert [i.instrument.symbol.ticker for i in crypto] == ["BTC-USD", "ETH-USD"]
    btc = crypto[0].data
    assert sorted((c.timeframe, c.bars) for c in btc) == sorted(
        [(Timeframe.D1, by_ticker["BTC-USD"][0].bars), (Timeframe.H1, 2)]
    )


async def test_register_instrument_adds_to_the_catalog_once() -> None:
    catalog = InMemoryCatalog()
    market_data = service(catalog=catalog)
    newco = instrument("NEWCO", exchange="NYSE")
    assert await market_data.register_instrument(newco) is newco
    assert market_data.instrument("newco") is newco
    with pytest.raises(ValidationFailed) as caught:
        await market_data.register_instrument(instrument("NEWCO", exchange="NASDAQ"))
    assert caught.value.details["field"] == "symbol"
    assert caught.value.message == "NEWCO is already in the catalog"
    assert catalog.lookup("NEWCO") is newco


async def test_register_instrument_refusal_names_the_ticker() -> None:
    market_data = service()
    with pytest.raises(ValidationFailed) as caught:
        await market_data.register_instrument(instrument("AAPL"))
    assert caught.value.details == {"field": "symbol", "symbol": "AAPL"}


async def test_remove_accepts_any_spelling() -> None:
    store = InMemoryBarStore()
    await store.write(bars_of("EUR/USD", "1.1", "1.2"), DataSource.IMPORTED, replace=False)
    assert await service(store).remove("eur-usd") == 2
    assert await store.coverage() == ()
    assert await service(store).remove("NOT-IN-CATALOG") == 0
