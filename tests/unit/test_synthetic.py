"""RandomWalkBarGenerator: for every asset class, valid bars on trading days only, at the
exchange's daily close, with prices on the instrument's tick grid, the same on every run."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from adapters.bars.synthetic import RandomWalkBarGenerator
from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from domain.bars import BarSeries, Timeframe, decimal_places
from domain.calendar import count_trading_days, is_trading_day
from domain.exchanges import daily_close, hours_of, trading_day
from domain.symbols import AssetClass, Instrument, symbol_key

FIRST, LAST = date(2019, 1, 1), date(2023, 12, 31)
# One instrument per asset class, plus ticks that are not plain powers of ten (ZC: 0.25, SI:
# 0.005) and a JPY pair (prices near 100, three places).
TICKERS = ["AAPL", "JPM", "EUR/USD", "USD/JPY", "BTC-USD", "XRP-USD", "GC", "SI", "ZC"]


@pytest.fixture(scope="module")
def generated() -> dict[str, tuple[Instrument, BarSeries]]:
    catalog = YamlSymbolCatalog.from_file()
    generator = RandomWalkBarGenerator()
    result: dict[str, tuple[Instrument, BarSeries]] = {}
    for ticker in TICKERS:
        key = symbol_key(ticker)
        assert key is not None
        item = catalog.lookup(key)
        assert item is not None
        result[ticker] = (item, generator.generate(item, FIRST, LAST))
    return result


def test_every_asset_class_is_covered(
    generated: dict[str, tuple[Instrument, BarSeries]],
) -> None:
    assert {item.symbol.asset_class for item, _ in generated.values()} == set(AssetClass)


@pytest.mark.parametrize("ticker", TICKERS)
def test_bars_are_valid_daily_bars_of_the_symbol(
    generated: dict[str, tuple[Instrument, BarSeries]], ticker: str
) -> None:
    _, series = generated[ticker]
    assert (series.symbol, series.timeframe) == (ticker, Timeframe.D1)
    assert series.problems() == []
    assert min(series.lows) > 0
    assert min(series.volumes) >= 0
    assert series.volume_scale == 0


@pytest.mark.parametrize("ticker", TICKERS)
def test_one_bar_per_trading_day_at_the_exchanges_close(
    generated: dict[str, tuple[Instrument, BarSeries]], ticker: str
) -> None:
    item, series = generated[ticker]
    hours, calendar = hours_of(item), item.symbol.asset_class.calendar
    days = [trading_day(t, hours) for t in series.times]
    assert all(is_trading_day(d, calendar) for d in days)
    assert len(series) == count_trading_days(FIRST, LAST, calendar)
    assert (days[0], days[-1]) <= (LAST, LAST)
    assert days[0] >= FIRST
    assert [int(daily_close(d, hours).timestamp()) for d in days] == list(series.times)


def test_calendars_differ_by_asset_class(
    generated: dict[str, tuple[Instrument, BarSeries]],
) -> None:
    # 2019..2023: 1,826 days, 1,304 weekdays, 46 NYSE holidays (9 a year, 10 in 2023).
    sizes = {t: len(s) for t, (_, s) in generated.items()}
    assert sizes["BTC-USD"] == 1826
    assert sizes["EUR/USD"] == sizes["GC"] == 1304
    assert sizes["AAPL"] == 1304 - 46


@pytest.mark.parametrize("ticker", TICKERS)
def test_prices_are_on_the_tick_grid(
    generated: dict[str, tuple[Instrument, BarSeries]], ticker: str
) -> None:
    item, series = generated[ticker]
    assert series.price_scale == decimal_places(item.tick_size)
    tick = int(item.tick_size.scaleb(series.price_scale))
    for column in (series.opens, series.highs, series.lows, series.closes):
        assert all(v % tick == 0 for v in column)
    # And back as Decimals: whole multiples of the tick.
    close = series.bar(len(series) // 2).close
    assert close % item.tick_size == 0
    assert close.as_tuple().exponent == -series.price_scale


def test_prices_are_plausible_for_the_asset(
    generated: dict[str, tuple[Instrument, BarSeries]],
) -> None:
    _, eurusd = generated["EUR/USD"]
    _, usdjpy = generated["USD/JPY"]
    assert Decimal("0.2") < eurusd.price(min(eurusd.lows)) < eurusd.price(max(eurusd.highs)) < 5
    assert 20 < usdjpy.price(min(usdjpy.lows)) < usdjpy.price(max(usdjpy.highs)) < 600


@pytest.mark.parametrize("ticker", ["AAPL", "EUR/USD", "BTC-USD", "ZC"])
def test_deterministic(generated: dict[str, tuple[Instrument, BarSeries]], ticker: str) -> None:
    item, series = generated[ticker]
    again = RandomWalkBarGenerator().generate(item, FIRST, LAST)
    for left, right in zip(series.columns, again.columns, strict=True):
        assert list(left) == list(right)
    assert series.price_scale == again.price_scale


def test_each_symbol_walks_its_own_way(
    generated: dict[str, tuple[Instrument, BarSeries]],
) -> None:
    _, aapl = generated["AAPL"]
    _, jpm = generated["JPM"]
    assert list(aapl.closes) != list(jpm.closes)


def test_a_later_start_is_a_different_walk_but_the_same_days() -> None:
    catalog = YamlSymbolCatalog.from_file()
    item = catalog.lookup("AAPL")
    assert item is not None
    generator = RandomWalkBarGenerator()
    full = generator.generate(item, date(2023, 1, 1), date(2023, 12, 31))
    part = generator.generate(item, date(2023, 7, 1), date(2023, 12, 31))
    assert list(part.times) == list(full.times[-len(part) :])


def test_an_empty_span_gives_no_bars() -> None:
    catalog = YamlSymbolCatalog.from_file()
    item = catalog.lookup("AAPL")
    assert item is not None
    # A weekend, and a span that ends before it starts.
    assert len(RandomWalkBarGenerator().generate(item, date(2023, 7, 1), date(2023, 7, 2))) == 0
    assert len(RandomWalkBarGenerator().generate(item, date(2023, 7, 5), date(2023, 7, 4))) == 0
