"""NYSE holiday rules and trading-day counts, checked against known dates and a naive loop."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import (
    TradingCalendar,
    count_trading_days,
    easter_sunday,
    is_trading_day,
    nyse_holidays,
)


def _naive_count(start: date, end: date, calendar: TradingCalendar) -> int:
    """Walk the range one day at a time, straight from the calendar definitions."""
    count = 0
    day = start
    while day <= end:
        weekday = day.weekday() < 5
        if calendar is TradingCalendar.SEVEN_DAY:
            count += 1
        elif calendar is TradingCalendar.FIVE_DAY:
            count += weekday
        else:
            count += weekday and day not in nyse_holidays(day.year)
        day += timedelta(days=1)
    return count


# --- holidays ---------------------------------------------------------------------------------


def test_holidays_2023_exactly() -> None:
    assert nyse_holidays(2023) == {
        date(2023, 1, 2),  # New Year's Day (Sunday) observed Monday
        date(2023, 1, 16),  # Martin Luther King Jr. Day
        date(2023, 2, 20),  # Washington's Birthday
        date(2023, 4, 7),  # Good Friday
        date(2023, 5, 29),  # Memorial Day
        date(2023, 6, 19),  # Juneteenth
        date(2023, 7, 4),  # Independence Day
        date(2023, 9, 4),  # Labor Day
        date(2023, 11, 23),  # Thanksgiving Day
        date(2023, 12, 25),  # Christmas Day
    }


def test_holidays_2022_saturday_new_year_gives_no_holiday() -> None:
    holidays = nyse_holidays(2022)
    assert date(2022, 1, 1).weekday() == 5
    assert date(2021, 12, 31) not in nyse_holidays(2021)
    assert date(2021, 12, 31) not in holidays
    assert holidays == {
        date(2022, 1, 17),
        date(2022, 2, 21),
        date(2022, 4, 15),
        date(2022, 5, 30),
        date(2022, 6, 20),  # Juneteenth (Sunday) observed Monday
        date(2022, 7, 4),
        date(2022, 9, 5),
        date(2022, 11, 24),
        date(2022, 12, 26),  # Christmas (Sunday) observed Monday
    }


def test_2021_independence_day_observed_monday_and_christmas_on_friday() -> None:
    holidays = nyse_holidays(2021)
    assert date(2021, 7, 5) in holidays
    assert date(2021, 7, 4) not in holidays
    assert date(2021, 12, 24) in holidays  # Christmas on a Saturday → Friday
    assert date(2021, 6, 18) not in holidays  # Juneteenth only from 2022
    assert date(2021, 1, 1) in holidays  # a Friday New Year's Day counts
    assert len(holidays) == 9


def test_juneteenth_starts_in_2022_and_mlk_day_in_1998() -> None:
    assert all(day.month != 6 for day in nyse_holidays(2021))
    assert date(2024, 6, 19) in nyse_holidays(2024)
    assert date(2027, 6, 18) in nyse_holidays(2027)  # Saturday → Friday
    assert date(1997, 1, 20) not in nyse_holidays(1997)
    assert date(1998, 1, 19) in nyse_holidays(1998)


@pytest.mark.parametrize(
    ("year", "good_friday"),
    [
        (2000, date(2000, 4, 21)),
        (2008, date(2008, 3, 21)),
        (2019, date(2019, 4, 19)),
        (2021, date(2021, 4, 2)),
        (2022, date(2022, 4, 15)),
        (2024, date(2024, 3, 29)),
        (2025, date(2025, 4, 18)),
        (2038, date(2038, 4, 23)),
    ],
)
def test_good_friday(year: int, good_friday: date) -> None:
    assert easter_sunday(year) == good_friday + timedelta(days=2)
    assert good_friday in nyse_holidays(year)


@given(st.integers(min_value=1900, max_value=2200))
def test_easter_is_a_sunday_between_march_22_and_april_25(year: int) -> None:
    easter = easter_sunday(year)
    assert easter.weekday() == 6
    assert date(year, 3, 22) <= easter <= date(year, 4, 25)


@given(st.integers(min_value=1970, max_value=2100))
def test_holidays_are_weekdays_of_their_year(year: int) -> None:
    holidays = nyse_holidays(year)
    assert 7 <= len(holidays) <= 10
    assert all(day.weekday() < 5 and day.year == year for day in holidays)


# --- counting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calendar", "expected"),
    [
        (TradingCalendar.EQUITY_US, 250),
        (TradingCalendar.FIVE_DAY, 260),
        (TradingCalendar.SEVEN_DAY, 365),
    ],
)
def test_full_year_2023(calendar: TradingCalendar, expected: int) -> None:
    assert count_trading_days(date(2023, 1, 1), date(2023, 12, 31), calendar) == expected


@pytest.mark.parametrize("calendar", list(TradingCalendar))
def test_end_before_start_is_empty(calendar: TradingCalendar) -> None:
    assert count_trading_days(date(2023, 5, 2), date(2023, 5, 1), calendar) == 0
    assert count_trading_days(date(2024, 1, 1), date(1999, 1, 1), calendar) == 0


@pytest.mark.parametrize(
    ("day", "calendar", "expected"),
    [
        (date(2023, 1, 7), TradingCalendar.EQUITY_US, 0),  # Saturday
        (date(2023, 1, 8), TradingCalendar.FIVE_DAY, 0),  # Sunday
        (date(2023, 1, 7), TradingCalendar.SEVEN_DAY, 1),
        (date(2023, 7, 4), TradingCalendar.EQUITY_US, 0),  # Independence Day
        (date(2023, 7, 4), TradingCalendar.FIVE_DAY, 1),  # forex trades on US holidays
        (date(2023, 7, 5), TradingCalendar.EQUITY_US, 1),  # ordinary Wednesday
        (date(2022, 12, 30), TradingCalendar.EQUITY_US, 1),  # Friday before Sat New Year
    ],
)
def test_single_day(day: date, calendar: TradingCalendar, expected: int) -> None:
    assert count_trading_days(day, day, calendar) == expected
    assert is_trading_day(day, calendar) is bool(expected)


def test_known_spans() -> None:
    equity = TradingCalendar.EQUITY_US
    assert count_trading_days(date(2023, 1, 1), date(2023, 1, 31), equity) == 20
    assert count_trading_days(date(2022, 1, 1), date(2022, 12, 31), equity) == 251
    assert count_trading_days(date(2024, 1, 1), date(2024, 12, 31), equity) == 252
    # A leap year of 366 days starting on Monday has 262 weekdays.
    assert count_trading_days(date(2024, 1, 1), date(2024, 12, 31), TradingCalendar.FIVE_DAY) == 262


@given(
    st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)),
    st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)),
    st.sampled_from(list(TradingCalendar)),
)
def test_arithmetic_count_matches_naive_loop(
    start: date, end: date, calendar: TradingCalendar
) -> None:
    assert count_trading_days(start, end, calendar) == _naive_count(start, end, calendar)


@given(
    st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)),
    st.integers(min_value=0, max_value=800),
    st.sampled_from(list(TradingCalendar)),
)
def test_short_ranges_match_naive_loop(start: date, length: int, calendar: TradingCalendar) -> None:
    end = start + timedelta(days=length)
    assert count_trading_days(start, end, calendar) == _naive_count(start, end, calendar)
