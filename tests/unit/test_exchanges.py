"""domain/exchanges.py: each market's daily close in UTC across daylight-saving changes, and
the trading-day bounds that decide which bars a date range holds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from domain.exchanges import (
    ExchangeHours,
    daily_close,
    exchange_hours,
    hours_of,
    trading_day,
    trading_day_bounds,
    trading_day_runs,
)
from domain.symbols import AssetClass
from tests.fakes import instrument

NYSE = exchange_hours("NYSE", AssetClass.STOCK)
FOREX = exchange_hours("FOREX", AssetClass.FOREX)
CRYPTO = exchange_hours("CRYPTO", AssetClass.CRYPTO)
CBOT = exchange_hours("CBOT", AssetClass.COMMODITY)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# New York is UTC-5 in winter (EST) and UTC-4 in summer (EDT); in 2024 the clocks went
# forward on Sun Mar 10 and back on Sun Nov 3. Chicago is one hour behind New York.
@pytest.mark.parametrize(
    ("hours", "day", "close"),
    [
        (NYSE, date(2024, 1, 10), utc(2024, 1, 10, 21)),  # 16:00 EST
        (NYSE, date(2024, 7, 10), utc(2024, 7, 10, 20)),  # 16:00 EDT
        (NYSE, date(2024, 3, 8), utc(2024, 3, 8, 21)),  # the Friday before the change
        (NYSE, date(2024, 3, 11), utc(2024, 3, 11, 20)),  # the Monday after it
        (NYSE, date(2024, 11, 1), utc(2024, 11, 1, 20)),
        (NYSE, date(2024, 11, 4), utc(2024, 11, 4, 21)),
        (FOREX, date(2024, 1, 10), utc(2024, 1, 10, 22)),  # 17:00 New York
        (FOREX, date(2024, 7, 10), utc(2024, 7, 10, 21)),
        (CRYPTO, date(2024, 1, 10), utc(2024, 1, 11)),  # the day ends at midnight UTC
        (CRYPTO, date(2024, 7, 10), utc(2024, 7, 11)),  # ... with no daylight saving
        (CRYPTO, date(2024, 12, 31), utc(2025, 1, 1)),
        (CBOT, date(2024, 1, 10), datetime(2024, 1, 10, 19, 20, tzinfo=UTC)),  # 13:20 CST
        (CBOT, date(2024, 7, 10), datetime(2024, 7, 10, 18, 20, tzinfo=UTC)),  # 13:20 CDT
    ],
)
def test_daily_close(hours: ExchangeHours, day: date, close: datetime) -> None:
    assert daily_close(day, hours) == close
    assert daily_close(day, hours).tzinfo is UTC


def test_hours_by_exchange_name_and_by_asset_class() -> None:
    assert ExchangeHours("America/New_York", time(16, 0)) == NYSE
    assert exchange_hours("nasdaq", AssetClass.STOCK) == NYSE  # names ignore case
    assert ExchangeHours("America/New_York", time(17, 0)) == FOREX
    assert ExchangeHours("UTC", None) == CRYPTO
    # An exchange the table does not know takes the usual hours of its asset class.
    assert exchange_hours("LSE", AssetClass.STOCK) == NYSE
    assert exchange_hours("ANYWHERE", AssetClass.CRYPTO) == CRYPTO
    assert exchange_hours("ANYWHERE", AssetClass.FOREX) == FOREX
    assert exchange_hours("ANYWHERE", AssetClass.COMMODITY).close == time(14, 30)  # NYMEX
    assert hours_of(instrument("BTC-USD", AssetClass.CRYPTO, "CRYPTO")) == CRYPTO
    assert hours_of(instrument("JPM", exchange="NYSE")) == NYSE


def test_bounds_of_one_day_in_new_york() -> None:
    lo, hi = trading_day_bounds(date(2024, 1, 10), date(2024, 1, 10), NYSE)
    # From just after midnight New York (05:00 UTC in winter) to the next midnight.
    assert (lo, hi) == (utc(2024, 1, 10, 5).timestamp() + 1, utc(2024, 1, 11, 5).timestamp())


@pytest.mark.parametrize(
    ("hours", "day", "length_hours"),
    [
        (NYSE, date(2024, 3, 10), 23),  # spring forward
        (NYSE, date(2024, 11, 3), 25),  # fall back
        (NYSE, date(2024, 3, 11), 24),
        (CRYPTO, date(2024, 3, 10), 24),
    ],
)
def test_a_trading_day_is_a_local_calendar_day(
    hours: ExchangeHours, day: date, length_hours: int
) -> None:
    lo, hi = trading_day_bounds(day, day, hours)
    assert hi - (lo - 1) == length_hours * 3600


@pytest.mark.parametrize("hours", [NYSE, FOREX, CRYPTO, CBOT], ids=["nyse", "fx", "btc", "cbot"])
def test_bounds_and_trading_day_agree_on_every_day_of_two_years(hours: ExchangeHours) -> None:
    day = date(2023, 1, 1)
    while day <= date(2024, 12, 31):
        close = int(daily_close(day, hours).timestamp())
        lo, hi = trading_day_bounds(day, day, hours)
        assert lo <= close <= hi, day
        assert trading_day(close, hours) == day
        assert trading_day(lo, hours) == day
        assert trading_day(hi, hours) == day
        assert trading_day(lo - 1, hours) == day - timedelta(days=1)
        assert trading_day(hi + 1, hours) == day + timedelta(days=1)
        # Consecutive days tile the time line: no gap, no overlap.
        assert trading_day_bounds(day + timedelta(days=1), day + timedelta(days=1), hours)[0] == (
            hi + 1
        )
        day += timedelta(days=1)


def test_bounds_of_a_range_span_its_first_and_last_days() -> None:
    lo, hi = trading_day_bounds(date(2024, 1, 8), date(2024, 1, 12), CRYPTO)
    assert lo == trading_day_bounds(date(2024, 1, 8), date(2024, 1, 8), CRYPTO)[0]
    assert hi == trading_day_bounds(date(2024, 1, 12), date(2024, 1, 12), CRYPTO)[1]
    # The crypto bar of Jan 12 closes at Jan 13 00:00 UTC: the last instant of the range.
    assert hi == daily_close(date(2024, 1, 12), CRYPTO).timestamp()


def reference_runs(closes: list[int], hours: ExchangeHours) -> list[tuple[int, int]]:
    """Runs bar by bar: each bar's trading day, never going back (a bar of an hour the
    clocks repeat stays in the day already begun)."""
    runs: list[tuple[int, int]] = []
    for end, close in enumerate(closes, 1):
        day = trading_day(close, hours).toordinal()
        if runs and day <= runs[-1][1]:
            runs[-1] = (end, runs[-1][1])
        else:
            runs.append((end, day))
    return runs


# Zones whose clocks changed at local midnight (or 00:01): the day's end is skipped or
# repeated. America/St_Johns went back from 00:01 to 23:01 on 2010-11-07.
MIDNIGHT_CHANGES = [
    ("America/St_Johns", datetime(2010, 11, 5, tzinfo=UTC)),
    ("America/St_Johns", datetime(2010, 3, 12, tzinfo=UTC)),
    ("America/Havana", datetime(2012, 3, 9, tzinfo=UTC)),
    ("America/Havana", datetime(2012, 10, 26, tzinfo=UTC)),
    ("America/Santiago", datetime(2016, 5, 13, tzinfo=UTC)),
    ("America/Santiago", datetime(2016, 8, 12, tzinfo=UTC)),
    ("Asia/Beirut", datetime(2019, 3, 29, tzinfo=UTC)),
    ("Asia/Beirut", datetime(2019, 10, 25, tzinfo=UTC)),
    ("America/Sao_Paulo", datetime(2017, 10, 13, tzinfo=UTC)),
    ("America/Asuncion", datetime(2019, 3, 22, tzinfo=UTC)),
    ("Asia/Tehran", datetime(2019, 3, 20, tzinfo=UTC)),
    ("Asia/Damascus", datetime(2019, 3, 28, tzinfo=UTC)),
]


@pytest.mark.parametrize(("zone", "around"), MIDNIGHT_CHANGES)
@pytest.mark.parametrize("close", [None, time(0, 0), time(16, 0)])
def test_trading_day_runs_end_where_clocks_change_at_midnight(
    zone: str, around: datetime, close: time | None
) -> None:
    hours = ExchangeHours(zone, close)
    first = int(around.timestamp())
    minutes = [first + 60 * k for k in range(1, 5 * 1440)]  # five days of minute bars
    runs = trading_day_runs(minutes, hours)
    assert runs == reference_runs(minutes, hours)
    assert [o for _, o in runs] == sorted({o for _, o in runs})


@pytest.mark.parametrize("zone", sorted({zone for zone, _ in MIDNIGHT_CHANGES}))
def test_trading_day_runs_over_years_of_hourly_and_daily_bars(zone: str) -> None:
    hours = ExchangeHours(zone, None)
    first = int(datetime(2009, 1, 1, tzinfo=UTC).timestamp())
    hourly = [first + 3600 * k for k in range(1, 11 * 366 * 24, 7)]  # every 7 h, 11 years
    assert trading_day_runs(hourly, hours) == reference_runs(hourly, hours)
    daily = [first + 86_400 * k + 3 * 3600 for k in range(11 * 366)]
    assert trading_day_runs(daily, hours) == reference_runs(daily, hours)
